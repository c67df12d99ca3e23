"""Ingest: append every frame, unchanged, to the stream of its trading day.

The trading day comes from the frame's own ``TradingDate`` (found with a byte-level
search, nothing is parsed away) as :mod:`app.ingest.routing` decides. Frames are appended in
batches through one Lua call per session stream, so a burst costs one round trip;
an idle feed appends frame by frame with no added delay.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from app import keys as K
from app import archive, lua, sessions, store
from app.errors import UserError
from app.clock import close_of, next_close, now_vn
from app.ingest.replicas import NotReplicated, Replicas
from app.ingest.routing import SessionRouter
from app.tasks import ahead

log = logging.getLogger("stock_tracker.ingest")

APPEND = lua.load(__file__, "append.lua")

def _as_bytes(frame: str | bytes) -> bytes:
    return frame.encode() if isinstance(frame, str) else frame


# Redis is away (restarting, loading its AOF, unreachable, a cluster failing over), or
# a replica has not confirmed a batch yet: wait and resend.
UNAVAILABLE = (*store.UNAVAILABLE, NotReplicated)
RETRY_MAX_S = 2.0
# While Redis stays away, a reminder this often (the first failure is always logged).
RETRY_LOG_S = 30.0
# Batches in flight at once. Where a replica must confirm each batch (WAIT), one in flight
# leaves Redis idle for a replication round trip per batch; with two, the next batch is
# appended meanwhile. More would only queue behind the same master.
WINDOW = 2


@dataclass
class _Batch:
    """A batch on its way: its number, the sessions it writes to, the task sending it."""

    number: int
    sessions: frozenset[str]
    task: asyncio.Future | None = None
    confirmed: bool = False  # appended (and, where there is a replica, WAIT confirmed)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # confirmed, or given up


class _Refused(Exception):
    """A batch reached Redis before the one it follows: nothing was appended."""


class StreamWriter:
    """Appends frames and close markers; registers each session it writes to.

    While Redis is away every append is retried until it lands, exactly once: each
    batch carries a number, and Redis keeps the last one this writer appended. Where
    the master has replicas (a cluster, or a primary with replicas), a batch counts as
    appended only once ``WAIT`` says one of them has it, so a failover cannot lose it.

    Two batches may be in flight (:data:`WINDOW`), each on a connection of its own, so
    the second can reach Redis first: the append script then refuses it until the
    first is in, and the writer sends it again. A batch counts as appended once it and
    every batch before it are confirmed.
    """

    def __init__(
        self, redis: Redis, retention_days: int = 7, give_up_after_s: float | None = None,
        archive_dir: str | None = None, replica_wait_ms: int = 1000,
    ) -> None:
        self.redis = redis
        self.retention_days = retention_days
        # Set: retention archives a session there before deleting it (and keeps it if that fails).
        self.archive_dir = archive_dir or None
        # None: retry forever (the live feed). A one-shot load re-raises Redis's error
        # once it has been away this long, rather than hang.
        self.give_up_after_s = give_up_after_s
        self.writer_id = secrets.token_hex(8)
        self._batch = 0
        self._sha: str | None = None
        self._inflight: deque[_Batch] = deque()  # oldest first
        self._known: set[str] = set()
        self.router = SessionRouter()
        self.replicas = Replicas(redis, replica_wait_ms)
        self.appended = 0  # frames Redis (and a replica, where there is one) confirmed
        self.retries = 0

    @property
    def sessions(self) -> list[str]:
        """The sessions this writer has appended to or closed (pruned ones left out), oldest first."""
        return sorted(self._known)

    async def append(self, frames: Iterable[tuple[str | bytes, int]], session: str | None = None) -> int:
        """Append (frame, receive-time ms) pairs; one script call per session.

        ``session`` puts every frame in that session instead of routing each (a restore
        of an archive, whose frames were routed when they were first received)."""
        by_session: dict[str, tuple[list[bytes], list[int]]] = {}
        route = self.router.route
        fixed = session
        for frame, received_ms in frames:
            raw = frame if type(frame) is bytes else _as_bytes(frame)
            session = fixed or route(raw, received_ms)
            group = by_session.get(session)
            if group is None:
                group = by_session[session] = ([], [])
            group[0].append(raw)
            group[1].append(received_ms)
        if not by_session:
            return 0
        new = [d for d in by_session if d not in self._known]
        self._known.update(new)
        # Redis appends this batch (and a replica confirms the one before) while the
        # caller prepares the next one.
        while len(self._inflight) >= WINDOW:
            await self._inflight.popleft().task
        self._batch += 1
        n = sum(len(group[0]) for group in by_session.values())
        previous = self._inflight[-1] if self._inflight else None
        batch = _Batch(self._batch, frozenset(by_session))
        batch.task = ahead(self._send(by_session, new, batch, previous, n))  # flush() raises its error
        self._inflight.append(batch)
        return n

    async def flush(self) -> None:
        """Wait until everything appended so far is in Redis (raises the first error)."""
        error: BaseException | None = None
        while self._inflight:
            try:
                await self._inflight.popleft().task
            except Exception as exc:  # the later batches are still awaited: none left running
                error = error or exc
        if error is not None:
            raise error

    async def _send(
        self, by_session: dict[str, tuple[list[bytes], list[int]]], new: list[str], batch: _Batch,
        previous: _Batch | None, frames: int,
    ) -> None:
        async def attempt() -> None:
            if self._sha is None:
                self._sha = await self.redis.script_load(APPEND.source)
            try:
                await self._pipeline(by_session, new, batch.number, previous)
            except NoScriptError:
                # Redis restarted and lost its script cache; nothing was appended.
                self._sha = await self.redis.script_load(APPEND.source)
                await self._pipeline(by_session, new, batch.number, previous)

        async def send() -> None:
            while True:
                try:
                    return await attempt()
                except _Refused:
                    # It overtook the batch before it: again once that one is in.
                    await previous.done.wait()
                    if not previous.confirmed:
                        # That one failed (a one-shot load gave up): this one must not
                        # land without it. Not an outage to wait out: it would never land.
                        await asyncio.wait([previous.task])
                        cause = None if previous.task.cancelled() else previous.task.exception()
                        raise _Refused(f"batch {batch.number} follows batch {previous.number}, which failed") from cause

        try:
            await self._until_done("append", send)
            if previous is not None:
                # Acknowledged in order: a batch counts after every batch before it.
                await previous.done.wait()
            batch.confirmed = True
            self.appended += frames
        finally:
            batch.done.set()

    async def _until_done(self, what: str, op) -> None:
        """Run ``op`` until Redis takes it, waiting out restarts (each attempt is safe to repeat)."""
        delay, failures, next_log, refusal_logged = 0.05, 0, 0.0, False
        give_up_at = None if self.give_up_after_s is None else time.monotonic() + self.give_up_after_s
        while True:
            try:
                await op()
            except UNAVAILABLE as exc:
                refused = store.auth_refused(exc)
                if give_up_at is not None and (refused or time.monotonic() >= give_up_at):
                    raise  # a one-shot command: a refused password is not an outage to wait out
                failures += 1
                self.retries += 1
                if refused:
                    if not refusal_logged:  # once: only fixing REDIS_URL helps, the retries stay quiet
                        refusal_logged = True
                        log.error("event=redis_auth_refused op=%s detail=%s", what, str(exc)[:200])
                elif failures == 1 or time.monotonic() >= next_log:
                    next_log = time.monotonic() + RETRY_LOG_S
                    log.warning(
                        "event=redis_unavailable op=%s attempt=%d error=%s detail=%s",
                        what, failures, type(exc).__name__, str(exc)[:200],
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if failures:
                log.info("event=redis_back op=%s attempts=%d", what, failures + 1)
            return

    async def _pipeline(
        self, by_session: dict[str, tuple[list[bytes], list[int]]], new: list[str], batch: int,
        previous: _Batch | None = None,
    ) -> None:
        """One attempt at the whole batch (safe to repeat); :class:`_Refused` if it came too early."""
        # Registered first, on its own: st:sessions lives outside every session's slot,
        # and a stream that exists is then always a known session.
        for d in new:
            await sessions.register(self.redis, d)
        mark = str(batch)
        for d, (raws, times) in by_session.items():
            # Read at each attempt: once the batch before is confirmed, nothing is waited
            # for (its mark may even be gone since, with a pruned session or a Redis
            # restarted without its data: this batch then lands as with one in flight).
            after = previous.number if previous is not None and not previous.confirmed and d in previous.sessions else 0
            # Three arguments whatever the batch size: redis-py spends far more
            # per argument (and per reply) than Redis spends appending a frame.
            stamp = str(times[0]) if times.count(times[0]) == len(times) else ",".join(map(str, times))
            keys = K.SessionKeys(d)
            script_keys, args = APPEND.bind(
                keys={"frames": keys.frames, "mark": keys.ingest_mark(self.writer_id)},
                args={"received": stamp, "lengths": ",".join(map(str, map(len, raws))),
                      "blob": b"".join(raws), "batch": mark, "after": str(after)},
            )
            # The script's keys share the session's slot: on a cluster, its master alone
            # runs it (and the WAIT after it), pipelined.
            replies = await self.replicas.write(
                keys.frames,
                lambda pipe: pipe.execute_command("EVALSHA", self._sha, len(script_keys), *script_keys, *args),
            )
            if int(replies[0]) < 0:
                raise _Refused(f"batch {batch} before batch {after} in {d}")

    async def close_session(self, session: str, at_ms: int | None = None) -> None:
        """Append the 15:00 session-close marker to ``session``'s stream."""
        await self.flush()  # the marker goes after every frame appended before it
        at_ms = at_ms if at_ms is not None else int(time.time() * 1000)
        keys = K.SessionKeys(session)
        frames = keys.frames

        async def close() -> None:
            # A resend after a lost reply must not add a second marker.
            await sessions.register(self.redis, session)
            last = await self.redis.xrevrange(frames, count=1)
            done = last and last[0][1].get(b"m") == b"close" and last[0][1].get(b"t") == str(at_ms).encode()

            def write(pipe) -> None:
                if not done:
                    pipe.xadd(frames, {"t": at_ms, "m": "close"})
                # Written either way: after a lost reply, a WAIT then covers the marker too.
                pipe.set(keys.closed, at_ms)

            await self.replicas.write(frames, write)

        await self._until_done("close", close)
        self._known.add(session)
        log.info("event=session_close date=%s", session)
        try:
            await self.prune(session)
        except UNAVAILABLE as exc:  # the next close prunes them
            log.warning("event=prune_skipped error=%s", type(exc).__name__)

    async def prune(self, newest: str) -> list[str]:
        """Delete sessions older than the retention window (never ``newest``)."""
        await self.flush()
        cutoff = date.fromisoformat(newest) - timedelta(days=self.retention_days)
        old = await sessions.session_dates(self.redis, before=cutoff.isoformat())
        pruned = []
        for d in old:
            if self.archive_dir is not None:
                try:
                    path = archive.default_path(self.archive_dir, d)
                    entries = await archive.archive_session(self.redis, d, path)
                except (OSError, UserError) as exc:
                    # The stream is the truth: without its copy it stays, and the next close retries.
                    log.error("event=archive_failed date=%s error=%s detail=%s", d, type(exc).__name__, exc)
                    continue
                log.info("event=session_archived date=%s entries=%d path=%s", d, entries, path)
            await delete_session(self.redis, d)
            self._known.discard(d)
            pruned.append(d)
            log.info("event=session_pruned date=%s", d)
        return pruned


async def delete_session(redis: Redis, session: str) -> None:
    """Remove a session's stream and every projection key."""
    batch: list = []
    keys = K.SessionKeys(session)
    async for key in store.scan_slot(redis, keys.pattern(), keys.frames):
        batch.append(key)
        if len(batch) >= 500:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)
    await sessions.forget(redis, session)


def now_ms() -> int:
    return int(time.time() * 1000)


async def drain_queue(queue: asyncio.Queue, writer: StreamWriter, max_batch: int = 1000) -> None:
    """Forever: take whatever is queued (at least one) and append it in one go."""
    while True:
        item = await queue.get()
        batch = [item]
        while len(batch) < max_batch and not queue.empty():
            batch.append(queue.get_nowait())
        await writer.append(batch)
        await writer.flush()  # live: each batch lands before the next is taken
        for _ in batch:
            queue.task_done()


async def close_missed(writer: StreamWriter, now: datetime, look_back: int = 7) -> list[str]:
    """Close the recent sessions whose 15:00 passed while no live ingest ran to close them.

    Called before the feed starts, so nothing received now lands ahead of a marker. The
    marker carries its session's 15:00 as receive time, as if written on time.
    """
    closed = []
    for day in await sessions.session_dates(writer.redis, newest_first=True, count=look_back):
        close = close_of(date.fromisoformat(day))
        if close <= now and not await writer.redis.exists(K.SessionKeys(day).closed):
            await writer.close_session(day, int(close.timestamp() * 1000))
            closed.append(day)
    return sorted(closed)


async def close_at_three(writer: StreamWriter, clock=now_vn, sleep=asyncio.sleep) -> None:
    """Forever: at each 15:00 Vietnam time, close that day's session."""
    while True:
        now = clock()
        close = next_close(now)
        await sleep((close - now).total_seconds())
        await writer.close_session(close.date().isoformat(), int(close.timestamp() * 1000))


async def read_file(path: str | Path, chunk: int = 5000) -> AsyncIterator[list[bytes]]:
    """The non-blank lines of a JSONL file of Broadcast strings, in chunks."""
    lines: list[bytes] = []
    tail = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 22)
            if not block:
                break
            # Split whole blocks in C rather than line by line in Python.
            parts = (tail + block).split(b"\n")
            tail = parts.pop()
            lines += [p.strip() for p in parts if p.strip()]
            while len(lines) >= chunk:
                yield lines[:chunk]
                lines = lines[chunk:]
                await asyncio.sleep(0)
    if tail.strip():
        lines.append(tail.strip())
    while lines:
        yield lines[:chunk]
        lines = lines[chunk:]
