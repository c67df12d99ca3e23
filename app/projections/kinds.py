"""The projection kinds: one entry per kind of state the folds keep.

Each entry says where the kind lives in :class:`~app.projections.session.SessionState`,
under which Redis keys it is stored (``st:{DATE}:<segment>:<name>`` per symbol or index,
``st:{DATE}:<segment>`` once per session), how it is written as plain hash fields and read
back, which SET names its entities, and which WebSocket channels and REST routes show it.
The codec, the worker, the readers and the hub all follow this table: adding a kind is
one entry here plus its pure fold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.clock import parse_hms
from app.projections import derivatives, foreign, indices, quotes, trades
from app.projections.hashes import Hash, as_str, from_hash, hms, to_hash, text
from app.projections.session import SessionMeta

Encode = Callable[[Any], dict[str, Hash]]
Decode = Callable[[dict[str, Hash]], Any]


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


def _struct(segment: str, cls: type) -> tuple[Encode, Decode]:
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


QUOTE = Kind("quote", "quotes", ("quote",), _encode_quote, _decode_quote, member_set="quote")
STATS = Kind(
    "stats", "stats", ("stats",), *_struct("stats", trades.SymbolStats), member_set="stats",
    routes=("/api/market/snapshot", "/api/market/trade-analysis/{symbol}"),
)
FOREIGN = Kind(
    "foreign", "foreign", ("foreign",), *_struct("foreign", foreign.ForeignState), member_set="foreign",
    channels=frozenset({"market", "foreign"}), routes=("/api/market/snapshot", "/api/market/foreign"),
)
FLOW = Kind(
    "flow", "flows", ("fbuy", "fsell"), _encode_flow, _decode_flow, member_set="foreign", owns_members=False,
)
INDEX = Kind(
    "index", "indices", ("index",), *_struct("index", indices.IndexState), member_set="index",
    channels=frozenset({"market", "index"}), routes=("/api/market/snapshot", "/api/market/indices"),
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
# The fold's own counters and checkpoint: written with every batch, shown by no channel.
META = Kind(
    "meta", "meta", ("meta",), *_struct("meta", SessionMeta), per_entity=False, channels=frozenset(),
)

# In load and write order: a dependent kind after the kind whose names it shares.
KINDS: tuple[Kind, ...] = (QUOTE, STATS, FOREIGN, FLOW, INDEX, INTRADAY, DERIVATIVES, FOREIGN_SUMMARY, META)
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
