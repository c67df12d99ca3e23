"""The projection kinds: one entry per kind of state the folds keep.

Each entry says where the kind lives in :class:`~app.projections.session.SessionState`,
under which Redis keys it is stored (``st:{DATE}:<segment>:<name>`` per symbol or index,
``st:{DATE}:<segment>`` once per session), how it is written as plain hash fields and read
back, which SET names its entities, and which WebSocket channels and REST routes show it.
The codec, the worker, the readers and the hub all follow this table: adding a kind is
one entry here plus its pure fold.
"""

from __future__ import annotations

import functools
from collections import deque
from itertools import islice
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.clock import parse_hms
from app.projections import derivatives, foreign, history, indices, quotes, trades
from app.projections.hashes import Hash, as_str, changed_fields, from_hash, hms, note_lists, snapshot, to_hash, text
from app.projections.session import SessionMeta

Encode = Callable[[Any], dict[str, Hash]]
Decode = Callable[[dict[str, Hash]], Any]
# A series kind's changed fields: value -> ([field, text, ...] to set, fields to delete).
Changed = Callable[[Any], tuple[list[str], list[str]]]


@dataclass(frozen=True)
class Kind:
    """One kind of projection state."""

    name: str  # the tag the fold marks dirty, e.g. ("stats", "VNM")
    attr: str  # the SessionState attribute holding it
    segments: tuple[str, ...]  # key segments it is stored under (most kinds: one)
    encode: Encode  # value -> {segment: hash fields}; {} fields = delete the key
    decode: Decode  # {segment: hash fields} -> value (None: no such entity)
    per_entity: bool = True  # one value per symbol or index, else one per session
    member_set: str | None = None  # the SET naming its entities
    owns_members: bool = True  # False: its names are another kind's (its member_set)
    channels: frozenset[str] = frozenset({"market"})  # WS channels that change with it
    routes: tuple[str, ...] = ()  # REST routes that show it
    # Series (one hash field per minute or trade): a batch writes only the fields it
    # changed, without diffing the whole hash against the last write.
    changed: Changed | None = None
    # Single-segment kinds may diff by value: snapshot(value) -> tuple, and
    # delta(value, snapshot now, snapshot last written) -> ([field, text, ...], [field, ...]),
    # so a batch encodes only the fields that changed, not the whole hash to compare it.
    snapshot: Callable[[Any], tuple] | None = None
    delta: Callable[[Any, tuple, tuple], tuple[list[str], list[str]]] | None = None


def _struct(segment: str, cls: type) -> tuple[Encode, Decode]:
    note_lists(cls)

    def encode(value: Any) -> dict[str, Hash]:
        return {segment: to_hash(value)}

    def decode(hashes: dict[str, Hash]) -> Any:
        data = hashes.get(segment)
        return from_hash(data, cls) if data else None

    return encode, decode


def _encode_quote(q: quotes.QuoteState) -> dict[str, Hash]:
    return {"quote": quotes.to_hash(q)}


def _decode_quote(hashes: dict[str, Hash]) -> quotes.QuoteState | None:
    data = hashes.get("quote")
    return quotes.from_hash({as_str(k): as_str(v) for k, v in data.items()}) if data else None


def _encode_flow(window: foreign.FlowWindow) -> dict[str, Hash]:
    return {"fbuy": _by_second(window.buy), "fsell": _by_second(window.sell)}


def _decode_flow(hashes: dict[str, Hash]) -> foreign.FlowWindow:
    return foreign.FlowWindow(buy=_seconds(hashes.get("fbuy")), sell=_seconds(hashes.get("fsell")))


def _by_second(values: dict[int, int]) -> Hash:
    return {hms(t): text(v) for t, v in sorted(values.items())}


def _seconds(raw: dict | None) -> dict[int, int]:
    return {parse_hms(as_str(k)): int(as_str(v)) for k, v in (raw or {}).items()}


def _encode_intraday(line: dict[int, float]) -> dict[str, Hash]:
    # Field = the minute (HH:MM), value = the last index value seen in it.
    return {"intraday": {hms(t)[:5]: repr(v) for t, v in sorted(line.items())}}


def _decode_intraday(hashes: dict[str, Hash]) -> dict[int, float]:
    raw = hashes.get("intraday") or {}
    return {parse_hms(as_str(k) + ":00"): float(as_str(v)) for k, v in raw.items()}


_BY_VALUE = {"snapshot": snapshot, "delta": changed_fields}
QUOTE = Kind(
    "quote", "quotes", ("quote",), _encode_quote, _decode_quote, member_set="quote",
    snapshot=quotes.snapshot, delta=quotes.changed_fields,
)
STATS = Kind(
    "stats", "stats", ("stats",), *_struct("stats", trades.SymbolStats), member_set="stats",
    routes=("/api/market/snapshot", "/api/market/trade-analysis/{symbol}"), **_BY_VALUE,
)
FOREIGN = Kind(
    "foreign", "foreign", ("foreign",), *_struct("foreign", foreign.ForeignState), member_set="foreign",
    channels=frozenset({"market", "foreign"}), routes=("/api/market/snapshot", "/api/market/foreign"), **_BY_VALUE,
)
FLOW = Kind(
    "flow", "flows", ("fbuy", "fsell"), _encode_flow, _decode_flow, member_set="foreign", owns_members=False,
)
INDEX = Kind(
    "index", "indices", ("index",), *_struct("index", indices.IndexState), member_set="index",
    channels=frozenset({"market", "index"}), routes=("/api/market/snapshot", "/api/market/indices"), **_BY_VALUE,
)
INTRADAY = Kind(
    "intraday", "intraday", ("intraday",), _encode_intraday, _decode_intraday, member_set="index",
    owns_members=False, channels=frozenset({"market", "index"}),
    routes=("/api/market/snapshot", "/api/market/indices"),
)
DERIVATIVES = Kind(
    "derivatives", "derivatives", ("derivatives",), *_struct("derivatives", derivatives.DerivativesState),
    per_entity=False, routes=("/api/market/snapshot", "/api/market/derivatives"),
)
FOREIGN_SUMMARY = Kind(
    "foreign_summary", "foreign_summary", ("foreign",), *_struct("foreign", foreign.ForeignSummaryState),
    per_entity=False, channels=frozenset({"market", "foreign"}),
    routes=("/api/market/snapshot", "/api/market/foreign"),
)
def _number(text_value: str) -> int | float:
    return float(text_value) if "." in text_value or "e" in text_value else int(text_value)


_MINUTES: dict[int, str] = {}  # minute start -> "HH:MM"; at most 1,440 entries


def _minute_field(t: int) -> str:
    field = _MINUTES.get(t)
    if field is None:
        field = hms(t)[:5]
        if 0 <= t < 86_400:
            _MINUTES[t] = field
    return field


def _series(segment: str) -> tuple[Encode, Decode, Changed]:
    """A history.Series stored as one hash: field ``HH:MM``, value its numbers."""

    def encode(series: history.Series) -> dict[str, Hash]:
        return {segment: {_minute_field(t): _row(p) for t, p in sorted(series.points.items())}}

    def decode(hashes: dict[str, Hash]) -> history.Series:
        raw = hashes.get(segment) or {}
        points = {parse_hms(as_str(k) + ":00"): [_number(x) for x in as_str(v).split(",")] for k, v in raw.items()}
        return history.Series(points=dict(sorted(points.items())))

    def changed(series: history.Series) -> tuple[list[str], list[str]]:
        points = series.points
        changed = sorted(series.changed)
        out = [x for t in changed if t in points for x in (_minute_field(t), _row(points[t]))]
        gone = [_minute_field(t) for t in changed if t not in points] if len(out) < 2 * len(changed) else []
        series.changed.clear()
        return out, gone

    return encode, decode, changed


def _row(values: list) -> str:
    # Rows hold ints and floats, whose str() is text(); anything else is spelled by text().
    row = ",".join(map(str, values))
    if "True" in row or "False" in row or "[" in row:
        row = ",".join(text(v) for v in values)
    return row


def _tape_entry(entry: tuple) -> str:
    _, t, price, volume, side, ssi_side = entry
    return f"{_hms(t)},{price!r},{volume},{side},{ssi_side}"


_hms = functools.lru_cache(maxsize=8192)(hms)  # one tape entry per trade: the times repeat


def _encode_tape(tape: history.Tape) -> dict[str, Hash]:
    return {"tape": {str(e[0]): _tape_entry(e) for e in tape.trades}}


def _decode_tape(hashes: dict[str, Hash]) -> history.Tape:
    entries = []
    for k, v in (hashes.get("tape") or {}).items():
        t, price, volume, side, ssi_side = as_str(v).split(",")
        entries.append((int(as_str(k)), parse_hms(t), _number(price), int(volume), side, ssi_side))
    return history.Tape(trades=deque(sorted(entries, key=lambda e: e[0])))


def _tape_changed(tape: history.Tape) -> tuple[list[str], list[str]]:
    # The added trades are the newest ones, at its end: no walk of it all. A number both
    # added and dropped since the last write is deleted though never written (a no-op).
    entry = _tape_entry
    out = [x for e in islice(reversed(tape.trades), tape.added) for x in (str(e[0]), entry(e))]
    gone = [str(n) for n in tape.dropped]
    tape.added = 0
    tape.dropped.clear()
    return out, gone


_CANDLES = _series("candles")
CANDLES = Kind(
    "candles", "candles", ("candles",), _CANDLES[0], _CANDLES[1], member_set="stats", owns_members=False,
    changed=_CANDLES[2], channels=frozenset({"candles"}), routes=("/api/history/candles/{symbol}",),
)
TAPE = Kind(
    "tape", "tape", ("tape",), _encode_tape, _decode_tape, member_set="stats", owns_members=False,
    changed=_tape_changed, channels=frozenset({"trades"}), routes=("/api/market/trades/{symbol}",),
)
_FMINUTES = _series("fminutes")
FOREIGN_MINUTES = Kind(
    "foreign_minutes", "foreign_minutes", ("fminutes",), _FMINUTES[0], _FMINUTES[1], member_set="foreign",
    owns_members=False, changed=_FMINUTES[2], channels=frozenset({"foreign_history"}),
    routes=("/api/history/foreign",),
)
MARKET_FOREIGN = Kind(
    "market_foreign", "market_foreign", ("fminutes",), _FMINUTES[0], _FMINUTES[1], per_entity=False,
    changed=_FMINUTES[2], channels=frozenset({"foreign_history"}), routes=("/api/history/foreign",),
)
_IBARS = _series("ibars")
INDEX_BARS = Kind(
    "index_bars", "index_bars", ("ibars",), _IBARS[0], _IBARS[1], member_set="index", owns_members=False,
    changed=_IBARS[2], channels=frozenset({"index_history"}), routes=("/api/history/index/{index_id}",),
)
_BASIS = _series("basis")
BASIS_LINE = Kind(
    "basis_line", "basis_line", ("basis",), _BASIS[0], _BASIS[1], per_entity=False, changed=_BASIS[2],
    channels=frozenset({"basis"}), routes=("/api/history/basis",),
)

# The fold's own counters and checkpoint: written with every batch, shown by no channel.
META = Kind(
    "meta", "meta", ("meta",), *_struct("meta", SessionMeta), per_entity=False, channels=frozenset(), **_BY_VALUE,
)

# In load and write order: a dependent kind after the kind whose names it shares.
KINDS: tuple[Kind, ...] = (
    QUOTE, STATS, FOREIGN, FLOW, INDEX, INTRADAY, DERIVATIVES, FOREIGN_SUMMARY,
    CANDLES, TAPE, FOREIGN_MINUTES, MARKET_FOREIGN, INDEX_BARS, BASIS_LINE, META,
)
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
# The SETs that name a session's entities, to enumerate them on load.
MEMBER_SETS: tuple[str, ...] = tuple(k.member_set for k in KINDS if k.member_set and k.owns_members)


def channel_kinds(channel: str) -> frozenset[str]:
    """The kinds whose changes a WebSocket channel shows."""
    return frozenset(k.name for k in KINDS if channel in k.channels)


def owner_of(kind: Kind) -> Kind:
    """The kind whose entities name ``kind``'s (itself unless it shares another's)."""
    if kind.owns_members:
        return kind
    return next(k for k in KINDS if k.owns_members and k.member_set == kind.member_set)
