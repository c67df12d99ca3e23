"""The full market (~1,600 symbols), short: batches split into several writes, workers
killed between two of them (in process, and with SIGKILL), and the state still equals a
clean replay byte for byte, with every entry folded exactly once."""

from __future__ import annotations

import asyncio
import functools
import os
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from app import keys as K
from app.config import Settings
from app.ingest.writer import StreamWriter
from app.projections import codec, worker
from app.projections.session import finish_batch, fold, new_session
from app.replay import fold_stream, live_hashes
from app.sim import MarketSimulator
from app.store import connect
from tests.crashes import kill_at_points_then_finish
from tests.stores import stores

SESSION = date(2026, 11, 25)
RECEIVED = 1_795_600_000_000  # 2026-11-25 in Vietnam
FRAMES = 3000


@functools.cache
def market_frames(n: int = FRAMES) -> tuple[str, ...]:
    """The first n frames of a simulated full-market day (the opening auction's burst)."""
    out: list[str] = []
    for event in MarketSimulator(universe="all", seed=3, start=SESSION, days=1).events():
        if event.frame is not None:
            out.append(event.frame)
            if len(out) == n:
                break
    return tuple(out)


def in_memory(frames: tuple[str, ...]) -> dict:
    state = new_session(SESSION.isoformat())
    for f in frames:
        fold(state, f)
    finish_batch(state)
    return codec.encode_all(state, K.SessionKeys(SESSION.isoformat()))


async def _append(redis, frames) -> None:
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED) for f in frames])
    await writer.flush()


def _count_writes(projector: worker.SessionProjector, fail_after: int | None = None) -> list[int]:
    """Count the projector's script calls; with ``fail_after``, the worker dies just after
    that many have landed (between two writes of one batch, when it splits them)."""
    calls = [0]
    write = projector._write

    async def counted(*args, **kwargs):
        if fail_after is not None and calls[0] >= fail_after:
            await projector.flush()  # the writes before landed; this one never leaves
            raise ConnectionError("killed between writes")
        calls[0] += 1
        await write(*args, **kwargs)

    projector._write = counted  # type: ignore[method-assign]
    return calls


async def _check(url: str, batch: int, write_fields: int, fail_after: int) -> None:
    frames = market_frames()
    redis = await connect(url)
    try:
        await redis.flushall()
        await _append(redis, frames)
        settings = Settings(redis_url=url, projector_batch=batch, projector_lease_ms=5000,
                            projector_write_fields=write_fields)
        keys = K.SessionKeys(SESSION.isoformat())
        first = worker.SessionProjector(redis, keys.date, settings, consumer="first")
        assert await first.acquire()
        calls = _count_writes(first, fail_after)
        try:
            while await first.step():
                pass
            await first.flush()
        except ConnectionError:  # died after fail_after writes (else: all done before)
            assert calls[0] == fail_after
            checkpoint = await redis.hget(keys.meta, "checkpoint")
            assert (checkpoint is not None) == (fail_after > 0)
        await redis.delete(keys.lease)  # the dead worker's lease expires

        second = worker.SessionProjector(redis, keys.date, settings, consumer="second")
        assert await second.acquire()
        async with asyncio.timeout(60):
            while await second.step() or not await second.caught_up():
                pass

        live = await live_hashes(redis, keys.date)
        clean, _ = await fold_stream(redis, keys.date)
        assert live == codec.encode_all(clean, keys)
        one_pass = in_memory(frames)
        live[keys.meta].pop("checkpoint")
        one_pass[keys.meta].pop("checkpoint")
        assert live == one_pass
        assert int(live[keys.meta]["entries"]) == len(frames) == await redis.xlen(keys.frames)
        assert (await redis.xpending(keys.frames, K.GROUP))["pending"] == 0
    finally:
        await redis.aclose()


@stores
@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.sampled_from([250, 1000]),
    write_fields=st.sampled_from([40, 400, 2000]),
    fail_after=st.integers(min_value=0, max_value=12),
)
def test_split_writes_and_a_worker_killed_between_them_give_the_clean_replay_state(
    redis_server, batch, write_fields, fail_after
):
    asyncio.run(_check(redis_server.url, batch, write_fields, fail_after))


@pytest.mark.anyio
async def test_a_large_batch_is_written_in_several_calls_of_about_the_set_size(redis, settings):
    await _append(redis, market_frames())
    small = Settings(redis_url=settings.redis_url, projector_batch=1000, projector_write_fields=300)
    projector = worker.SessionProjector(redis, SESSION.isoformat(), small)
    assert await projector.acquire()
    calls = _count_writes(projector)
    sizes: list[int] = []
    diff = codec.diff

    def measured(*args, **kwargs):
        changes = diff(*args, **kwargs)
        sizes.append(codec.field_count(changes))
        return changes

    codec.diff = measured
    try:
        batches = 0
        while await projector.step():
            batches += 1
        await projector.release()
    finally:
        codec.diff = diff
    assert batches == FRAMES // 1000
    assert calls[0] >= 3 * batches  # the opening burst changes thousands of fields a batch
    # An estimate sizes the writes (the fields are counted only once encoded): most stay
    # near the set size, none is the whole batch.
    assert sorted(sizes)[len(sizes) // 2] <= 2 * 300
    assert max(sizes) < sum(sizes) / batches / 2


@stores
@pytest.mark.anyio
async def test_sigkill_between_split_writes_then_state_equals_a_clean_replay(redis, redis_server):
    frames = market_frames(6000)
    await _append(redis, frames)
    keys = K.SessionKeys(SESSION.isoformat())
    env = {**os.environ, "REDIS_URL": redis_server.url, "PROJECTOR_LEASE_MS": "1000",
           "PROJECTOR_BLOCK_MS": "50", "PROJECTOR_WRITE_FIELDS": "100", "LOG_LEVEL": "WARNING"}

    await kill_at_points_then_finish(redis, env, keys, (700, 2350, 4130), len(frames))
