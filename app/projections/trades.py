"""Session stats: active buy / active sell (mua / bán chủ động) per symbol.

Rules (docs/rules.md, Trades):
1. a frame is a trade only if its TotalVol exceeds the largest TotalVol seen for the
   symbol this session (quote-only X updates and reconnect repeats are not trades);
2. volume = TotalVol - previous largest, or LastVol for the symbol's first trade; with
   no TotalVol an X-TRADE is one trade of LastVol and an X is no trade;
3. value = volume x LastPrice (VND, or points for futures; never x1000);
4. classified against the book as it stood *before* the frame; ATO/ATC are neutral.
"""

from __future__ import annotations

import msgspec

from app.frames import SecurityMsg
from app.projections import money
from app.schemas import Money, SessionStats

BUY = "mua_chu_dong"
SELL = "ban_chu_dong"
NEUTRAL = "neutral"
AUCTIONS = frozenset({"ATO", "ATC"})


class SymbolStats(SessionStats, kw_only=True):
    """The seed's SessionStats plus bookkeeping and what the board row needs."""

    max_total_vol: int = 0  # the board's market_volume: the exchange's own cumulative
    market_value: Money = 0  # TotalVal of the frame that carried max_total_vol
    trades: int = 0
    last_price: float = 0.0
    last_volume: int = 0
    open: float = 0.0  # first, largest and smallest price of the counted trades
    high: float = 0.0
    low: float = 0.0
    change: float | None = None  # SSI's own Change / RatioChange of the last trade
    change_pct: float | None = None
    # SSI's own aggressor flag, kept for comparison with our classifier (rule 5).
    ssi_bu_volume: int = 0
    ssi_sd_volume: int = 0
    ssi_unknown_volume: int = 0
    agree_volume: int = 0  # of compared_volume, where our side matched SSI's
    compared_volume: int = 0  # ours buy/sell and SSI's BU/SD
    # Order size by trade value (stocks only): volume per bucket and side.
    small_buy: int = 0
    small_sell: int = 0
    small_neutral: int = 0
    medium_buy: int = 0
    medium_sell: int = 0
    medium_neutral: int = 0
    large_buy: int = 0
    large_sell: int = 0
    large_neutral: int = 0


# SIZE_BUCKETS_VND: a trade below the first bound is small, below the second medium.
SIZE_BUCKETS_VND = (100_000_000, 1_000_000_000)
class Trade(msgspec.Struct, frozen=True):
    """One trade the fold recognised in a frame."""

    volume: int
    price: float
    side: str


def classify(
    price: float,
    session: str | None,
    bid1: float,
    ask1: float,
    ceiling: float,
    floor: float,
) -> str:
    """Active buy / active sell / neutral against the pre-trade best bid and ask."""
    if session in AUCTIONS:
        return NEUTRAL
    if ask1 > 0 and price >= ask1:
        return BUY
    if 0 < price <= bid1:
        return SELL
    if ask1 == 0 and price > 0 and price == ceiling:
        return BUY
    if bid1 == 0 and price > 0 and price == floor:
        return SELL
    return NEUTRAL


def detect_trade(stats: SymbolStats | None, msg: SecurityMsg, data_type: str) -> int | None:
    """The trade volume this frame carries (rules 1-2), or None when it is no trade."""
    total = int(msg.total_vol or 0)
    last = int(msg.last_vol or 0)
    if total <= 0:
        return last if data_type == "X-TRADE" else None
    if stats is None or stats.trades == 0:
        return last
    if total <= stats.max_total_vol:
        return None
    return total - stats.max_total_vol


def trade_value(volume: int, price: float, futures: bool) -> Money:
    """volume x price, exact: whole VND for a stock, tenths-rounded points for futures."""
    whole = int(price)
    if not futures and whole == price:
        return volume * whole  # the common case: integers all the way
    return money.served(volume * money.tenths(price), futures)


def record_trade(
    stats: SymbolStats, msg: SecurityMsg, trade: Trade, event_time: str | None, futures: bool = False
) -> Money:
    """Add a classified trade to the symbol's totals (values exact: see money); returns
    the trade's value."""
    volume, price, side = trade.volume, trade.price, trade.side
    whole = int(price)
    # Stocks: integers all the way (the hot path); futures: tenths of a point.
    exact = not futures and whole == price
    value = volume * whole if exact else trade_value(volume, price, futures)
    if side == BUY:
        stats.mua_chu_dong_volume += volume
        total = stats.mua_chu_dong_value
        stats.mua_chu_dong_value = total + value if exact and type(total) is int else _add(total, value, futures)
    elif side == SELL:
        stats.ban_chu_dong_volume += volume
        total = stats.ban_chu_dong_value
        stats.ban_chu_dong_value = total + value if exact and type(total) is int else _add(total, value, futures)
    else:
        stats.neutral_volume += volume
    stats.total_volume += volume
    if stats.trades == 0:
        stats.open = stats.high = stats.low = price
    elif price > stats.high:
        stats.high = price
    elif price < stats.low:
        stats.low = price
    stats.trades += 1
    total = int(msg.total_vol or 0)
    if total > stats.max_total_vol:
        stats.max_total_vol = total
        stats.market_value = money.served(money.tenths(msg.total_val or 0.0), futures)
    stats.last_price = price
    stats.last_volume = volume
    if msg.change is not None:
        stats.change = msg.change
    if msg.ratio_change is not None:
        stats.change_pct = msg.ratio_change
    if event_time is not None:
        stats.last_updated = event_time
    ssi_side = msg.side
    if ssi_side == "BU" or ssi_side == "bu":
        stats.ssi_bu_volume += volume
        if side != NEUTRAL:
            stats.compared_volume += volume
            if side == BUY:
                stats.agree_volume += volume
    elif ssi_side == "SD" or ssi_side == "sd":
        stats.ssi_sd_volume += volume
        if side != NEUTRAL:
            stats.compared_volume += volume
            if side == SELL:
                stats.agree_volume += volume
    else:
        stats.ssi_unknown_volume += volume
    if not futures:
        _add_size(stats, value, side, volume)
    return value


def _add(total: Money, value: Money, futures: bool) -> Money:
    if type(total) is int and type(value) is int:
        return total + value
    return money.served(money.as_tenths(total) + money.as_tenths(value), futures)


def _add_size(stats: SymbolStats, value: Money, side: str, volume: int) -> None:
    small, medium = SIZE_BUCKETS_VND
    if value < small:
        if side == BUY:
            stats.small_buy += volume
        elif side == SELL:
            stats.small_sell += volume
        else:
            stats.small_neutral += volume
    elif value < medium:
        if side == BUY:
            stats.medium_buy += volume
        elif side == SELL:
            stats.medium_sell += volume
        else:
            stats.medium_neutral += volume
    elif side == BUY:
        stats.large_buy += volume
    elif side == SELL:
        stats.large_sell += volume
    else:
        stats.large_neutral += volume
