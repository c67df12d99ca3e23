"""Projection worker: folds a session's stream into Redis hashes, exactly once.

One worker owns a session stream at a time (a lease); it reads batches through the
consumer group, folds them in memory, and applies the changed keys, dead letters,
checkpoint and XACK in one Lua script that refuses a worker whose lease or checkpoint
is stale. A crash anywhere therefore neither loses nor double-counts a frame: entries
up to the checkpoint are skipped on restart, the rest are folded again from the
pending list (a dead worker's pending entries are claimed by its successor).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from pathlib import Path

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TimeoutError as RedisTimeoutError

from app import keys as K
from app.config import Settings
from app.projections import codec
from app.projections.session import Close, SessionState, fold, finish_batch
from app.store import hgetall_many

log = logging.getLogger("stock_tracker.projector")

APPLY_LUA = Path(__file__).with_name("apply.lua").read_text()
RENEW_LUA = Path(__file__).with_name("renew.lua").read_text()

# A stream entry as the worker handles it: (id, kind, payload) where kind is b"f"
# (payload: the raw frame), b"m" (a marker, payload b"close") or b"" (neither).
Entry = tuple[bytes, bytes, bytes]


def _identity(response, **options):
    return response


def _flat_entries(reply) -> list[Entry]:
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
            out.append(_entry(entry_id, pairs))
    return out


def _entry(entry_id: bytes, fields: dict | None) -> Entry:
    fields = fields or {}
    if b"f" in fields:
        return entry_id, b"f", fields[b"f"]
    if b"m" in fields:
        return entry_id, b"m", fields[b"m"]
    return entry_id, b"", b""
_JSON = msgspec.json.Encoder()


class NotOwner(Exception):
    """Another worker holds the session's lease (or advanced its checkpoint)."""


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Notice(msgspec.Struct):
    """Change notice published on ``st:notify`` after each applied batch; the API
    nodes decode the same type."""

    date: str
    kinds: list[str]
    checkpoint: str = ""


class SessionProjector:
    """Folds one session's stream; see the module docstring for the guarantees."""

    def __init__(self, redis: Redis, date: str, settings: Settings, consumer: str | None = None):
        self.redis = redis
        self.date = date
        self.keys = K.SessionKeys(date)
        self.settings = settings
        self.consumer = consumer or consumer_name()
        self.state: SessionState | None = None
        self._written: dict[str, codec.Hash] = {}
        self._members: dict[str, set[str]] = {}
        self._checkpoint: tuple[int, int] = (0, 0)
        self._backlog: list[Entry] = []
        self._prefetch: asyncio.Future | None = None
        self._inflight: asyncio.Future | None = None
        self._script = redis.register_script(APPLY_LUA)
        self._renew = redis.register_script(RENEW_LUA)
        # Same connections, but XREADGROUP replies stay flat lists: building a dict
        # per entry costs more than the rest of the read.
        self._raw = Redis(connection_pool=redis.connection_pool)
        self._raw.set_response_callback("XREADGROUP", _identity)

    # -- ownership and loading -------------------------------------------------

    async def acquire(self) -> bool:
        """Take the session's lease if free (or already ours); then load state."""
        lease_ms = self.settings.projector_lease_ms
        got = await self.redis.set(self.keys.lease, self.consumer, nx=True, px=lease_ms)
        if not got:
            holder = await self.redis.get(self.keys.lease)
            if holder is None or holder.decode() != self.consumer:
                return False
        self.drop_prefetch()
        if self._inflight is not None:
            self._inflight.cancel()
            self._inflight = None
        await self._ensure_group()
        await self.load()
        await self._claim_pending()
        return True

    async def release(self) -> None:
        """Give the lease up (only if still ours), after the last write lands."""
        self.drop_prefetch()
        try:
            await self.flush()
        except NotOwner:
            return
        holder = await self.redis.get(self.keys.lease)
        if holder is not None and holder.decode() == self.consumer:
            await self.redis.delete(self.keys.lease)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.frames, K.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def load(self) -> None:
        """Load the session's state and checkpoint from Redis."""
        self.state, self._written, self._members = await load_session(self.redis, self.date)
        cp = self.state.meta.checkpoint
        self._checkpoint = _id_tuple(cp) if cp else (0, 0)

    async def _claim_pending(self, also: list[Entry] = ()) -> None:
        """Queue every pending entry (ours and dead workers'), with ``also``, in stream order."""
        entries: dict[bytes, Entry] = {e[0]: e for e in also}
        start = "0-0"
        while True:
            # XAUTOCLAIM hands us other consumers' pending entries; we hold the lease,
            # so any other consumer is gone or about to find its lease lost.
            reply = await self.redis.xautoclaim(
                self.keys.frames, K.GROUP, self.consumer, min_idle_time=0, start_id=start, count=1000
            )
            start_next, claimed = reply[0], reply[1]
            for entry_id, fields in claimed:
                if fields is not None:
                    entries[entry_id] = _entry(entry_id, fields)
            if start_next in (b"0-0", "0-0"):
                break
            start = start_next
        for e in self._backlog:
            entries.setdefault(e[0], e)
        self._backlog = sorted(entries.values(), key=lambda e: _id_tuple(e[0]))

    # -- folding -----------------------------------------------------------------

    async def step(self, block_ms: int | None = None) -> int:
        """Read, fold and apply one batch; returns the number of stream entries read."""
        count = self.settings.projector_batch
        if self._backlog:
            batch, self._backlog = self._backlog[:count], self._backlog[count:]
        else:
            if self._prefetch is not None:
                pending, self._prefetch = self._prefetch, None
                batch, strays = await pending
            else:
                batch, strays = await self._read(block_ms)
            if strays or (not batch and not await self.caught_up()):
                # Another consumer (one that lost the lease) holds entries we have
                # not applied; they may precede this batch. Take them over and go
                # on in stream order.
                await self._claim_pending(batch)
                batch, self._backlog = self._backlog[:count], self._backlog[count:]
            elif len(batch) == count:
                # Busy: let Redis deliver the next batch while this one is folded.
                # The yield sends the request now; folding never yields to the loop.
                self._prefetch = asyncio.ensure_future(self._read(None))
                await asyncio.sleep(0)
        if batch:
            try:
                await self.apply(batch)
            except BaseException:
                self.drop_prefetch()
                raise
        return len(batch)

    async def _read(self, block_ms: int | None) -> tuple[list[Entry], bool]:
        """A batch from the group, and whether other consumers hold pending entries.

        The XPENDING after the read sees anything another consumer (one that lost
        the lease) read before us: it stays pending, as only the lease holder acks.
        """
        async with self._raw.pipeline(transaction=False) as pipe:
            pipe.xreadgroup(
                K.GROUP, self.consumer, {self.keys.frames: ">"},
                count=self.settings.projector_batch, block=block_ms,
            )
            pipe.xpending(self.keys.frames, K.GROUP)
            reply, pending = await pipe.execute()
        me = self.consumer.encode()
        strays = any(
            c["name"] not in (me, self.consumer) and int(c["pending"]) > 0
            for c in pending.get("consumers") or ()
        )
        return _flat_entries(reply), strays

    def drop_prefetch(self) -> None:
        """Forget a read in flight; what it delivered stays pending and is claimed later."""
        if self._prefetch is not None:
            self._prefetch.cancel()
            self._prefetch = None

    async def apply(self, batch: list[Entry]) -> None:
        """Fold a batch in memory, then write it in one atomic script call."""
        state = self.state
        assert state is not None, "acquire() first"
        previous = state.meta.checkpoint
        dead: list[tuple[str, str, bytes]] = []
        # Entries arrive in stream order: only the first can be at or below the
        # checkpoint unless the whole batch was applied before a crash.
        skip = 0
        if _id_tuple(batch[0][0]) <= self._checkpoint:
            while skip < len(batch) and _id_tuple(batch[skip][0]) <= self._checkpoint:
                skip += 1
        close = Close()
        for n, (entry_id, kind, payload) in enumerate(batch[skip:], 1):
            if n % 128 == 0:
                # Let the loop take in the next batch (read ahead) while we fold:
                # a large reply left unread stalls in socket buffers.
                await asyncio.sleep(0)
            if kind == b"f":
                refused = fold(state, payload)
            elif kind == b"m" and payload == b"close":
                refused = fold(state, close)
            else:
                refused = fold(state, b"")
            if refused is not None:
                dead.append((entry_id.decode(), refused.reason, payload if kind == b"f" else b""))
        last = batch[-1][0].decode()
        if skip < len(batch):
            self._checkpoint = _id_tuple(last)
            state.meta.checkpoint = last
            finish_batch(state)
        await self._write(previous, last, dead)

    async def _write(self, previous: str, ack_to: str, dead: list[tuple[str, str, bytes]]) -> None:
        state = self.state
        keys = self.keys
        key_index: dict[str, int] = {}
        key_list = [keys.meta, keys.dead, keys.frames, keys.lease]
        hset: list = []
        hdel: list = []
        delete: list = []
        sadd: list = []

        def index_of(key: str) -> int:
            idx = key_index.get(key)
            if idx is None:
                key_list.append(key)
                idx = key_index[key] = len(key_list)
            return idx

        kinds: set[str] = set()
        for kind, name in sorted(state.dirty):
            kinds.add(kind)
            for key, fields in codec.encode(state, keys, kind, name):
                old = self._written.get(key, {})
                if not fields:
                    if old:
                        delete.append(index_of(key))
                        self._written.pop(key, None)
                    continue
                changed = [x for f, v in fields.items() if old.get(f) != v for x in (f, v)]
                removed = [f for f in old if f not in fields]
                if changed:
                    hset.append((index_of(key), changed))
                if removed:
                    hdel.append((index_of(key), removed))
                self._written[key] = fields
            set_name = codec.member_of(kind)
            if set_name and name not in self._members.setdefault(set_name, set()):
                self._members[set_name].add(name)
                sadd.append((index_of(keys.members(set_name)), [name]))
        state.dirty.clear()
        frames = [frame for _, _, frame in dead]
        body = {
            "hset": hset,
            "hdel": hdel,
            "del": delete,
            "sadd": sadd,
            "dead": [(entry_id, reason, 9 + i) for i, (entry_id, reason, _) in enumerate(dead)],
        }
        notice = ""
        if kinds - {"meta"}:
            notice = _JSON.encode(
                Notice(state.meta.date, sorted(kinds), state.meta.checkpoint)
            ).decode()
        argv = [
            previous,
            self.consumer,
            self.settings.projector_lease_ms,
            K.GROUP,
            K.NOTIFY,
            notice,
            _JSON.encode(body),
            ack_to,
            *frames,
        ]
        # The previous write must have landed before this one (its checkpoint is
        # our expected one); this write then lands while the next batch is folded.
        await self.flush()
        self._inflight = asyncio.ensure_future(self._script(keys=key_list, args=argv))
        # A worker dropped mid-write must not log "exception never retrieved":
        # flush() still awaits and raises it.
        self._inflight.add_done_callback(_retrieve)

    async def flush(self) -> None:
        """Wait for the write in flight; NotOwner if Redis refused it."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        try:
            await inflight
        except ResponseError as exc:
            if "NOTOWNER" in str(exc) or "STALE" in str(exc):
                raise NotOwner(str(exc)) from None
            raise

    async def renew(self) -> None:
        """Keep the lease while idle; NotOwner if it was lost."""
        await self.flush()
        ok = await self._renew(keys=[self.keys.lease], args=[self.consumer, self.settings.projector_lease_ms])
        if not ok:
            raise NotOwner("lease expired while idle")

    async def caught_up(self) -> bool:
        """True when every entry in the stream has been applied."""
        await self.flush()
        last = await self.redis.xrevrange(self.keys.frames, count=1)
        if not last:
            return True
        return _id_tuple(last[0][0]) <= self._checkpoint and not self._backlog


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


async def load_session(redis: Redis, date: str) -> tuple[SessionState, dict[str, codec.Hash], dict[str, set[str]]]:
    """Read a session's projection state back from Redis."""
    keys = K.SessionKeys(date)
    async with redis.pipeline(transaction=False) as pipe:
        for set_name in codec.MEMBER_SETS:
            pipe.smembers(keys.members(set_name))
        replies = await pipe.execute()
    members = {
        set_name: {m.decode() if isinstance(m, bytes) else m for m in reply}
        for set_name, reply in zip(codec.MEMBER_SETS, replies)
    }
    hashes = await hgetall_many(redis, codec.entity_keys(keys, members))
    state = codec.decode(date, hashes, keys, members)
    written = {key: dict(fields) for key, fields in hashes.items()}
    return state, written, members


async def session_dates(redis: Redis) -> list[str]:
    """Known session dates, oldest first."""
    return [d.decode() if isinstance(d, bytes) else d for d in await redis.zrange(K.SESSIONS, 0, -1)]


async def drain(redis: Redis, settings: Settings, dates: list[str] | None = None) -> int:
    """Fold every known session until its stream is consumed; returns entries read."""
    total = 0
    for date in dates or await session_dates(redis):
        projector = SessionProjector(redis, date, settings)
        # A worker that just died still holds its lease until it expires: wait that out.
        deadline = time.monotonic() + 2 * settings.projector_lease_ms / 1000
        while not await projector.acquire():
            if time.monotonic() > deadline:
                log.warning("event=skip_session date=%s reason=lease_held", date)
                break
            await asyncio.sleep(settings.projector_lease_ms / 10_000)
        else:
            total += await _drain_owned(projector)
    return total


async def _drain_owned(projector: SessionProjector) -> int:
    total = 0
    try:
        while True:
            n = await projector.step(block_ms=None)
            total += n
            if n == 0 and await projector.caught_up():
                return total
    finally:
        await projector.release()


async def run(redis: Redis, settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Project every session with unapplied entries, forever (or until ``stop``)."""
    stop = stop or asyncio.Event()
    consumer = consumer_name()
    tasks: dict[str, asyncio.Task] = {}
    log.info("event=projector_start consumer=%s", consumer)
    while not stop.is_set():
        try:
            dates = await session_dates(redis)
            latest = dates[-1] if dates else None
            for date in dates:
                task = tasks.get(date)
                if task is not None and not task.done():
                    continue
                if task is not None and not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    log.error("event=session_failed date=%s error=%s detail=%s", date, type(exc).__name__, exc)
                if date != latest and not await _has_work(redis, date):
                    continue
                tasks[date] = asyncio.create_task(
                    _project_session(redis, settings, date, consumer, stop, keep=date == latest)
                )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("event=redis_unavailable error=%s", type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            pass
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


async def stream_position(redis: Redis, date: str) -> tuple[bytes | None, bytes | None]:
    """(id of the newest entry in the session stream, the applied checkpoint)."""
    keys = K.SessionKeys(date)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrevrange(keys.frames, count=1)
        pipe.hget(keys.meta, "checkpoint")
        last, checkpoint = await pipe.execute()
    return (last[0][0] if last else None), (checkpoint or None)


async def _has_work(redis: Redis, date: str) -> bool:
    last, checkpoint = await stream_position(redis, date)
    if last is None:
        return False
    return checkpoint is None or _id_tuple(last) > _id_tuple(checkpoint)


async def _project_session(
    redis: Redis, settings: Settings, date: str, consumer: str, stop: asyncio.Event, keep: bool
) -> None:
    """Own one session stream while it has work (the latest session: until stopped)."""
    projector = SessionProjector(redis, date, settings, consumer)
    owned = False
    while not stop.is_set():
        try:
            if not owned:
                owned = await projector.acquire()
                if not owned:
                    await _sleep(stop, settings.projector_lease_ms / 4000)
                    continue
                log.info("event=session_acquired date=%s consumer=%s", date, consumer)
            n = await projector.step(block_ms=settings.projector_block_ms)
            if n == 0 and not keep and await projector.caught_up():
                await projector.release()
                return
            if n == 0:
                await projector.renew()
        except NotOwner as exc:
            log.warning("event=lease_lost date=%s detail=%s", date, exc)
            owned = False
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("event=redis_unavailable date=%s error=%s", date, type(exc).__name__)
            owned = False
            await _sleep(stop, 0.5)
    if owned:
        try:
            await projector.release()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            pass


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
