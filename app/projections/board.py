"""Board rows: one per symbol, composed from its session stats and its quote cache.

Nothing here is folded: the stats (trades, prices, market totals, SSI's sides, order
sizes) and the quote cache (reference, ceiling, floor, book) are, and a row is read off
them, so the board costs no extra write per frame.
"""

from __future__ import annotations

from app.futures import is_vn30_future
from app.projections import money
from app.projections.quotes import QuoteState
from app.projections.trades import SymbolStats
from app.schemas import BoardRow, OrderSizes, SessionStats, SideVolumes

BOOK_LEVELS = 3
_EXCHANGES = {"HOSE": "HOSE", "HSX": "HOSE", "HNX": "HNX", "UPCOM": "UPCOM", "DER": "DER", "DERIVATIVES": "DER"}


def exchange_of(raw: str | None, symbol: str) -> str | None:
    """HOSE / HNX / UPCOM / DER from the frames' Exchange or MarketId (as SSI spells it)."""
    if is_vn30_future(symbol):
        return "DER"
    return _EXCHANGES.get((raw or "").upper(), raw or None)


def _levels(prices: tuple[float, ...], vols: tuple[float, ...], futures: bool) -> list[list]:
    return [
        [money.price(p, futures), int(v)]
        for p, v in zip(prices[:BOOK_LEVELS], vols[:BOOK_LEVELS])
        if p or v
    ]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def board_row(symbol: str, stats: SymbolStats | None, quote: QuoteState | None) -> BoardRow:
    """The board row of ``symbol`` (either part may be missing: quoted, never traded)."""
    futures = is_vn30_future(symbol)
    base = {f: getattr(stats, f) for f in SessionStats.__struct_fields__} if stats else {"symbol": symbol}
    row = BoardRow(**base)
    if quote is not None:
        row.exchange = exchange_of(quote.exchange, symbol)
        row.ref_price = money.price(quote.ref_price, futures)
        row.ceiling = money.price(quote.ceiling, futures)
        row.floor = money.price(quote.floor, futures)
        row.bid = _levels(quote.bid_prices, quote.bid_vols, futures)
        row.ask = _levels(quote.ask_prices, quote.ask_vols, futures)
    elif futures:
        row.exchange = "DER"
    if stats is None:
        return row
    row.last_price = money.price(stats.last_price, futures)
    row.last_volume = stats.last_volume
    row.open, row.high, row.low = (money.price(p, futures) for p in (stats.open, stats.high, stats.low))
    if stats.last_price > 0 and quote is not None and quote.ref_price > 0:
        change_tenths = money.tenths(stats.last_price) - money.tenths(quote.ref_price)
        row.change = money.served(change_tenths, futures)
        row.change_pct = round(100 * change_tenths / money.tenths(quote.ref_price), 2)
    row.market_volume = stats.max_total_vol
    row.market_value = stats.market_value
    row.buy_ratio = _ratio(stats.mua_chu_dong_volume, stats.mua_chu_dong_volume + stats.ban_chu_dong_volume)
    row.side_agreement = _ratio(stats.agree_volume, stats.compared_volume)
    row.ssi_buy_volume, row.ssi_sell_volume = stats.ssi_bu_volume, stats.ssi_sd_volume
    row.ssi_unknown_volume = stats.ssi_unknown_volume
    if not futures:
        row.size = OrderSizes(**{
            bucket: SideVolumes(
                buy=getattr(stats, bucket + "_buy"),
                sell=getattr(stats, bucket + "_sell"),
                neutral=getattr(stats, bucket + "_neutral"),
            )
            for bucket in ("small", "medium", "large")
        })
    return row
