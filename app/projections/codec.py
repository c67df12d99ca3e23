"""Session state <-> Redis hashes, kind by kind as the registry (app.projections.kinds) says.

Also the diff of a batch: which fields of which keys changed since the last write, so
the worker sends Redis only what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from app.keys import SessionKeys
from app.projections.hashes import Hash
from app.projections.kinds import BY_NAME, KINDS, Kind, owner_of
from app.projections.session import SessionMeta, SessionState


def key_of(keys: SessionKeys, kind: Kind, segment: str, name: str) -> str:
    """``st:{D}:stats:VNM`` for a symbol's hash, ``st:{D}:derivatives`` for a session's."""
    return keys.entity(segment, name) if kind.per_entity else keys.base + segment


def value_of(state: SessionState, kind: Kind, name: str) -> Any:
    holder = getattr(state, kind.attr)
    return holder.get(name) if kind.per_entity else holder


def encode(state: SessionState, keys: SessionKeys, kind_name: str, name: str) -> Iterator[tuple[str, Hash]]:
    """The (key, hash) pairs for one dirty entity; an empty hash means delete the key."""
    kind = BY_NAME[kind_name]
    value = value_of(state, kind, name)
    hashes = kind.encode(value) if value is not None else {}
    for segment in kind.segments:
        yield key_of(keys, kind, segment, name), hashes.get(segment, {})


def all_entities(state: SessionState) -> Iterable[tuple[str, str]]:
    for kind in KINDS:
        if kind.per_entity:
            for name in getattr(state, kind.attr):
                yield kind.name, name
        else:
            yield kind.name, ""


def encode_all(state: SessionState, keys: SessionKeys) -> dict[str, Hash]:
    """Every key of the session's projection state, as written to Redis."""
    out: dict[str, Hash] = {}
    for kind, name in all_entities(state):
        for key, fields in encode(state, keys, kind, name):
            if fields:
                out[key] = fields
    return out


def member_of(kind_name: str) -> str | None:
    """The member set a new entity of ``kind_name`` is added to."""
    kind = BY_NAME[kind_name]
    return kind.member_set if kind.owns_members else None


def member_sets(state: SessionState) -> dict[str, set[str]]:
    """The member sets as they should stand for ``state``."""
    return {k.member_set: set(getattr(state, k.attr)) for k in KINDS if k.member_set and k.owns_members}


def entity_keys(keys: SessionKeys, members: dict[str, Iterable[str]], series: bool | None = None) -> list[str]:
    """Every hash key to read to load a session, given its member sets (only the series
    kinds' keys with ``series=True``, only the others' with False)."""
    out: list[str] = []
    for kind in KINDS:
        if series is not None and (kind.changed is not None) != series:
            continue
        names = members.get(kind.member_set, ()) if kind.per_entity else ("",)
        out += [key_of(keys, kind, segment, name) for name in names for segment in kind.segments]
    return out


def decode(date: str, hashes: dict[str, dict], keys: SessionKeys, members: dict[str, Iterable[str]]) -> SessionState:
    """Rebuild a SessionState from the hashes read back from Redis."""
    state = SessionState(meta=SessionMeta(date=date))
    for kind in KINDS:
        if not kind.per_entity:
            value = kind.decode({s: hashes.get(key_of(keys, kind, s, "")) for s in kind.segments})
            if value is not None:
                setattr(state, kind.attr, value)
            continue
        owner = owner_of(kind)
        # A dependent kind exists for every entity of its owner, loaded just before it.
        names = sorted(members.get(kind.member_set, ())) if owner is kind else list(getattr(state, owner.attr))
        target = getattr(state, kind.attr)
        for name in names:
            value = kind.decode({s: hashes.get(key_of(keys, kind, s, name)) for s in kind.segments})
            if value is not None:
                target[name] = value
    return state


class Changes(NamedTuple):
    """What one batch changes in Redis, by key."""

    hset: list[tuple[str, list[str]]]  # key, [field, value, ...]
    hdel: list[tuple[str, list[str]]]  # key, [field, ...]
    delete: list[str]
    sadd: list[tuple[str, list[str]]]  # member set key, [name, ...]
    kinds: set[str]  # the kinds that changed


def dirty_by_kind(dirty: set[tuple[str, str]]) -> dict[str, list[str]]:
    """The dirty entities' names by kind, each list sorted (in KINDS order)."""
    groups: dict[str, list[str]] = {}
    for kind, name in dirty:
        names = groups.get(kind)
        if names is None:
            groups[kind] = [name]
        else:
            names.append(name)
    out: dict[str, list[str]] = {}
    for kind in KINDS:
        names = groups.get(kind.name)
        if names is not None:
            names.sort()
            out[kind.name] = names
    return out


def diff(
    state: SessionState, keys: SessionKeys, written: dict[str, Hash], members: dict[str, set[str]],
    snapshots: dict[str, tuple] | None = None, groups: dict[str, list[str]] | None = None,
) -> Changes:
    """The changes of ``state.dirty`` (or of ``groups``, its :func:`dirty_by_kind`)
    against what was written last (both updated), then clears the dirty set.

    ``written`` holds the last written fields of each key (as loaded from Redis); a kind
    with a ``delta`` is diffed by value instead, against the snapshot of the value last
    written (``snapshots``, kept from the first write on), which encodes only the changed
    fields. Both give the same changes.
    """
    changes = Changes([], [], [], [], set())
    if snapshots is None:
        snapshots = {}
    if groups is None:
        groups = dirty_by_kind(state.dirty)
    for kind_name, names in groups.items():
        changes.kinds.add(kind_name)
        kind = BY_NAME[kind_name]
        if kind.changed is not None:
            _series_changes(state, keys, kind, names, changes)
            continue
        if kind.delta is not None:
            names = _value_changes(state, keys, kind, names, changes, written, snapshots)
        for name in names:
            _hash_changes(state, keys, kind_name, name, changes, written)
        set_name = member_of(kind_name)
        if set_name:
            known = members.setdefault(set_name, set())
            new = [name for name in groups[kind_name] if name not in known]
            if new:
                known.update(new)
                changes.sadd.append((keys.members(set_name), new))
    state.dirty.clear()
    return changes


def _value_changes(
    state: SessionState, keys: SessionKeys, kind: Kind, names: list[str], changes: Changes,
    written: dict[str, Hash], snapshots: dict[str, tuple],
) -> list[str]:
    """Diff by value against the last written snapshots; returns the names with none yet
    (or no value: the key is deleted), for the caller to diff the encoded hash."""
    rest: list[str] = []
    hset, hdel = changes.hset, changes.hdel
    snapshot, delta = kind.snapshot, kind.delta
    holder, prefix = _holder_and_prefix(state, keys, kind)
    for name in names:
        key = prefix + name
        value = holder.get(name)
        before = snapshots.get(key)
        if value is None:
            snapshots.pop(key, None)
            if before is not None:  # written since loaded: a key of ours, whatever ``written`` says
                written[key] = {"": ""}
            rest.append(name)
            continue
        now = snapshots[key] = snapshot(value)
        if before is None:
            rest.append(name)
            continue
        changed, removed = delta(value, now, before)
        if changed:
            hset.append((key, changed))
        if removed:
            hdel.append((key, removed))
    return rest


def _hash_changes(
    state: SessionState, keys: SessionKeys, kind: str, name: str, changes: Changes, written: dict[str, Hash]
) -> None:
    for key, fields in encode(state, keys, kind, name):
        old = written.get(key, {})
        if not fields:
            if old:
                changes.delete.append(key)
                written.pop(key, None)
            continue
        changed = [x for f, v in fields.items() if old.get(f) != v for x in (f, v)]
        removed = [f for f in old if f not in fields]
        if changed:
            changes.hset.append((key, changed))
        if removed:
            changes.hdel.append((key, removed))
        written[key] = fields


def _holder_and_prefix(state: SessionState, keys: SessionKeys, kind: Kind) -> tuple[dict, str]:
    """A kind's values by name (one unnamed value for a session-wide kind) and its key prefix."""
    holder = getattr(state, kind.attr) if kind.per_entity else {"": getattr(state, kind.attr)}
    return holder, key_of(keys, kind, kind.segments[0], "")


def _series_changes(state: SessionState, keys: SessionKeys, kind: Kind, names: list[str], changes: Changes) -> None:
    """A series writes the fields it changed; no copy of it is kept to diff against."""
    changed = kind.changed
    hset, hdel = changes.hset, changes.hdel
    holder, prefix = _holder_and_prefix(state, keys, kind)
    for name in names:
        value = holder.get(name)
        if value is None:
            continue
        fields, gone = changed(value)
        if fields:
            hset.append((prefix + name, fields))
        if gone:
            hdel.append((prefix + name, gone))


def field_count(changes: Changes) -> int:
    """The fields (and keys, members) a write sets or deletes: what its script call costs."""
    return (
        sum(len(fields) for _, fields in changes.hset) // 2
        + sum(len(fields) for _, fields in changes.hdel)
        + len(changes.delete)
        + sum(len(names) for _, names in changes.sadd)
    )


def shown(kinds: Iterable[str]) -> bool:
    """Whether any of ``kinds`` is shown by a channel (else no notice is needed)."""
    return any(BY_NAME[k].channels for k in kinds)
