"""The day's history, folded minute by minute (docs/rules.md, "The day's history").

Event time only: a bar's minute is the frame's ``Time`` rounded down to the minute, so
the ATO print (09:15:00) and the ATC print (14:45:00) fall in minutes of their own and the
lunch break has no bars. Every series is a dict keyed by an integer (minute start in
seconds of day, or a trade's number for the tape); the fold records which keys changed,
so a batch writes only the bars it touched.
"""

from __future__ import annotations

from collections import deque

import msgspec

from app.projections import money
from app.projections.trades import BUY as BUY_SIDE, SELL as SELL_SIDE
from app.schemas import Money

TAPE_LENGTH = 1000

# A 1-minute bar: [open, high, low, close, volume, value, buy, sell, neutral volume].
Bar = list
OPEN, HIGH, LOW, CLOSE, VOLUME, VALUE, BUY, SELL, NEUTRAL = range(9)
# A foreign minute: [buy volume, sell volume, buy value, sell value] (flow deltas).
FBUY_V, FSELL_V, FBUY_VAL, FSELL_VAL = range(4)
# An index bar: [open, high, low, close, total_volume (the minute's last TotalQtty)].


class Series(msgspec.Struct):
    """Points by integer key, plus the keys changed since the last write."""

    points: dict[int, list] = msgspec.field(default_factory=dict)
    changed: set[int] = msgspec.field(default_factory=set)


class Tape(msgspec.Struct):
    """The newest ``TAPE_LENGTH`` counted trades of a symbol, by trade number."""

    trades: deque = msgspec.field(default_factory=deque)  # (number, time, price, volume, side, ssi_side)
    # Since the last write: how many trades were added (the newest ones, at the end), and
    # the numbers dropped off the front. A count, not a set of numbers: it costs a trade
    # one addition.
    added: int = 0
    dropped: list[int] = msgspec.field(default_factory=list)


def minute_of(t: int) -> int:
    return t - t % 60


def add_trade_bar(series: Series, t: int, price: float, volume: int, value: Money, side: str) -> None:
    """Fold one counted trade into its minute's bar (open = first in fold order).

    Prices are kept as the frame gave them; readers serve them (money.price)."""
    minute = t - t % 60
    bar = series.points.get(minute)
    if bar is None:
        series.points[minute] = [
            price, price, price, price, volume, value,
            *((volume, 0, 0) if side == BUY_SIDE else (0, volume, 0) if side == SELL_SIDE else (0, 0, volume)),
        ]
    else:
        if price > bar[HIGH]:
            bar[HIGH] = price
        elif price < bar[LOW]:
            bar[LOW] = price
        bar[CLOSE] = price
        bar[VOLUME] += volume
        total = bar[VALUE]
        if type(total) is int and type(value) is int:
            bar[VALUE] = total + value
        else:
            bar[VALUE] = money.served(money.as_tenths(total) + money.as_tenths(value), True)
        bar[BUY if side == BUY_SIDE else SELL if side == SELL_SIDE else NEUTRAL] += volume
    series.changed.add(minute)


def add_foreign_minute(series: Series, t: int, deltas: list) -> None:
    """Add flow deltas (volumes and values) to their minute; all-zero deltas add nothing."""
    if not any(deltas):
        return
    minute = minute_of(t)
    point = series.points.get(minute)
    if point is None:
        series.points[minute] = list(deltas)
    else:
        for i, d in enumerate(deltas):
            point[i] += d
    series.changed.add(minute)


def add_index_bar(series: Series, t: int, value: float, total_volume: int) -> None:
    """Fold one MI frame into its minute's bar of IndexValue."""
    minute = minute_of(t)
    bar = series.points.get(minute)
    if bar is None:
        series.points[minute] = [value, value, value, value, total_volume]
    else:
        bar[HIGH] = max(bar[HIGH], value)
        bar[LOW] = min(bar[LOW], value)
        bar[CLOSE] = value
        bar[4] = total_volume
    series.changed.add(minute)


def set_point(series: Series, t: int, value) -> None:
    """The minute's value as it stands after this frame (the basis line)."""
    minute = t - t % 60
    point = series.points.get(minute)
    if point is None or point[0] != value:
        series.points[minute] = [value]
        series.changed.add(minute)
