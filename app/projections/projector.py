"""One session's projector: folds its stream into Redis hashes, exactly once.

One projector owns a session stream at a time (a lease); it reads batches through the
consumer group, folds them in memory, and applies the changed keys, dead letters,
checkpoint and XACK in one Lua script that refuses a projector whose lease or checkpoint
is stale. A crash anywhere therefore neither loses nor double-counts a frame: entries
up to the checkpoint are skipped on restart, the rest are folded again from the
pending list (a dead projector's pending entries are claimed by its successor).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app import keys as K
from app import lua
from app.config import Settings
from app.contracts import Notice
from app.projections import codec, kinds
from app.projections.hashes import Hash, as_str
from app.projections.session import SessionState, finish_batch
from app.projections.stream import START, Entry, Refused, StreamPosition, entry_of, flat_entries, fold_until
from app.store import hgetall_many, is_cluster, raw_replies
from app.tasks import ahead

APPLY = lua.load(__file__, "apply.lua")
RENEW = lua.load(__file__, "renew.lua")
_JSON = msgspec.json.Encoder()
DEAD_LOG_S = 10.0
log = logging.getLogger("stock_tracker.projector")


class _Carry:
    """Folded entries not written yet: the checkpoint last written (the write's expected
    one), whether the session was closed then, the entries to acknowledge and the
    refused ones among them."""

    __slots__ = ("previous", "was_closed", "acks", "dead", "folded")

    def __init__(self, previous: str, was_closed: bool) -> None:
        self.previous = previous
        self.was_closed = was_closed
        self.acks: list[bytes] = []
        self.dead: list[Refused] = []
        self.folded = 0


class NotOwner(Exception):
    """Another worker holds the session's lease (or advanced its checkpoint)."""


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class SessionProjector:
    """Folds one session's stream; see the module docstring for the guarantees."""

    def __init__(self, redis: Redis, date: str, settings: Settings, consumer: str | None = None):
        self.redis = redis
        self.date = date
        self.keys = K.SessionKeys(date)
        self.settings = settings
        self.consumer = consumer or consumer_name()
        self.state: SessionState | None = None
        self._written: dict[str, Hash] = {}
        self._snapshots: dict[str, tuple] = {}  # codec.diff's values last written, by key
        self._members: dict[str, set[str]] = {}
        self._checkpoint = START
        self._backlog: list[Entry] = []
        self._dead_logged_at = -DEAD_LOG_S
        self._dead_since_log = 0
        # Fields a changed entity wrote, on average over the last writes: sizes the writes.
        self._fields_per_entity = 4.0
        self._prefetch: asyncio.Future | None = None
        self._inflight: asyncio.Future | None = None
        # Entries folded but not written yet (the short tail of a batch read while more
        # waited): written with the next batch's first write, or by flush().
        self._carry: _Carry | None = None
        self._script = redis.register_script(APPLY.source)
        self._renew = redis.register_script(RENEW.source)
        # Same servers, but XREADGROUP replies stay flat lists: building a dict
        # per entry costs more than the rest of the read.
        self._raw = raw_replies(redis, "XREADGROUP")
        # One Redis: PUBLISH; a cluster: SPUBLISH, which stays on the session's shard
        # where PUBLISH would be copied to every node.
        self._publish = "SPUBLISH" if is_cluster(redis) else "PUBLISH"

    # -- ownership and loading -------------------------------------------------

    async def acquire(self) -> bool:
        """Take the session's lease if free (or already ours); then load state."""
        lease_ms = self.settings.projector_lease_ms
        got = await self.redis.set(self.keys.lease, self.consumer, nx=True, px=lease_ms)
        if not got:
            holder = await self.redis.get(self.keys.lease)
            if holder is None or holder.decode() != self.consumer:
                return False
        await self._settle()
        await self._ensure_group()
        await self.load()
        await self._claim_pending()
        return True

    async def _settle(self) -> None:
        """Let a read and a write still in flight finish before state is loaded again.

        Cancelling them would not unsend them: a read Redis ran after the claim below
        would leave entries pending to us that we never see, and once later entries moved
        the checkpoint past them they would be lost. So the read's entries join the
        backlog (the claim sorts them in), and the write lands or fails before the load.
        """
        read, self._prefetch = self._prefetch, None
        write, self._inflight = self._inflight, None
        for future in (read, write):
            if future is None:
                continue
            try:
                result = await future
            except Exception:  # a failed read delivered nothing; a failed write changed nothing
                continue
            if future is read:
                self._backlog.extend(result[0])

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
        self._snapshots = {}
        self._carry = None  # what it folded is still pending: claimed and folded again
        self.state.tape_length = self.settings.tape_length
        cp = self.state.meta.checkpoint
        self._checkpoint = StreamPosition.parse(cp) if cp else START

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
                    entries[entry_id] = entry_of(entry_id, fields)
            if start_next in (b"0-0", "0-0"):
                break
            start = start_next
        for e in self._backlog:
            entries.setdefault(e[0], e)
        self._backlog = sorted(entries.values(), key=lambda e: StreamPosition.parse(e[0]))

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
                await self.flush()
                # Another consumer (one that lost the lease) holds entries we have
                # not applied; they may precede this batch. Take them over and go
                # on in stream order.
                await self._claim_pending(batch)
                batch, self._backlog = self._backlog[:count], self._backlog[count:]
            elif len(batch) == count:
                # Busy: let Redis deliver the next batch while this one is folded.
                # The yield sends the request now; folding never yields to the loop.
                self._prefetch = ahead(self._read(None))
                await asyncio.sleep(0)
        if batch:
            # A failed apply leaves the read ahead in flight: acquire() takes in what it read.
            await self.apply(batch)
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
        return flat_entries(reply), strays

    def drop_prefetch(self) -> None:
        """Forget a read in flight; what it delivered stays pending and is claimed later."""
        if self._prefetch is not None:
            self._prefetch.cancel()
            self._prefetch = None

    async def apply(self, batch: list[Entry]) -> None:
        """Fold a batch in memory and write it: one atomic script call per write.

        A batch whose changes pass ``projector_write_fields`` is written in several calls,
        each the whole fold of a run of its entries with the checkpoint after them, so no
        call holds Redis long and a crash between two leaves a state the checkpoint
        describes exactly (the entries after it are still pending, and are folded again).

        While more is there to fold (a read ahead in flight, a backlog), a last run too
        short to fill a write is kept folded and written with the next batch's first run,
        up to twice ``projector_batch`` entries: at the full market a batch makes about one
        and a half writes, and its tail would otherwise be a write of its own, every symbol
        changed in it encoded once more. Its entries stay pending until written, so a
        crash meanwhile folds them again from the checkpoint; flush() writes it.
        """
        state = self.state
        assert state is not None, "acquire() first"
        # Entries arrive in stream order: only the first can be at or below the
        # checkpoint unless the whole batch was applied before a crash.
        skip = 0
        parse = StreamPosition.parse
        if parse(batch[0][0]) <= self._checkpoint:
            while skip < len(batch) and parse(batch[skip][0]) <= self._checkpoint:
                skip += 1
        carry = self._carry or _Carry(state.meta.checkpoint, state.meta.closed)
        self._carry = None
        # Folded before a crash: only acknowledged, with the first write.
        carry.acks += [e[0] for e in batch[:skip]]
        rest = batch[skip:]
        longest = 2 * self.settings.projector_batch
        more = self._prefetch is not None or bool(self._backlog)
        while rest:
            dead, n = await fold_until(state, rest, self._full)
            if dead:
                self._report_dead(dead)
                carry.dead += dead
            part, rest = rest[:n], rest[n:]
            last = part[-1][0].decode()
            self._checkpoint = parse(last)
            state.meta.checkpoint = last
            carry.acks += [e[0] for e in part]
            carry.folded += n
            if not rest and more and carry.folded < longest and not self._full():
                self._carry = carry
                return
            await self._write_carry(carry)
            carry = _Carry(state.meta.checkpoint, state.meta.closed)
        if carry.acks:
            await self._write_carry(carry)

    async def _write_carry(self, carry: _Carry) -> None:
        finish_batch(self.state)
        closing = self.state.meta.closed and not carry.was_closed
        await self._write(carry.previous, carry.acks, carry.dead, closing=closing)

    def _full(self) -> bool:
        """Whether the changes folded so far make a write of ``projector_write_fields``:
        changed entities times the fields each changed in the last writes (an estimate
        that costs nothing per entry; the exact count is known only once encoded)."""
        return len(self.state.dirty) * self._fields_per_entity >= self.settings.projector_write_fields

    def _report_dead(self, dead: list[Refused]) -> None:
        """Say that frames are being refused (at most every DEAD_LOG_S), with one reason: a
        feed whose every frame is dead-lettered must not look healthy and quiet."""
        self._dead_since_log += len(dead)
        now = time.monotonic()
        if now - self._dead_logged_at >= DEAD_LOG_S:
            log.warning(
                "event=dead_letters date=%s count=%d total=%d example=%r",
                self.date, self._dead_since_log, self.state.meta.dead, dead[-1][1][:160],
            )
            self._dead_logged_at, self._dead_since_log = now, 0

    async def _write(self, previous: str, acks: list[bytes], dead: list[Refused], closing: bool = False) -> None:
        state = self.state
        keys = self.keys
        entities = len(state.dirty)
        groups = codec.dirty_by_kind(state.dirty)
        names = changed_names(groups)
        changes = codec.diff(state, keys, self._written, self._members, self._snapshots, groups)
        if entities:
            fields = codec.field_count(changes)
            self._fields_per_entity = (self._fields_per_entity + max(fields, 1) / entities) / 2
        fixed = {"meta": keys.meta, "dead_letters": keys.dead, "frames": keys.frames, "lease": keys.lease}
        # The keys the changes touch follow the script's own, referenced by number.
        touched = [key for key, _ in changes.hset] + [key for key, _ in changes.hdel] + changes.delete
        touched += [key for key, _ in changes.sadd]
        extra = {key: i for i, key in enumerate(dict.fromkeys(touched), len(fixed) + 1)}
        body = {
            "hset": [(extra[key], fields) for key, fields in changes.hset],
            "hdel": [(extra[key], fields) for key, fields in changes.hdel],
            "del": [extra[key] for key in changes.delete],
            "sadd": [(extra[key], names) for key, names in changes.sadd],
            "dead": [
                (entry_id.decode(), reason, APPLY.first_extra_arg + i)
                for i, (entry_id, reason, _) in enumerate(dead)
            ],
            "ack": [entry_id.decode() for entry_id in acks],
        }
        notice = ""
        if codec.shown(changes.kinds) or closing:
            notice = _JSON.encode(Notice(
                state.meta.date, sorted(changes.kinds), state.meta.checkpoint, names, state.meta.closed,
            )).decode()
        script_keys, args = APPLY.bind(
            keys=fixed,
            args={
                "expected": previous, "consumer": self.consumer, "lease_ms": self.settings.projector_lease_ms,
                "group": K.GROUP, "publish": self._publish, "channel": keys.notify, "notice": notice, "body": _JSON.encode(body),
            },
            extra_keys=list(extra),
            extra_args=[frame for _, _, frame in dead],
        )
        # The previous write must have landed before this one (its checkpoint is
        # our expected one); this write then lands while the next batch is folded.
        await self._landed()
        self._inflight = ahead(self._script(keys=script_keys, args=args))  # flush() raises its error
        # Sent now, not at the fold's next yield (128 entries later): Redis gets that much
        # longer to run it before the next write has to wait for it.
        await asyncio.sleep(0)

    async def flush(self) -> None:
        """Write what is folded and not written yet, and wait for it; NotOwner if Redis
        refused it."""
        carry, self._carry = self._carry, None
        if carry is not None:
            await self._write_carry(carry)
        await self._landed()

    async def _landed(self) -> None:
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
        script_keys, args = RENEW.bind(
            keys={"lease": self.keys.lease}, args={"consumer": self.consumer, "lease_ms": self.settings.projector_lease_ms}
        )
        ok = await self._renew(keys=script_keys, args=args)
        if not ok:
            raise NotOwner("lease expired while idle")

    async def caught_up(self) -> bool:
        """True when every entry in the stream has been applied."""
        await self.flush()
        last = await self.redis.xrevrange(self.keys.frames, count=1)
        if not last:
            return True
        return StreamPosition.parse(last[0][0]) <= self._checkpoint and not self._backlog


def changed_names(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """The changed entities of each per-entity kind a channel shows, for the notice
    (``groups``: the dirty names by kind, codec.dirty_by_kind)."""
    out: dict[str, list[str]] = {}
    for kind, names in groups.items():
        spec = kinds.BY_NAME[kind]
        if spec.per_entity and spec.channels:
            out[kind] = [name for name in names if name]
    return {kind: names for kind, names in out.items() if names}


async def load_session(redis: Redis, date: str) -> tuple[SessionState, dict[str, Hash], dict[str, set[str]]]:
    """Read a session's projection state back from Redis."""
    keys = K.SessionKeys(date)
    async with redis.pipeline(transaction=False) as pipe:
        for set_name in kinds.MEMBER_SETS:
            pipe.smembers(keys.members(set_name))
        replies = await pipe.execute()
    members = {
        set_name: {as_str(m) for m in reply}
        for set_name, reply in zip(kinds.MEMBER_SETS, replies)
    }
    hashes = await hgetall_many(redis, codec.entity_keys(keys, members))
    state = codec.decode(date, hashes, keys, members)
    # What was written, to diff the next batch against; series write only what changed.
    plain = set(codec.entity_keys(keys, members, series=False))
    written = {key: dict(fields) for key, fields in hashes.items() if key in plain}
    return state, written, members
