"""Decoding SSI FastConnect Broadcast frames into typed messages.

A Broadcast argument is ``{"DataType": T, "Content": C}`` where ``C`` is usually a
JSON *string* holding the payload (decoded twice), sometimes an object. Field names
are matched case-insensitively and through the aliases SSI is known to use, numbers
may be ``12.0``, ``12`` or ``"12"``. Anything that does not fit raises
:class:`FrameError` with a reason meant for the dead-letter stream.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec
from msgspec import Meta

MAX_FRAME_BYTES = 256 * 1024

# Bounds keep hostile numbers (1e300, negative prices) out of the folds.
Amount = Annotated[float, Meta(ge=0, le=1e16)]
Signed = Annotated[float, Meta(ge=-1e16, le=1e16)]
Text = Annotated[str, Meta(max_length=64)]
# Whole-string patterns end in \Z: "$" also matches before a trailing newline, so
# "VNM\n" would pass and make a second row. Symbols are upper case, as SSI sends them
# (a lower-case one would be another row for the same stock); index ids are SSI's own
# mixed-case names (VNINDEX, HNXIndex, UpcomIndex).
Symbol = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Z0-9_.\-]+\Z")]
IndexId = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+\Z")]
# [0-9], not \d: \d also takes other scripts' digits, which int() reads, so "١٠:٣٠:٠٠"
# would pass as 10:30:00 and every such spelling would grow the time cache. The ranges
# (a real time, a real calendar date) are checked where the values are read.
TradingDate = Annotated[str, Meta(pattern=r"^[0-9]{2}/[0-9]{2}/[0-9]{4}\Z")]
Hms = Annotated[str, Meta(pattern=r"^[0-9]{2}:[0-9]{2}:[0-9]{2}\Z")]

BOOK_DEPTH = 10


class FrameError(ValueError):
    """A frame that cannot be projected; ``str(exc)`` is the dead-letter reason."""


class _Base(msgspec.Struct, rename="pascal", kw_only=True):
    trading_date: TradingDate | None = None
    time: Hms | None = None


class SecurityMsg(_Base, kw_only=True):
    """X-QUOTE, X-TRADE, X and OL payloads (one shape; the DataType says which part counts).

    Fields are declared in the order SSI sends an X-QUOTE (then the X-TRADE fields in
    theirs): the decoder looks for each key from the field after the last one it
    matched, so the most frequent frame costs one comparison a key. Fields no fold
    reads are declared (as ``Any``) only to keep that order.
    """

    exchange: Text | None = None
    isin: Any = None
    symbol: Symbol
    r_type: Any = None
    ask_price1: Amount | None = None
    ask_price2: Amount | None = None
    ask_price3: Amount | None = None
    ask_price4: Amount | None = None
    ask_price5: Amount | None = None
    ask_price6: Amount | None = None
    ask_price7: Amount | None = None
    ask_price8: Amount | None = None
    ask_price9: Amount | None = None
    ask_price10: Amount | None = None
    ask_vol1: Amount | None = None
    ask_vol2: Amount | None = None
    ask_vol3: Amount | None = None
    ask_vol4: Amount | None = None
    ask_vol5: Amount | None = None
    ask_vol6: Amount | None = None
    ask_vol7: Amount | None = None
    ask_vol8: Amount | None = None
    ask_vol9: Amount | None = None
    ask_vol10: Amount | None = None
    bid_price1: Amount | None = None
    bid_price2: Amount | None = None
    bid_price3: Amount | None = None
    bid_price4: Amount | None = None
    bid_price5: Amount | None = None
    bid_price6: Amount | None = None
    bid_price7: Amount | None = None
    bid_price8: Amount | None = None
    bid_price9: Amount | None = None
    bid_price10: Amount | None = None
    bid_vol1: Amount | None = None
    bid_vol2: Amount | None = None
    bid_vol3: Amount | None = None
    bid_vol4: Amount | None = None
    bid_vol5: Amount | None = None
    bid_vol6: Amount | None = None
    bid_vol7: Amount | None = None
    bid_vol8: Amount | None = None
    bid_vol9: Amount | None = None
    bid_vol10: Amount | None = None
    trading_session: Text | None = None
    ceiling: Amount | None = None
    floor: Amount | None = None
    ref_price: Amount | None = None
    avg_price: Any = None
    prior_val: Any = None
    last_price: Amount | None = None
    last_vol: Amount | None = None
    total_val: Amount | None = None
    total_vol: Amount | None = None
    market_id: Text | None = None
    trading_status: Text | None = None
    change: Signed | None = None
    ratio_change: Signed | None = None
    est_matched_price: Any = None
    highest: Amount | None = None
    lowest: Amount | None = None
    side: Text | None = None
    open: Amount | None = None
    high: Amount | None = None
    low: Amount | None = None


class ForeignMsg(_Base):
    """R: cumulative foreign buy/sell for one symbol."""

    symbol: Symbol
    total_room: Amount | None = None
    current_room: Amount | None = None
    buy_vol: Amount | None = None
    sell_vol: Amount | None = None
    buy_val: Amount | None = None
    sell_val: Amount | None = None
    market_id: Text | None = None
    exchange: Text | None = None


class IndexMsg(_Base):
    """MI: one index value with breadth."""

    index_id: IndexId
    index_value: Amount | None = None
    prior_index_value: Amount | None = None
    change: Signed | None = None
    ratio_change: Signed | None = None
    total_qtty: Amount | None = None
    total_value: Amount | None = None
    advances: Amount | None = None
    no_changes: Amount | None = None
    declines: Amount | None = None
    ceilings: Amount | None = None
    floors: Amount | None = None
    trading_session: Text | None = None
    exchange: Text | None = None


class StatusMsg(_Base):
    """F: trading session and status of one symbol."""

    symbol: Symbol
    trading_session: Text | None = None
    trading_status: Text | None = None
    market_id: Text | None = None
    exchange: Text | None = None


class BarMsg(_Base):
    """B: one fill as a tick bar (kept, not projected)."""

    symbol: Symbol
    open: Amount | None = None
    high: Amount | None = None
    low: Amount | None = None
    close: Amount | None = None
    volume: Amount | None = None


class UnknownMsg(msgspec.Struct):
    """A DataType this service does not project; kept in the stream, skipped."""

    data_type: str


Message = Union[SecurityMsg, ForeignMsg, IndexMsg, StatusMsg, BarMsg, UnknownMsg]

# DataType -> payload type. The 2020 spec's "Quote"/"Trade" are today's X-QUOTE/X-TRADE.
_TYPES: dict[str, type] = {
    "X-QUOTE": SecurityMsg,
    "X-TRADE": SecurityMsg,
    "X": SecurityMsg,
    "OL": SecurityMsg,
    "R": ForeignMsg,
    "MI": IndexMsg,
    "F": StatusMsg,
    "B": BarMsg,
}
_DATA_TYPE_ALIASES = {"QUOTE": "X-QUOTE", "TRADE": "X-TRADE"}

# Lower-cased wire name -> canonical wire name, including SSI's known aliases.
_CANONICAL: dict[str, str] = {}
for _t in {*_TYPES.values()}:
    for _f in msgspec.structs.fields(_t):
        _CANONICAL[_f.encode_name.lower()] = _f.encode_name
_CANONICAL.update(
    {
        "rtype": "RType",
        "fbuyvol": "BuyVol",
        "fsellvol": "SellVol",
        "fbuyval": "BuyVal",
        "fsellval": "SellVal",
        "tradingtime": "Time",
        "stocksymbol": "Symbol",
    }
)
# Documented fields no projection reads: listed so frames carrying them stay on the
# fast path (exact names only) instead of being normalised key by key.
_UNUSED = frozenset(
    "RType Isin StockNo AvgPrice PriorVal EstMatchedPrice Close IndexName TotalTrade "
    "TotalQttyPt TotalValuePt AllQty AllValue IndexType TotalQttyOd TotalValueOd "
    "IndexValEst Value StockType".split()
)


class Frame(msgspec.Struct, frozen=True):
    """A decoded frame: its (normalised) DataType and payload."""

    data_type: str
    msg: Message


def _normalise(content: dict[str, Any]) -> dict[str, Any]:
    """Map case variants and aliases onto canonical names; exact names win."""
    out: dict[str, Any] = {}
    for key, value in content.items():
        canon = _CANONICAL.get(key.lower()) if isinstance(key, str) else None
        if canon is None:
            continue
        if canon == key or canon not in out:
            out[canon] = value
    return out


def _field(envelope: dict[str, Any], name: str) -> Any:
    if name in envelope:
        return envelope[name]
    lowered = name.lower()
    for key, value in envelope.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


_decode = msgspec.json.decode


class _Envelope(msgspec.Struct):
    DataType: Any = None
    Content: Any = None


# Patterned fields are matched by a regex on every decode, which costs more than the
# rest of the frame; on the fast path they decode as plain strings and each distinct
# value is checked once (a day has one date, ~1,600 symbols, ~25,000 times).
_PATTERNED = {"trading_date": TradingDate, "time": Hms, "symbol": Symbol, "index_id": IndexId}
_PASSED: set[tuple[str, str]] = set()
_PASSED_MAX = 100_000  # bounds what hostile spellings can make the cache hold


def _exact(cls: type) -> tuple[type, tuple[str, ...]]:
    """``cls`` plus the documented unused fields, refusing any other key.

    Decoding into it in one pass is only correct when every key is spelled exactly
    as the feed spells it; anything else (an alias, another case, an unknown key, a
    bad value) raises and the frame takes the general path. Also returns the
    patterned fields, which it decodes as plain strings for :func:`_patterns_hold`.
    """
    fields = msgspec.structs.fields(cls)
    own = {f.encode_name for f in fields}
    extra = [(_snake(name), Any, None) for name in sorted(_UNUSED - own)]
    patterned = tuple(f.name for f in fields if f.name in _PATTERNED)
    # Redeclared fields keep their place in the field order.
    plain = [(f.name, str) if f.required else (f.name, str | None, f.default) for f in fields if f.name in patterned]
    exact = msgspec.defstruct(
        cls.__name__, plain + extra, bases=(cls,), kw_only=True, forbid_unknown_fields=True, module=__name__
    )
    return exact, patterned


def _patterns_hold(msg: Any, patterned: tuple[str, ...]) -> bool:
    """True when every patterned value of a fast-path decode matches its pattern."""
    for name in patterned:
        value = getattr(msg, name)
        if value is None or (name, value) in _PASSED:
            continue
        try:
            msgspec.convert(value, _PATTERNED[name])
        except msgspec.ValidationError:
            return False
        if len(_PASSED) >= _PASSED_MAX:
            _PASSED.clear()
        _PASSED.add((name, value))
    return True


def _snake(pascal: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in pascal).lstrip("_")


def _fast_path(cls: type) -> tuple[msgspec.json.Decoder, tuple[str, ...]]:
    exact, patterned = _exact(cls)
    return msgspec.json.Decoder(exact, strict=False), patterned


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_EXACT = {cls: _fast_path(cls) for cls in {*_TYPES.values()}}


def decode_frame(raw: str | bytes) -> Frame:
    """Decode one Broadcast string; raises FrameError with a reason on bad input."""
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError(f"frame too large: {len(raw)} bytes > {MAX_FRAME_BYTES}")
    try:
        envelope = _ENVELOPE.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeError):
        return _decode_general(raw)
    data_type, content = envelope.DataType, envelope.Content
    if type(data_type) is not str or type(content) is not str:
        return _decode_general(raw)
    data_type = _DATA_TYPE_ALIASES.get(data_type, data_type)
    kind = _TYPES.get(data_type)
    if kind is None:
        return _decode_general(raw)
    decoder, patterned = _EXACT[kind]
    try:
        msg = decoder.decode(content)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _decode_general(raw)
    if not _patterns_hold(msg, patterned):
        return _decode_general(raw)
    return Frame(data_type, msg)


def _decode_general(raw: str | bytes) -> Frame:
    """Any casing, aliases, object Content; the precise reason when the frame is bad."""
    try:
        envelope = _decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeError) as exc:
        # msgspec reports bytes that are not UTF-8 inside a string as UnicodeDecodeError.
        raise FrameError(f"invalid JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise FrameError(f"envelope is {type(envelope).__name__}, expected an object")
    content = _field(envelope, "Content")
    if isinstance(content, str):
        try:
            content = _decode(content)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise FrameError(f"invalid JSON in Content: {exc}") from None
    if not isinstance(content, dict):
        raise FrameError("Content is missing or not an object")
    data_type = _field(envelope, "DataType")
    if data_type is None:
        data_type = content.get("RType", content.get("Rtype"))
    if not isinstance(data_type, str) or not data_type or len(data_type) > 32:
        raise FrameError("DataType is missing or not a short string")
    data_type = data_type.strip().upper()
    data_type = _DATA_TYPE_ALIASES.get(data_type, data_type)
    kind = _TYPES.get(data_type)
    if kind is None:
        return Frame(data_type, UnknownMsg(data_type))
    content = _normalise(content)
    try:
        msg = msgspec.convert(content, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise FrameError(f"{data_type}: {_reason(exc, content)}") from None
    return Frame(data_type, msg)


_PATTERN_HINTS = {
    "Symbol": "upper-case letters, digits, . _ -",
    "IndexId": "letters, digits, . _ -",
    "Time": "HH:mm:ss",
    "TradingDate": "dd/MM/yyyy",
}


def _reason(exc: msgspec.ValidationError, content: dict[str, Any]) -> str:
    """A dead-letter reason a person can read: the field, its value, what was expected."""
    text = str(exc)
    field = text.rpartition("`$.")[2].rstrip("`") if "`$." in text else ""
    if "matching regex" in text and field in _PATTERN_HINTS:
        value = repr(content.get(field))
        if len(value) > 32:  # a reason, not a copy of a hostile megabyte
            value = f"of {len(value) - 2} characters"
        return f"bad {field} {value} (expected {_PATTERN_HINTS[field]})"
    return text
