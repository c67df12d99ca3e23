"""Structs <-> Redis hash fields with plain, readable names and values.

Floats are written with ``repr`` (shortest round-trip form), so state loaded back from
Redis is bit-identical to the state that was written, and replay compares byte for byte.
Lists are comma-separated; None fields are left out (absent means null).
"""

from __future__ import annotations

from itertools import compress
from operator import is_not
from typing import Any

import msgspec

from app.store import as_str

__all__ = ["Hash", "as_str", "changed_fields", "comma_list", "from_hash", "hms", "snapshot", "text", "to_hash"]

Hash = dict[str, str]


def text(value: Any) -> str:
    """One field value as stored."""
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
    # Once per changed entity per batch: text() inlined for the common types.
    out: Hash = {}
    for name, value in zip(obj.__struct_fields__, _astuple(obj)):
        kind = type(value)
        if kind is int or kind is str:
            out[name] = str(value)
        elif kind is float:
            out[name] = repr(value)
        elif value is not None:
            out[name] = text(value)
    return out


_astuple = msgspec.structs.astuple


def snapshot(obj: msgspec.Struct) -> tuple:
    """The struct's field values as they stand now, to diff a later state against (lists
    copied: a list changed in place must not look unchanged)."""
    values = _astuple(obj)
    if type(obj) in _HAS_LISTS:
        values = tuple(list(v) if type(v) is list else v for v in values)
    return values


def changed_fields(obj: msgspec.Struct, now: tuple, before: tuple) -> tuple[list[str], list[str]]:
    """([field, text, ...] set, [field, ...] deleted) from ``before`` to ``now`` (snapshots
    of ``obj``'s type): only the fields whose value changed are encoded, as to_hash would."""
    changed: list[str] = []
    removed: list[str] = []
    # A field not assigned since the snapshot holds the same object: only the others are
    # looked at (picked out in C, not compared one by one here).
    moved = list(map(is_not, now, before))
    for name, value, old in zip(
        compress(obj.__struct_fields__, moved), compress(now, moved), compress(before, moved)
    ):
        kind = type(value)
        if value == old and kind is type(old):
            continue
        if kind is int or kind is str:
            changed += (name, str(value))
        elif kind is float:
            changed += (name, repr(value))
        elif value is not None:
            changed += (name, text(value))
        else:
            removed.append(name)
    return changed, removed


def comma_list(value: str | bytes | None) -> list[str]:
    """A stored comma list (``"VNM,FPT"``) back as names; empty entries dropped."""
    return [x for x in as_str(value).split(",") if x] if value else []


def _list_fields(cls: type) -> frozenset[str]:
    return frozenset(
        f.name for f in msgspec.structs.fields(cls) if getattr(f.type, "__origin__", None) is list
    )


_LISTS: dict[type, frozenset[str]] = {}
_HAS_LISTS: set[type] = set()


def note_lists(cls: type) -> None:
    """Say that ``cls`` has list fields (snapshot() then copies them)."""
    if _list_fields(cls):
        _HAS_LISTS.add(cls)


def from_hash(data: dict, cls: type) -> Any:
    """Hash (str or bytes) -> Struct; the inverse of :func:`to_hash`."""
    fields = {as_str(k): as_str(v) for k, v in data.items()}
    lists = _LISTS.get(cls)
    if lists is None:
        lists = _LISTS[cls] = _list_fields(cls)
    for name in lists:
        if name in fields:
            fields[name] = comma_list(fields[name])
    return msgspec.convert(fields, cls, strict=False)


def hms(t: int) -> str:
    """Seconds of day -> ``HH:MM:SS`` (the field names of per-second hashes)."""
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"
