"""Foreign investor flow (khối ngoại): totals, flow speed and acceleration per symbol.

R frames carry cumulative session totals. Flow is the delta between consecutive frames
of a symbol: the first frame sets the baseline and a negative delta (an upstream reset)
re-seeds it, both with delta 0. Speed at t is the sum of deltas with event time in
(t - 5 min, t] over 5; acceleration is speed(t) - speed(t - 1 min).
"""

from __future__ import annotations

import msgspec

from app.frames import ForeignMsg
from app.projections import money
from app.schemas import ForeignInvestorData, ForeignTotals

SPEED_WINDOW = 300
ACCEL_LAG = 60
# Deltas kept behind the newest frame: the 6 minutes the rules read plus slack so a
# frame up to 4 minutes out of order still sees its whole window.
RETAIN = 600
TOP_N = 5


class ForeignState(ForeignInvestorData, kw_only=True):
    """The seed's ForeignInvestorData plus the newest event time seen."""

    latest_time: int = 0


class FlowWindow(msgspec.Struct):
    """Flow deltas by event second (seconds of day), for the speed windows."""

    buy: dict[int, int] = msgspec.field(default_factory=dict)
    sell: dict[int, int] = msgspec.field(default_factory=dict)


class ForeignSummaryState(ForeignTotals, kw_only=True):
    """Totals over all symbols and the top movers (by symbol) by net value."""

    top_buy: list[str] = msgspec.field(default_factory=list)
    top_sell: list[str] = msgspec.field(default_factory=list)


def window_sum(deltas: dict[int, int], end: int) -> int:
    """Sum of deltas with time in (end - 5 min, end]."""
    start = end - SPEED_WINDOW
    return sum(v for t, v in deltas.items() if start < t <= end)


def speed(deltas: dict[int, int], t: int) -> float:
    """Shares per minute over the 5 minutes ending at t."""
    return window_sum(deltas, t) / 5


def apply_foreign(
    state: ForeignState | None,
    window: FlowWindow,
    msg: ForeignMsg,
    t: int,
    event_time: str,
) -> ForeignState:
    """Fold one R frame into the symbol's state and flow window."""
    buy, sell = int(msg.buy_vol or 0), int(msg.sell_vol or 0)
    if state is None:
        state = ForeignState(symbol=msg.symbol)
    else:
        # A negative delta re-seeds: the new value becomes the baseline, delta 0.
        _record(window.buy, t, buy - state.buy_volume)
        _record(window.sell, t, sell - state.sell_volume)
    state.buy_volume, state.sell_volume = buy, sell
    state.net_volume = buy - sell
    buy_val, sell_val = money.tenths(msg.buy_val or 0.0), money.tenths(msg.sell_val or 0.0)
    state.buy_value, state.sell_value = money.served(buy_val), money.served(sell_val)
    state.net_value = money.served(buy_val - sell_val)
    if msg.total_room is not None:
        state.total_room = int(msg.total_room)
    if msg.current_room is not None:
        state.current_room = int(msg.current_room)
    newest = max(t, state.latest_time)
    _prune(window.buy, newest)
    _prune(window.sell, newest)
    state.latest_time = newest
    buy_now, sell_now = window_sum(window.buy, t), window_sum(window.sell, t)
    state.buy_speed_per_min, state.sell_speed_per_min = buy_now / 5, sell_now / 5
    # From the integer sums, so an unchanged flow reads exactly 0, not float noise.
    state.buy_acceleration = (buy_now - window_sum(window.buy, t - ACCEL_LAG)) / 5
    state.sell_acceleration = (sell_now - window_sum(window.sell, t - ACCEL_LAG)) / 5
    state.last_updated = event_time
    return state


def minute_deltas(previous: ForeignState, msg: ForeignMsg) -> list[int]:
    """This frame's flow deltas against the previous one: [buy volume, sell volume, buy
    value, sell value] (values in tenths); a negative delta re-seeds (0), as for speed."""
    buy_val, sell_val = money.tenths(msg.buy_val or 0.0), money.tenths(msg.sell_val or 0.0)
    return [
        max(0, int(msg.buy_vol or 0) - previous.buy_volume),
        max(0, int(msg.sell_vol or 0) - previous.sell_volume),
        max(0, buy_val - money.as_tenths(previous.buy_value)),
        max(0, sell_val - money.as_tenths(previous.sell_value)),
    ]


def _record(deltas: dict[int, int], t: int, delta: int) -> None:
    if delta > 0:
        deltas[t] = deltas.get(t, 0) + delta


def _prune(deltas: dict[int, int], newest: int) -> None:
    cutoff = newest - RETAIN
    for t in [t for t in deltas if t <= cutoff]:
        del deltas[t]


def summarize(states: dict[str, ForeignState]) -> ForeignSummaryState:
    """Totals (exact, in tenths) and the top 5 each way."""
    summary = ForeignSummaryState()
    ordered = sorted(states.values(), key=lambda s: s.symbol)
    buy_val = sell_val = 0
    for s in ordered:
        buy_val += money.as_tenths(s.buy_value)
        sell_val += money.as_tenths(s.sell_value)
        summary.total_buy_volume += s.buy_volume
        summary.total_sell_volume += s.sell_volume
    summary.total_buy_value, summary.total_sell_value = money.served(buy_val), money.served(sell_val)
    summary.total_net_value = money.served(buy_val - sell_val)
    summary.total_net_volume = summary.total_buy_volume - summary.total_sell_volume
    buyers = sorted((s for s in ordered if s.net_value > 0), key=lambda s: -s.net_value)
    sellers = sorted((s for s in ordered if s.net_value < 0), key=lambda s: s.net_value)
    # sorted() is stable over symbol order, so equal net values tie by symbol name.
    summary.top_buy = [s.symbol for s in buyers[:TOP_N]]
    summary.top_sell = [s.symbol for s in sellers[:TOP_N]]
    return summary
