"""Session state <-> Redis hashes with plain, readable field names.

Floats are written with ``repr`` (shortest round-trip form), so state loaded back from
Redis is bit-identical to the state that was written, and replay compares byte for byte.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import msgspec

from app.clock import parse_hms
from app.keys import SessionKeys
from app.projections import derivatives, foreign, indices, quotes, trades
from app.projections.session import SessionMeta, SessionState

Hash = dict[str, str]

# kind -> (state attribute, entity struct, member-set name)
ENTITIES: dict[str, tuple[str, type, str]] = {
    "quote": ("quotes", quotes.QuoteState, "quote"),
    "stats": ("stats", trades.SymbolStats, "stats"),
    "foreign": ("foreign", foreign.ForeignState, "foreign"),
    "index": ("indices", indices.IndexState, "index"),
}
# Sets that name the entities of a session, to enumerate them on load.
MEMBER_SETS = ("quote", "stats", "foreign", "index")


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def to_hash(obj: msgspec.Struct) -> Hash:
    """Struct -> hash fields; None fields are left out (absent means null)."""
    return {
        name: _text(value)
        for name in obj.__struct_fields__
        if (value := getattr(obj, name)) is not None
    }


def _list_fields(cls: type) -> frozenset[str]:
    return frozenset(
        f.name for f in msgspec.structs.fields(cls) if getattr(f.type, "__origin__", None) is list
    )


_LISTS: dict[type, frozenset[str]] = {}


def from_hash(data: dict, cls: type) -> Any:
    """Hash (str or bytes) -> Struct; the inverse of :func:`to_hash`."""
    fields = {as_str(k): as_str(v) for k, v in data.items()}
    lists = _LISTS.get(cls)
    if lists is None:
        lists = _LISTS[cls] = _list_fields(cls)
    for name in lists:
        if name in fields:
            fields[name] = [x for x in fields[name].split(",") if x]
    return msgspec.convert(fields, cls, strict=False)


def as_str(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _hms(t: int) -> str:
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def _seconds_hash(values: dict[int, Any]) -> Hash:
    return {_hms(t): _text(v) for t, v in sorted(values.items())}


def encode(state: SessionState, keys: SessionKeys, kind: str, name: str) -> Iterator[tuple[str, Hash]]:
    """The (key, hash) pairs for one dirty entity; an empty hash means delete the key."""
    if kind == "quote":
        q = state.quotes.get(name)
        yield keys.entity(kind, name), quotes.to_hash(q) if q is not None else {}
    elif kind in ENTITIES:
        attr, _, _ = ENTITIES[kind]
        obj = getattr(state, attr).get(name)
        yield keys.entity(kind, name), to_hash(obj) if obj is not None else {}
    elif kind == "flow":
        window = state.flows.get(name) or foreign.FlowWindow()
        yield keys.entity("fbuy", name), _seconds_hash(window.buy)
        yield keys.entity("fsell", name), _seconds_hash(window.sell)
    elif kind == "intraday":
        line = state.intraday.get(name, {})
        yield keys.entity("intraday", name), {_hms(t)[:5]: repr(v) for t, v in sorted(line.items())}
    elif kind == "derivatives":
        yield keys.derivatives, to_hash(state.derivatives) if state.derivatives else {}
    elif kind == "foreign_summary":
        yield keys.foreign, to_hash(state.foreign_summary) if state.foreign_summary else {}
    elif kind == "meta":
        yield keys.meta, to_hash(state.meta)
    else:  # pragma: no cover - a programming error, not bad input
        raise KeyError(kind)


def member_of(kind: str) -> str | None:
    """The member set a new entity of ``kind`` is added to."""
    entry = ENTITIES.get(kind)
    return entry[2] if entry else None


def encode_all(state: SessionState, keys: SessionKeys) -> dict[str, Hash]:
    """Every key of the session's projection state, as written to Redis."""
    out: dict[str, Hash] = {}
    for kind, name in all_entities(state):
        for key, fields in encode(state, keys, kind, name):
            if fields:
                out[key] = fields
    return out


def all_entities(state: SessionState) -> Iterable[tuple[str, str]]:
    for kind, (attr, _, _) in ENTITIES.items():
        for name in getattr(state, attr):
            yield kind, name
    for name in state.flows:
        yield "flow", name
    for name in state.intraday:
        yield "intraday", name
    yield "derivatives", ""
    yield "foreign_summary", ""
    yield "meta", ""


def member_sets(state: SessionState) -> dict[str, set[str]]:
    """The member sets as they should stand for ``state``."""
    return {
        ENTITIES[kind][2]: set(getattr(state, ENTITIES[kind][0])) for kind in ENTITIES
    }


def decode(date: str, hashes: dict[str, dict], keys: SessionKeys, members: dict[str, Iterable[str]]) -> SessionState:
    """Rebuild a SessionState from the hashes read back from Redis."""
    meta_hash = hashes.get(keys.meta)
    meta = from_hash(meta_hash, SessionMeta) if meta_hash else SessionMeta(date=date)
    state = SessionState(meta=meta)
    for kind, (attr, cls, set_name) in ENTITIES.items():
        target = getattr(state, attr)
        for name in sorted(members.get(set_name, ())):
            data = hashes.get(keys.entity(kind, name))
            if data:
                if kind == "quote":
                    target[name] = quotes.from_hash({as_str(k): as_str(v) for k, v in data.items()})
                else:
                    target[name] = from_hash(data, cls)
    for name in state.foreign:
        state.flows[name] = foreign.FlowWindow(
            buy=_seconds_map(hashes.get(keys.entity("fbuy", name)), int),
            sell=_seconds_map(hashes.get(keys.entity("fsell", name)), int),
        )
    for name in state.indices:
        raw = hashes.get(keys.entity("intraday", name)) or {}
        state.intraday[name] = {parse_hms(as_str(k) + ":00"): float(as_str(v)) for k, v in raw.items()}
    if (d := hashes.get(keys.derivatives)):
        state.derivatives = from_hash(d, derivatives.DerivativesState)
    if (f := hashes.get(keys.foreign)):
        state.foreign_summary = from_hash(f, foreign.ForeignSummary)
    return state


def _seconds_map(raw: dict | None, cast) -> dict[int, Any]:
    if not raw:
        return {}
    return {parse_hms(as_str(k)): cast(as_str(v)) for k, v in raw.items()}


def entity_keys(keys: SessionKeys, members: dict[str, Iterable[str]]) -> list[str]:
    """Every hash key to read to load a session, given its member sets."""
    out = [keys.meta, keys.derivatives, keys.foreign]
    for kind, (_, _, set_name) in ENTITIES.items():
        for name in members.get(set_name, ()):
            out.append(keys.entity(kind, name))
            if kind == "foreign":
                out += [keys.entity("fbuy", name), keys.entity("fsell", name)]
            elif kind == "index":
                out.append(keys.entity("intraday", name))
    return out
