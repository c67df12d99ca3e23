"""A session's stream as the projections read it: entries, positions, folding in order.

Each entry is ``t`` (receive time, ms) plus either ``f`` (a raw frame, unchanged) or
``m`` (a marker: ``close`` at 15:00). Entry ids (``1764047200000-3``) order the stream;
the checkpoint is the id of the last entry applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import NamedTuple

from redis.asyncio import Redis

from app import keys as K
from app.projections.hashes import as_str
from app.projections.session import Close, SessionState, fold

# A stream entry as the folds take it: (id, kind, payload) where kind is b"f"
# (payload: the raw frame), b"m" (a marker, payload b"close") or b"" (neither).
Entry = tuple[bytes, bytes, bytes]
# A refused entry: (entry id, reason, raw frame or b"").
Refused = tuple[bytes, str, bytes]

_CLOSE = Close()
# Fold this many entries between yields to the event loop, so a read ahead can land.
YIELD_EVERY = 128


class StreamPosition(NamedTuple):
    """An entry id as numbers, so positions compare in stream order."""

    ms: int
    seq: int = 0

    @classmethod
    def parse(cls, entry_id: bytes | str) -> StreamPosition:
        ms, _, seq = as_str(entry_id).partition("-")
        return cls(int(ms), int(seq or 0))

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


START = StreamPosition(0, 0)


def flat_entries(reply) -> list[Entry]:
    """Raw XREADGROUP reply to entries: RESP3 ``{stream: [[id, [k, v, ...]], ...]}``
    or RESP2 ``[[stream, [...]]]``."""
    if not reply:
        return []
    entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    out: list[Entry] = []
    for entry_id, fields in entries:
        if fields and fields[0] == b"t" and len(fields) >= 4:
            out.append((entry_id, fields[2], fields[3]))  # written as t, f|m
        else:
            pairs = dict(zip(fields[0::2], fields[1::2])) if fields else None
            out.append(entry_of(entry_id, pairs))
    return out


def entry_of(entry_id: bytes, fields: dict | None) -> Entry:
    """One entry from its field dict (as XRANGE and XAUTOCLAIM return them)."""
    fields = fields or {}
    if b"f" in fields:
        return entry_id, b"f", fields[b"f"]
    if b"m" in fields:
        return entry_id, b"m", fields[b"m"]
    return entry_id, b"", b""


async def fold_entries(state: SessionState, entries: Iterable[Entry]) -> list[Refused]:
    """Fold entries in stream order; returns the refused ones (dead letters)."""
    dead, _ = await fold_until(state, list(entries))
    return dead


# How often (in entries) fold_until asks whether the write is full.
CHECK_EVERY = 16


async def fold_until(
    state: SessionState, entries: list[Entry], full: Callable[[], bool] | None = None
) -> tuple[list[Refused], int]:
    """Fold entries in stream order until ``full()`` says the changes are enough for one
    write (asked every CHECK_EVERY entries); returns the refused entries and how many
    entries were folded (all of them, without ``full``)."""
    dead: list[Refused] = []
    n = 0
    for n, (entry_id, kind, payload) in enumerate(entries, 1):
        if kind == b"f":
            refused = fold(state, payload)
        elif kind == b"m" and payload == b"close":
            refused = fold(state, _CLOSE)
        else:
            refused = fold(state, b"")
        if refused is not None:
            dead.append((entry_id, refused.reason, payload if kind == b"f" else b""))
        if n % CHECK_EVERY == 0:
            if full is not None and full():
                break
            if n % YIELD_EVERY == 0:
                # Let the loop take in the next read while we fold: a large reply left
                # unread stalls in socket buffers.
                await asyncio.sleep(0)
    return dead, n


async def stream_position(redis: Redis, date: str) -> tuple[StreamPosition | None, StreamPosition | None]:
    """(the newest entry in the session stream, the applied checkpoint); None for none."""
    keys = K.SessionKeys(date)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrevrange(keys.frames, count=1)
        pipe.hget(keys.meta, "checkpoint")
        last, checkpoint = await pipe.execute()
    return (
        StreamPosition.parse(last[0][0]) if last else None,
        StreamPosition.parse(checkpoint) if checkpoint else None,
    )


async def oldest_position(redis: Redis, date: str) -> StreamPosition | None:
    """The first entry of the session stream, or None when it is empty."""
    first = await redis.xrange(K.SessionKeys(date).frames, count=1)
    return StreamPosition.parse(first[0][0]) if first else None


async def has_work(redis: Redis, date: str) -> bool:
    """True when the session stream holds entries not applied yet."""
    last, checkpoint = await stream_position(redis, date)
    if last is None:
        return False
    return checkpoint is None or last > checkpoint
