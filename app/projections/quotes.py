"""Quote cache: latest book levels per symbol plus its price limits."""

from __future__ import annotations

import msgspec

from app.frames import BOOK_DEPTH, SecurityMsg, StatusMsg

EMPTY_SIDE = (0.0,) * BOOK_DEPTH


class QuoteState(msgspec.Struct, kw_only=True):
    """Latest quote of one symbol (the seed's SSIQuoteMessage, up to 10 levels a side).

    Levels are kept as 10-tuples (0.0 = empty level) so a new book is compared and
    stored with a few tuple operations; the hash shows them as ``bid_price_1`` etc.
    """

    symbol: str
    exchange: str | None = None
    ceiling: float = 0.0
    floor: float = 0.0
    ref_price: float = 0.0
    open: float | None = None
    high: float | None = None
    low: float | None = None
    trading_session: str | None = None
    trading_status: str | None = None
    bid_prices: tuple[float, ...] = EMPTY_SIDE
    bid_vols: tuple[float, ...] = EMPTY_SIDE
    ask_prices: tuple[float, ...] = EMPTY_SIDE
    ask_vols: tuple[float, ...] = EMPTY_SIDE


SIDES = (("bid", "bid_prices", "bid_vols"), ("ask", "ask_prices", "ask_vols"))
SCALAR_FIELDS = tuple(f for f in QuoteState.__struct_fields__ if not f.endswith(("_prices", "_vols")))

# Position of the 40 book fields in SecurityMsg's tuple form: bid prices, bid
# volumes, ask prices, ask volumes, 10 each (see frames.SecurityMsg).
_FIRST = SecurityMsg.__struct_fields__.index("bid_price1")
assert SecurityMsg.__struct_fields__[_FIRST : _FIRST + 4 * BOOK_DEPTH : BOOK_DEPTH] == (
    "bid_price1", "bid_vol1", "ask_price1", "ask_vol1",
)
_BOOK = slice(_FIRST, _FIRST + 4 * BOOK_DEPTH)
_astuple = msgspec.structs.astuple


def best_bid_ask(quote: QuoteState | None) -> tuple[float, float]:
    """(bid1, ask1), 0 where the level is empty or the symbol was never quoted."""
    if quote is None:
        return 0.0, 0.0
    return quote.bid_prices[0], quote.ask_prices[0]


def apply_book(quote: QuoteState, msg: SecurityMsg) -> bool:
    """Replace the book with the frame's levels; True when anything changed."""
    raw = _astuple(msg)[_BOOK]
    if None in raw:
        raw = tuple(0.0 if x is None else x for x in raw)
    bp, bv, ap, av = raw[0:10], raw[10:20], raw[20:30], raw[30:40]
    changed = False
    if bp != quote.bid_prices or bv != quote.bid_vols or ap != quote.ask_prices or av != quote.ask_vols:
        quote.bid_prices, quote.bid_vols, quote.ask_prices, quote.ask_vols = bp, bv, ap, av
        changed = True
    for attr in ("open", "high", "low"):
        value = getattr(msg, attr)
        if value is not None and getattr(quote, attr) != value:
            setattr(quote, attr, value)
            changed = True
    return _apply_common(quote, msg) or changed


def apply_refs(quote: QuoteState, msg: SecurityMsg) -> bool:
    """Take ceiling/floor/ref price (and exchange) from any frame that carries them."""
    return _apply_common(quote, msg)


def apply_status(quote: QuoteState, msg: StatusMsg) -> bool:
    """F frames: the symbol's trading session and status."""
    changed = False
    for attr in ("trading_session", "trading_status"):
        value = getattr(msg, attr)
        if value is not None and getattr(quote, attr) != value:
            setattr(quote, attr, value)
            changed = True
    return changed


def _apply_common(quote: QuoteState, msg: SecurityMsg) -> bool:
    changed = False
    for attr in ("ceiling", "floor", "ref_price"):
        value = getattr(msg, attr)
        if value and getattr(quote, attr) != value:
            setattr(quote, attr, value)
            changed = True
    exchange = msg.exchange or msg.market_id
    if exchange and quote.exchange != exchange:
        quote.exchange = exchange
        changed = True
    session = msg.trading_session
    if session and quote.trading_session != session:
        quote.trading_session = session
        changed = True
    return changed


def to_hash(quote: QuoteState) -> dict[str, str]:
    """Flat, readable fields: ``bid_price_1``.. ``ask_vol_10``; empty levels left out."""
    out: dict[str, str] = {}
    for name in SCALAR_FIELDS:
        value = getattr(quote, name)
        if value is not None:
            out[name] = repr(value) if isinstance(value, float) else str(value)
    for side, prices_attr, vols_attr in SIDES:
        prices, vols = getattr(quote, prices_attr), getattr(quote, vols_attr)
        for i in range(BOOK_DEPTH):
            if prices[i] or vols[i]:
                out[f"{side}_price_{i + 1}"] = repr(prices[i])
                out[f"{side}_vol_{i + 1}"] = repr(vols[i])
    return out


def from_hash(fields: dict[str, str]) -> QuoteState:
    """The inverse of :func:`to_hash`."""
    scalars = {k: v for k, v in fields.items() if k in SCALAR_FIELDS}
    quote = msgspec.convert(scalars, QuoteState, strict=False)
    for side, prices_attr, vols_attr in SIDES:
        prices = [0.0] * BOOK_DEPTH
        vols = [0.0] * BOOK_DEPTH
        for i in range(BOOK_DEPTH):
            p = fields.get(f"{side}_price_{i + 1}")
            if p is not None:
                prices[i] = float(p)
                vols[i] = float(fields.get(f"{side}_vol_{i + 1}", "0.0"))
        setattr(quote, prices_attr, tuple(prices))
        setattr(quote, vols_attr, tuple(vols))
    return quote
