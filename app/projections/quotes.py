"""Quote cache: latest book levels per symbol plus its price limits."""

from __future__ import annotations

import msgspec
import orjson

from app.frames import BOOK_DEPTH, SecurityMsg, StatusMsg

EMPTY_SIDE = (0.0,) * BOOK_DEPTH


class QuoteState(msgspec.Struct, kw_only=True):
    """Latest quote of one symbol (the seed's SSIQuoteMessage, up to 10 levels a side).

    Levels are kept as 10-tuples (0.0 = empty level) so a new book is compared and
    stored with a few tuple operations; the hash shows each side as one JSON field.
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

# Position of the 40 book fields in SecurityMsg's tuple form: ask prices, ask
# volumes, bid prices, bid volumes, 10 each (SSI's order, see frames.SecurityMsg).
_FIRST = SecurityMsg.__struct_fields__.index("ask_price1")
assert SecurityMsg.__struct_fields__[_FIRST : _FIRST + 4 * BOOK_DEPTH : BOOK_DEPTH] == (
    "ask_price1", "ask_vol1", "bid_price1", "bid_vol1",
)
_BOOK = slice(_FIRST, _FIRST + 4 * BOOK_DEPTH)
_astuple = msgspec.structs.astuple
_dumps = orjson.dumps


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
    ap, av, bp, bv = raw[0:10], raw[10:20], raw[20:30], raw[30:40]
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
    """Readable fields: the scalars, and each side of the book as one field, ``bid`` and
    ``ask``: a JSON array of ``[price, volume]`` levels up to the last non-empty one (an
    empty level inside it is ``[0.0, 0.0]``; a side with no level is left out). One field a
    side, not two a level: a changed book costs one encode and one field per side."""
    out: dict[str, str] = {}
    for name in SCALAR_FIELDS:
        value = getattr(quote, name)
        if value is not None:
            out[name] = repr(value) if type(value) is float else str(value)
    for side, prices_attr, vols_attr in SIDES:
        text = _side(getattr(quote, prices_attr), getattr(quote, vols_attr))
        if text is not None:
            out[side] = text
    return out


def _side(prices: tuple[float, ...], vols: tuple[float, ...]) -> str | None:
    n = BOOK_DEPTH
    while n and not (prices[n - 1] or vols[n - 1]):
        n -= 1
    if not n:
        return None
    # orjson writes a tuple of pairs as the same JSON as a list of lists, made faster.
    pairs = zip(prices, vols) if n == BOOK_DEPTH else zip(prices[:n], vols[:n])
    return _dumps(tuple(pairs)).decode()


_FIELDS = QuoteState.__struct_fields__
_SCALARS = tuple((name, _FIELDS.index(name)) for name in SCALAR_FIELDS)
_N_SCALARS = len(SCALAR_FIELDS)
assert _FIELDS[:_N_SCALARS] == SCALAR_FIELDS
_SIDE_AT = tuple((side, _FIELDS.index(p), _FIELDS.index(v)) for side, p, v in SIDES)


def snapshot(quote: QuoteState) -> tuple:
    """The quote as it stands (every value immutable), to diff a later one against."""
    return _astuple(quote)


def changed_fields(quote: QuoteState, now: tuple, before: tuple) -> tuple[list[str], list[str]]:
    """([field, text, ...] set, [field, ...] deleted) between two snapshots: only what
    changed is encoded (a side whose levels are the same tuples costs nothing)."""
    changed: list[str] = []
    removed: list[str] = []
    # Scalars first in the struct, each of one type (or None): equal tuples, nothing to do.
    if now[:_N_SCALARS] != before[:_N_SCALARS]:
        for name, i in _SCALARS:
            value, old = now[i], before[i]
            if value is old or (value == old and type(value) is type(old)):
                continue
            if value is None:
                removed.append(name)
            else:
                changed += (name, repr(value) if type(value) is float else str(value))
    for side, p, v in _SIDE_AT:
        if now[p] == before[p] and now[v] == before[v]:
            continue
        text = _side(now[p], now[v])
        if text is None:
            removed.append(side)
        else:
            changed += (side, text)
    return changed, removed


def from_hash(fields: dict[str, str]) -> QuoteState:
    """The inverse of :func:`to_hash`."""
    scalars = {k: v for k, v in fields.items() if k in SCALAR_FIELDS}
    quote = msgspec.convert(scalars, QuoteState, strict=False)
    for side, prices_attr, vols_attr in SIDES:
        levels = orjson.loads(fields[side]) if side in fields else _legacy_levels(fields, side)
        prices = [float(p) for p, _ in levels] + [0.0] * (BOOK_DEPTH - len(levels))
        vols = [float(v) for _, v in levels] + [0.0] * (BOOK_DEPTH - len(levels))
        setattr(quote, prices_attr, tuple(prices))
        setattr(quote, vols_attr, tuple(vols))
    return quote


def _legacy_levels(fields: dict[str, str], side: str) -> list[list[float]]:
    """A side written as two fields a level (``bid_price_1``, ``bid_vol_1``, ...) by
    earlier versions; the next write of the quote replaces them by the one field."""
    levels: list[list[float]] = []
    for i in range(BOOK_DEPTH):
        p = fields.get(f"{side}_price_{i + 1}")
        if p is not None:
            levels += [[0.0, 0.0]] * (i - len(levels))
            levels.append([float(p), float(fields.get(f"{side}_vol_{i + 1}", "0.0"))])
    return levels
