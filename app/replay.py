"""Rebuild a session's projections from its stream, or verify the live ones against it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis

from app import keys as K
from app.errors import UserError
from app.progress import Progress
from app.sessions import is_registered, session_dates
from app.store import as_str, hgetall_many, scan_slot
from app.projections import codec, kinds
from app.projections.history import TAPE_LENGTH
from app.projections.session import SessionState, clear_changes, finish_batch, new_session
from app.projections.stream import Refused, entry_of, fold_entries

CHUNK = 10_000


async def fold_stream(
    redis: Redis, date: str, until: str | None = None, progress: Progress | None = None,
    tape_length: int = TAPE_LENGTH,
) -> tuple[SessionState, list[Refused]]:
    """Fold a session's stream from the start (up to ``until`` inclusive) in memory."""
    keys = K.SessionKeys(date)
    state = new_session(date, tape_length)
    dead: list[Refused] = []
    last_id = ""

    def read(start: str) -> asyncio.Future:
        return asyncio.ensure_future(redis.xrange(keys.frames, min=start, max=until or "+", count=CHUNK))

    pending = read("-")
    while pending is not None:
        entries = await pending
        pending = None
        if not entries:
            break
        last_id = entries[-1][0].decode()
        if len(entries) == CHUNK:
            pending = read("(" + last_id)  # Redis reads ahead while we fold
        dead += await fold_entries(state, [entry_of(entry_id, fields) for entry_id, fields in entries])
        if progress:
            progress.advance(len(entries))
    state.meta.checkpoint = last_id
    finish_batch(state)
    clear_changes(state)
    return state, dead


@dataclass
class Diff:
    missing: list[str] = field(default_factory=list)  # in the replay, not live
    extra: list[str] = field(default_factory=list)  # live, not in the replay
    fields: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.fields)

    def lines(self) -> list[str]:
        out = [f"missing live key {k}" for k in self.missing]
        out += [f"unexpected live key {k}" for k in self.extra]
        out += [f"{k} {f}: live={lv!r} replay={rv!r}" for k, f, lv, rv in self.fields]
        return out


async def live_hash_names(redis: Redis, date: str) -> list[str]:
    """The names of a session's projection hashes (streams, sets and lease left out)."""
    keys = K.SessionKeys(date)
    return [as_str(key) async for key in scan_slot(redis, keys.pattern(), keys.frames, "hash")]


async def live_hashes(redis: Redis, date: str) -> dict[str, dict[str, str]]:
    """Every projection hash of a session as stored."""
    return await hgetall_many(redis, await live_hash_names(redis, date))


def compare(live: dict[str, dict[str, str]], rebuilt: dict[str, dict[str, str]]) -> Diff:
    diff = Diff()
    for key in sorted(rebuilt.keys() - live.keys()):
        diff.missing.append(key)
    for key in sorted(live.keys() - rebuilt.keys()):
        diff.extra.append(key)
    for key in sorted(live.keys() & rebuilt.keys()):
        a, b = live[key], rebuilt[key]
        for f in sorted(a.keys() | b.keys()):
            if a.get(f) != b.get(f):
                diff.fields.append((key, f, a.get(f), b.get(f)))
    return diff


async def verify(
    redis: Redis, date: str, progress: Progress | None = None, tape_length: int = TAPE_LENGTH
) -> Diff:
    """Replay up to the live checkpoint and compare every projection hash."""
    keys = K.SessionKeys(date)
    checkpoint = await redis.hget(keys.meta, "checkpoint")
    until = checkpoint.decode() if checkpoint else None
    if until is None:
        state = new_session(date)
    else:
        state, _ = await fold_stream(redis, date, until=until, progress=progress, tape_length=tape_length)
    rebuilt = codec.encode_all(state, keys) if until else {}
    return compare(await live_hashes(redis, date), rebuilt)


async def check_session(redis: Redis, date: str) -> int:
    """The length of a known session's stream; UserError for a date with no session.

    Replaying a stream that is not there would "rebuild" empty projections, or
    verify nothing against nothing and call it identical.
    """
    keys = K.SessionKeys(date)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(keys.frames)
        pipe.xlen(keys.frames)
        exists, length = await pipe.execute()
    registered = await is_registered(redis, date)
    if not registered or not exists:
        known = await session_dates(redis, newest_first=True, count=5)
        hint = f"newest: {', '.join(known)}" if known else "no sessions at all"
        missing = "no stream" if not exists else "not in " + K.SESSIONS
        raise UserError(f"no session {date} to replay ({missing}; {hint})")
    return length


async def rebuild(
    redis: Redis, date: str, progress: Progress | None = None, tape_length: int = TAPE_LENGTH
) -> SessionState:
    """Replace a session's projections with a replay of its whole stream.

    Stop the session's projector first (or it will be refused: the rebuild takes
    its lease). The consumer group is reset to the rebuilt checkpoint.
    """
    keys = K.SessionKeys(date)
    owner = "replay"
    if not await redis.set(keys.lease, owner, nx=True, px=600_000):
        raise UserError(f"session {date} is being projected; stop the projector first")
    try:
        state, dead = await fold_stream(redis, date, progress=progress, tape_length=tape_length)
        hashes = codec.encode_all(state, keys)
        stale = await live_hash_names(redis, date)  # names only: their content is replaced
        async with redis.pipeline(transaction=True) as pipe:
            if stale:
                pipe.delete(*stale)
            for name in kinds.MEMBER_SETS:
                pipe.delete(keys.members(name))
            pipe.delete(keys.dead)
            for key, fields in hashes.items():
                pipe.hset(key, mapping=fields)
            for name, members in codec.member_sets(state).items():
                if members:
                    pipe.sadd(keys.members(name), *sorted(members))
            for entry_id, reason, frame in dead:
                pipe.xadd(keys.dead, {"id": entry_id, "reason": reason, "f": frame})
            await pipe.execute()
        try:
            await redis.xgroup_destroy(keys.frames, K.GROUP)
        except Exception:
            pass
        if state.meta.checkpoint:
            await redis.xgroup_create(keys.frames, K.GROUP, id=state.meta.checkpoint, mkstream=True)
        return state
    finally:
        await redis.delete(keys.lease)
