"""The projection worker against a real redis-server: exactly once, dead letters, sessions."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from app import keys as K
from app.clock import VN_TZ
from app.ingest.writer import StreamWriter, close_at_three, close_missed
from app.projections import codec, worker
from app.projections.read import market_snapshot, resolve_session
from app.schemas import SessionRef
from app.projections.session import fold, finish_batch, new_session
from app.replay import fold_stream, live_hashes, verify
from tests import factory as F
from tests.stores import stores
from tests.test_frames import FIXTURES

pytestmark = pytest.mark.anyio

SESSION = F.SESSION


RECEIVED = 1_795_600_000_000  # 2026-11-25 11:26:40 in Vietnam
NEXT_DAY = RECEIVED + 86_400_000


def market_frames() -> list[str]:
    frames = [
        F.quote("ACB", 22900, 22950, time="09:20:00"),
        F.trade("ACB", 22950, 100, 1000, time="09:20:01"),
        F.trade("ACB", 22900, 300, 1300, time="09:20:02"),
        F.snapshot_x("TAR", 21800, 100, 500, bid=21700, ask=21800, time="09:20:03"),
        F.snapshot_x("TAR", 21800, 100, 500, bid=21600, ask=21800, time="09:20:04"),
        F.foreign("ACB", 1000, 200, "09:20:05"),
        F.foreign("ACB", 1600, 200, "09:21:05"),
        F.index("VN30", 1900.0, "09:20:05"),
        F.index("VN30", 1901.5, "09:21:10"),
        F.trade("VN30F2612", 1905.0, 4, 4, time="09:21:11"),
        F.quote("VN30F2612", 1904.9, 1905.1, time="09:21:12"),
    ]
    return frames


async def append(redis, frames, received=1_795_600_000_000) -> StreamWriter:
    writer = StreamWriter(redis)
    await writer.append([(f, received) for f in frames])
    await writer.flush()
    return writer


async def fold_to_end(projector, timeout=10.0):
    """Step until the stream is consumed (bounded: a stuck worker fails the test)."""
    async with asyncio.timeout(timeout):
        while await projector.step() or not await projector.caught_up():
            pass


def expected_hashes(frames, date=SESSION, close=False):
    state = new_session(date)
    for f in frames:
        fold(state, f)
    state.meta.checkpoint = "x"
    finish_batch(state)
    out = codec.encode_all(state, K.SessionKeys(date))
    out[K.SessionKeys(date).meta].pop("checkpoint")
    return out


def without_checkpoint(hashes):
    meta = {k for k in hashes if k.endswith(":meta")}
    for k in meta:
        hashes[k].pop("checkpoint", None)
    return hashes


@stores
async def test_drain_projects_exactly_what_the_pure_fold_computes(redis, settings):
    frames = market_frames()
    await append(redis, frames)
    assert await worker.drain(redis, settings) == len(frames)
    live = without_checkpoint(await live_hashes(redis, SESSION))
    assert live == expected_hashes(frames)
    assert not await verify(redis, SESSION)
    # Readable in redis-cli: plain fields, plain numbers.
    stats = await redis.hgetall(f"st:{{{SESSION}}}:stats:ACB")
    assert stats[b"mua_chu_dong_volume"] == b"100"
    assert stats[b"ban_chu_dong_volume"] == b"300"
    assert stats[b"mua_chu_dong_value"] == b"2295000"  # whole VND: an integer


async def test_a_second_drain_folds_nothing_twice(redis, settings):
    frames = market_frames()
    await append(redis, frames)
    await worker.drain(redis, settings)
    before = await live_hashes(redis, SESSION)
    assert await worker.drain(redis, settings) == 0
    assert await live_hashes(redis, SESSION) == before
    pending = await redis.xpending(K.SessionKeys(SESSION).frames, K.GROUP)
    assert pending["pending"] == 0


async def test_bad_frames_go_to_the_dead_letter_stream_and_good_ones_fold(redis, settings):
    good = market_frames()
    bad = ["{nope", json.dumps({"DataType": "X-TRADE", "Content": json.dumps({"Symbol": "ACB", "LastPrice": -1, "TradingDate": F.DATE})})]
    frames = good[:3] + [bad[0]] + good[3:6] + [bad[1]] + good[6:]
    await append(redis, frames)
    await worker.drain(redis, settings)
    keys = K.SessionKeys(SESSION)
    dead = await redis.xrange(keys.dead)
    assert [d[1][b"f"].decode() for d in dead] == bad
    assert b"invalid JSON" in dead[0][1][b"reason"]
    assert b">= 0" in dead[1][1][b"reason"]
    source_ids = [e[0] for e in await redis.xrange(keys.frames)]
    assert dead[0][1][b"id"] == source_ids[3]
    live = without_checkpoint(await live_hashes(redis, SESSION))
    expected = expected_hashes(frames)
    assert live == expected
    assert live[keys.meta]["dead"] == "2"
    assert live[keys.entity("stats", "ACB")] == expected_hashes(good)[keys.entity("stats", "ACB")]


async def test_a_worker_that_dies_after_reading_loses_nothing(redis, settings):
    frames = market_frames()
    await append(redis, frames)
    first = worker.SessionProjector(redis, SESSION, settings, consumer="first")
    assert await first.acquire()
    # Dies with 5 entries delivered (pending) but never applied.
    await redis.xreadgroup(K.GROUP, "first", {first.keys.frames: ">"}, count=5)
    await redis.delete(first.keys.lease)  # its lease runs out
    second = worker.SessionProjector(redis, SESSION, settings, consumer="second")
    assert await second.acquire()
    await fold_to_end(second)
    assert without_checkpoint(await live_hashes(redis, SESSION)) == expected_hashes(frames)
    pending = await redis.xpending(first.keys.frames, K.GROUP)
    assert pending["pending"] == 0


@stores
async def test_a_worker_that_dies_mid_batch_is_replaced_without_double_counting(redis, settings, monkeypatch):
    frames = market_frames()
    await append(redis, frames)
    s = settings.__class__(**{**{f: getattr(settings, f) for f in settings.__struct_fields__}, "projector_batch": 4})
    first = worker.SessionProjector(redis, SESSION, s, consumer="first")
    assert await first.acquire()
    assert await first.step() == 4  # applied

    async def boom(*args, **kwargs):
        raise ConnectionError("killed")

    monkeypatch.setattr(first, "_write", boom)
    with pytest.raises(ConnectionError):
        await first.step()  # folded in memory, never written
    await redis.delete(first.keys.lease)
    second = worker.SessionProjector(redis, SESSION, s, consumer="second")
    assert await second.acquire()
    await fold_to_end(second)
    assert without_checkpoint(await live_hashes(redis, SESSION)) == expected_hashes(frames)


@stores
async def test_a_read_ahead_redis_runs_late_is_not_lost_when_the_worker_takes_its_lease_back(redis, settings):
    """The worker fails mid-batch while its read of the next batch is on the wire; it takes
    its lease back at once. Redis runs that read only later (a loaded network): the entries
    it delivers must still be folded, not left pending behind a checkpoint that passed them."""
    frames = market_frames()
    await append(redis, frames)
    s = settings.__class__(**{**{f: getattr(settings, f) for f in settings.__struct_fields__}, "projector_batch": 4})
    projector = worker.SessionProjector(redis, SESSION, s, consumer="first")
    assert await projector.acquire()
    read, apply = projector._read, projector.apply
    late = asyncio.Event()

    wire: list[asyncio.Future] = []

    async def read_late(block_ms):
        # Sent now, run by Redis later: cancelling the caller does not stop it.
        async def on_the_wire():
            await late.wait()
            return await read(block_ms)
        wire.append(asyncio.ensure_future(on_the_wire()))
        return await asyncio.shield(wire[0])

    async def fail(batch):
        raise ConnectionError("lost mid-batch")

    reads = iter([read, read_late])  # the batch now, the read ahead late
    projector._read = lambda block_ms: next(reads)(block_ms)  # type: ignore[method-assign]
    projector.apply = fail  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await projector.step(block_ms=0)  # the first batch, and the read ahead sent
    projector._read, projector.apply = read, apply  # type: ignore[method-assign]
    claim = projector._claim_pending

    async def claim_then_the_late_read(*args):
        await claim(*args)
        late.set()  # the worst moment: after the claim, before the next read
        await wire[0]

    projector._claim_pending = claim_then_the_late_read  # type: ignore[method-assign]
    # A worker that waits for its read before it claims lets it run by then.
    asyncio.get_running_loop().call_later(0.05, late.set)
    assert await projector.acquire()
    projector._claim_pending = claim  # type: ignore[method-assign]
    await fold_to_end(projector)
    assert without_checkpoint(await live_hashes(redis, SESSION)) == expected_hashes(frames)
    assert (await redis.xpending(projector.keys.frames, K.GROUP))["pending"] == 0


async def test_a_stale_worker_is_refused(redis, settings):
    frames = market_frames()
    await append(redis, frames)
    first = worker.SessionProjector(redis, SESSION, settings, consumer="first")
    assert await first.acquire()
    await redis.delete(first.keys.lease)
    second = worker.SessionProjector(redis, SESSION, settings, consumer="second")
    assert await second.acquire()
    assert not await first.acquire()
    with pytest.raises(worker.NotOwner):
        await first.step()
        await first.flush()
    await fold_to_end(second)
    assert without_checkpoint(await live_hashes(redis, SESSION)) == expected_hashes(frames)


async def test_the_checkpoint_fences_a_worker_with_old_state(redis, settings):
    frames = market_frames()
    await append(redis, frames)
    a = worker.SessionProjector(redis, SESSION, settings, consumer="same")
    assert await a.acquire()
    b = worker.SessionProjector(redis, SESSION, settings, consumer="same")
    assert await b.acquire()  # same name: both think they own the lease
    assert await a.step() > 0
    await redis.xgroup_setid(a.keys.frames, K.GROUP, id="0")
    await a.flush()
    with pytest.raises(worker.NotOwner, match="STALE"):
        await b.step()
        await b.flush()


@stores
async def test_several_sessions_in_one_history(redis, settings):
    day1 = [F.trade("ACB", 22950, 100, 100, date="24/11/2026"), F.index("VN30", 1890.0, "10:00:00", date="24/11/2026")]
    day2 = [F.trade("ACB", 23000, 700, 700), F.index("VN30", 1900.0, "10:00:00")]
    await append(redis, day1 + day2)
    assert await redis.zrange(K.SESSIONS, 0, -1) == [b"2026-11-24", b"2026-11-25"]
    await worker.drain(redis, settings)
    old = await market_snapshot(redis, "2026-11-24")
    new = await market_snapshot(redis)
    assert old.quotes["ACB"].total_volume == 100 and old.indices["VN30"].value == 1890.0
    assert new.quotes["ACB"].total_volume == 700 and new.indices["VN30"].value == 1900.0


async def test_captured_fixture_file_projects_both_sessions(redis, settings):
    lines = [l for l in (FIXTURES / "ssi_b_messages.jsonl").read_text().splitlines() if l]
    lines += [l for l in (FIXTURES / "ssi_mi_messages.jsonl").read_text().splitlines() if l]
    await append(redis, lines)
    await worker.drain(redis, settings)
    meta17 = await redis.hgetall("st:{2026-07-17}:meta")
    meta20 = await redis.hgetall("st:{2026-07-20}:meta")
    assert meta17[b"entries"] == b"3" and meta17[b"skipped"] == b"3"
    assert meta20[b"entries"] == b"1836" and meta20[b"frames"] == b"26"
    snap = await market_snapshot(redis, "2026-07-20")
    assert snap.indices["VNINDEX"].value == 1746.55
    assert [p.timestamp for p in snap.indices["VNINDEX"].intraday] == [
        "2026-07-20T13:35:00+07:00", "2026-07-20T13:36:00+07:00", "2026-07-20T13:37:00+07:00",
    ]


async def test_a_closed_session_stays_current_until_a_later_one_folds_a_frame(redis, settings):
    writer = await append(redis, market_frames())
    await writer.close_session(SESSION)
    await append(redis, [F.trade("ACB", 22950, 100, 99_999, time="15:01:00")])
    await worker.drain(redis, settings)
    # Overnight the board keeps the final state of the day, marked closed.
    current = await market_snapshot(redis)
    assert current == await market_snapshot(redis, SESSION)
    assert current.quotes["ACB"].total_volume == 400
    assert await resolve_session(redis, None) == SessionRef(date=SESSION, closed=True)
    meta = await redis.hgetall(K.SessionKeys(SESSION).meta)
    assert meta[b"closed"] == b"true" and meta[b"after_close"] == b"1"
    # The next trading date starts from zero: first trade counts LastVol.
    await append(redis, [F.trade("ACB", 23000, 200, 5_000_000, date="26/11/2026")], received=NEXT_DAY)
    await worker.drain(redis, settings)
    nxt = await market_snapshot(redis)
    assert nxt.quotes["ACB"].total_volume == 200
    assert await resolve_session(redis, None) == SessionRef(date="2026-11-26", closed=False)
    assert not await verify(redis, SESSION)


async def test_close_at_three_appends_the_marker_at_15_00_vietnam_time(redis):
    now = datetime(2026, 11, 25, 14, 59, 58, tzinfo=VN_TZ)
    slept: list[float] = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        if len(slept) > 1:
            raise asyncio.CancelledError

    writer = StreamWriter(redis)
    with pytest.raises(asyncio.CancelledError):
        await close_at_three(writer, clock=lambda: now, sleep=fake_sleep)
    assert slept[0] == 2.0
    entries = await redis.xrange(K.SessionKeys(SESSION).frames)
    assert [e[1][b"m"] for e in entries] == [b"close"]


async def test_sessions_whose_15_00_passed_with_no_ingest_are_closed_at_start(redis, settings):
    writer = StreamWriter(redis)
    for day in ("21/11/2026", "24/11/2026", "25/11/2026"):
        await writer.append([(F.trade("ACB", 1.0, 1, 1, date=day), 1_795_600_000_000)])
    await writer.close_session("2026-11-21", 1_795_000_000_000)
    morning = datetime(2026, 11, 25, 9, 0, tzinfo=VN_TZ)
    # The 24th missed its close (no ingest at 15:00); the 21st has one; today is open.
    assert await close_missed(writer, morning) == ["2026-11-24"]
    last = (await redis.xrevrange(K.SessionKeys("2026-11-24").frames, count=1))[0][1]
    assert last[b"m"] == b"close"
    assert int(last[b"t"]) == int(datetime(2026, 11, 24, 15, 0, tzinfo=VN_TZ).timestamp() * 1000)
    assert await close_missed(writer, morning) == []  # once only
    assert await redis.xlen(K.SessionKeys("2026-11-24").frames) == 2
    assert await close_missed(writer, morning.replace(hour=15, minute=30)) == ["2026-11-25"]
    await worker.drain(redis, settings)
    for day in ("2026-11-24", "2026-11-25"):
        assert (await redis.hgetall(K.SessionKeys(day).meta))[b"closed"] == b"true"


@stores
async def test_retention_drops_old_sessions_never_the_current_one(redis):
    writer = StreamWriter(redis, retention_days=2)
    for day in ("20/11/2026", "22/11/2026", "23/11/2026", "25/11/2026"):
        await writer.append([(F.trade("ACB", 1.0, 1, 1, date=day), 1_795_600_000_000)])
    dropped = await writer.prune(SESSION)
    assert dropped == ["2026-11-20", "2026-11-22"]
    assert await redis.zrange(K.SESSIONS, 0, -1) == [b"2026-11-23", b"2026-11-25"]
    assert not await redis.exists("st:{2026-11-20}:frames")
    assert await redis.exists("st:{2026-11-25}:frames")


async def test_live_run_follows_new_frames_until_stopped(redis, settings):
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(redis, settings, stop))
    pubsub = redis.pubsub()
    await pubsub.subscribe(K.SessionKeys(SESSION).notify)
    await append(redis, market_frames())
    notice = None
    async with asyncio.timeout(10):
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg:
                notice = json.loads(msg["data"])
                if notice["checkpoint"] == (await redis.xrevrange(K.SessionKeys(SESSION).frames, count=1))[0][0].decode():
                    break
    assert notice["date"] == SESSION and "stats" in notice["kinds"]
    stop.set()
    await asyncio.wait_for(task, 10)
    await pubsub.aclose()
    assert not await verify(redis, SESSION)


@stores
async def test_a_batch_whose_reply_was_lost_is_resent_and_lands_once(redis, caplog):
    from redis.exceptions import ConnectionError as RedisConnectionError

    writer = StreamWriter(redis)
    real = writer._pipeline
    calls: list[int] = []

    async def reply_lost_once(*args):
        calls.append(1)
        first = len(calls) == 1  # known before the await: the next batch may be sent meanwhile
        await real(*args)  # Redis appended the batch ...
        if first:
            raise RedisConnectionError("Connection closed by server.")  # ... but the reply never came

    writer._pipeline = reply_lost_once
    frames = market_frames()
    await writer.append([(f, 1_795_600_000_000) for f in frames[:5]])
    await writer.append([(f, 1_795_600_000_000) for f in frames[5:]])
    await writer.flush()
    assert len(calls) == 3 and writer.retries == 1
    stored = [e[1][b"f"].decode() for e in await redis.xrange(K.SessionKeys(SESSION).frames)]
    assert stored == frames  # once each, in order
    assert "event=redis_unavailable op=append attempt=1 error=ConnectionError" in caplog.text


async def test_a_resent_close_marker_is_not_doubled(redis):
    from redis.exceptions import ConnectionError as RedisConnectionError

    writer = StreamWriter(redis)
    real_pipeline = redis.pipeline
    lost = []

    class LosesFirstReply:
        def __init__(self, pipe):
            self.pipe = pipe

        async def __aenter__(self):
            await self.pipe.__aenter__()
            return self

        async def __aexit__(self, *exc):
            return await self.pipe.__aexit__(*exc)

        def __getattr__(self, name):
            return getattr(self.pipe, name)

        async def execute(self):
            result = await self.pipe.execute()
            if not lost:
                lost.append(1)
                raise RedisConnectionError("reply lost")
            return result

    redis.pipeline = lambda **kw: LosesFirstReply(real_pipeline(**kw))
    try:
        await writer.close_session(SESSION, at_ms=1_795_600_000_000)
    finally:
        del redis.pipeline
    entries = await redis.xrange(K.SessionKeys(SESSION).frames)
    assert lost and [e[1][b"m"] for e in entries] == [b"close"]


async def test_a_frame_dated_in_the_future_or_on_no_real_day_cannot_open_a_session(redis, settings):
    received = 1_795_600_000_000  # 2026-11-25 in Vietnam
    hostile = [F.trade("ACB", 1.0, 1, 1, date=day) for day in ("31/12/9999", "31/02/2026", "27/11/2026")]
    await append(redis, [*market_frames(), *hostile], received)
    assert await redis.zrange(K.SESSIONS, 0, -1) == [SESSION.encode()]
    await worker.drain(redis, settings)
    dead = await redis.xrange(K.SessionKeys(SESSION).dead)
    assert [d[1][b"f"].decode() for d in dead] == hostile
    live = without_checkpoint(await live_hashes(redis, SESSION))
    assert live == expected_hashes([*market_frames(), *hostile])  # refused, nothing else changed
    assert live[K.SessionKeys(SESSION).meta]["dead"] == "3"
