"""Quote cache: latest book levels per symbol plus its price limits."""

from __future__ import annotations

import msgspec

from app.frames import BOOK_DEPTH, SecurityMsg, StatusMsg

LEVEL_FIELDS = tuple(
    f"{side}_{kind}_{i}"
    for side in ("bid", "ask")
    for i in range(1, BOOK_DEPTH + 1)
    for kind in ("price", "vol")
)

# Generated so the 40 level fields stay in one place; each is a plain hash field.
QuoteState = msgspec.defstruct(
    "QuoteState",
    [
        ("symbol", str),
        ("exchange", "str | None", None),
        ("ceiling", float, 0.0),
        ("floor", float, 0.0),
        ("ref_price", float, 0.0),
        ("open", "float | None", None),
        ("high", "float | None", None),
        ("low", "float | None", None),
        ("trading_session", "str | None", None),
        ("trading_status", "str | None", None),
        *((name, "float | None" if "price" in name else "int | None", None) for name in LEVEL_FIELDS),
    ],
    kw_only=True,
    module=__name__,
)
QuoteState.__doc__ = "Latest quote of one symbol (seed's SSIQuoteMessage, up to 10 levels)."


def best_bid_ask(quote: QuoteState | None) -> tuple[float, float]:
    """(bid1, ask1), 0 where the level is empty or the symbol was never quoted."""
    if quote is None:
        return 0.0, 0.0
    return quote.bid_price_1 or 0.0, quote.ask_price_1 or 0.0


def apply_book(quote: QuoteState, msg: SecurityMsg) -> bool:
    """Replace the book with the frame's levels; True when anything changed."""
    changed = False
    for name, (price, vol) in zip(_LEVEL_PAIRS, msg.book()):
        if price > 0 or vol > 0:
            new_price, new_vol = price, int(vol)
        else:
            new_price = new_vol = None
        if getattr(quote, name[0]) != new_price or getattr(quote, name[1]) != new_vol:
            setattr(quote, name[0], new_price)
            setattr(quote, name[1], new_vol)
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


_LEVEL_PAIRS = tuple(zip(LEVEL_FIELDS[0::2], LEVEL_FIELDS[1::2]))


def _apply_common(quote: QuoteState, msg: SecurityMsg) -> bool:
    changed = False
    for attr in ("ceiling", "floor", "ref_price"):
        value = getattr(msg, attr)
        if value and getattr(quote, attr) != value:
            setattr(quote, attr, value)
            changed = True
    exchange = msg.exchange
    if exchange and quote.exchange != exchange:
        quote.exchange = exchange
        changed = True
    session = msg.trading_session
    if session and quote.trading_session != session:
        quote.trading_session = session
        changed = True
    return changed
