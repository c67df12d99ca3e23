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
from app.schemas import SessionStats

BUY = "mua_chu_dong"
SELL = "ban_chu_dong"
NEUTRAL = "neutral"
AUCTIONS = frozenset({"ATO", "ATC"})


class SymbolStats(SessionStats, kw_only=True):
    """The seed's SessionStats plus bookkeeping and detail beyond it."""

    max_total_vol: int = 0
    trades: int = 0
    last_price: float = 0.0
    change: float | None = None
    change_pct: float | None = None
    # SSI's own aggressor flag, kept for comparison with our classifier (rule 5).
    ssi_bu_volume: int = 0
    ssi_sd_volume: int = 0
    ssi_unknown_volume: int = 0


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


def record_trade(
    stats: SymbolStats, msg: SecurityMsg, trade: Trade, event_time: str | None, futures: bool = False
) -> None:
    """Add a classified trade to the symbol's totals (values exact: see money)."""
    volume = trade.volume
    if trade.side == BUY:
        stats.mua_chu_dong_volume += volume
        stats.mua_chu_dong_value = money.add(stats.mua_chu_dong_value, volume, trade.price, futures)
    elif trade.side == SELL:
        stats.ban_chu_dong_volume += volume
        stats.ban_chu_dong_value = money.add(stats.ban_chu_dong_value, volume, trade.price, futures)
    else:
        stats.neutral_volume += volume
    stats.total_volume += volume
    stats.trades += 1
    total = int(msg.total_vol or 0)
    if total > stats.max_total_vol:
        stats.max_total_vol = total
    stats.last_price = trade.price
    if msg.change is not None:
        stats.change = msg.change
    if msg.ratio_change is not None:
        stats.change_pct = msg.ratio_change
    if event_time is not None:
        stats.last_updated = event_time
    ssi_side = (msg.side or "").upper()
    if ssi_side == "BU":
        stats.ssi_bu_volume += volume
    elif ssi_side == "SD":
        stats.ssi_sd_volume += volume
    else:
        stats.ssi_unknown_volume += volume
