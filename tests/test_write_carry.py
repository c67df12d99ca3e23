"""A batch's tail too short to fill a write is written with the next batch's first run:
fewer writes, the same hashes; a worker that dies while holding one folded but unwritten
leaves those entries pending, and its successor folds them exactly once."""

from __future__ import annotations

import pytest

from app import keys as K
from app.config import Settings
from app.projections import worker
from app.replay import live_hashes
from tests.test_full_market import SESSION, _append, _count_writes, in_memory, market_frames

pytestmark = pytest.mark.anyio
FRAMES = 1000
BATCH = 100


def _settings(url: str, write_fields: int) -> Settings:
    return Settings(redis_url=url, projector_batch=BATCH, projector_write_fields=write_fields,
                    projector_lease_ms=5000)


async def _fold_to_end(projector: worker.SessionProjector) -> None:
    while await projector.step() or not await projector.caught_up():
        pass


async def test_short_tails_are_written_with_the_next_batch_and_give_the_same_hashes(redis, settings):
    frames = market_frames(FRAMES)
    await _append(redis, frames)
    # No write is ever full: every write is two batches (the last one what is left).
    projector = worker.SessionProjector(redis, SESSION.isoformat(), _settings(settings.redis_url, 10**9))
    assert await projector.acquire()
    calls = _count_writes(projector)
    await _fold_to_end(projector)
    await projector.release()
    assert calls[0] == FRAMES // (2 * BATCH)
    live = await live_hashes(redis, SESSION.isoformat())
    expected = in_memory(frames)
    live.pop(projector.keys.meta)
    expected.pop(projector.keys.meta)
    assert live == expected
    assert (await redis.xpending(projector.keys.frames, K.GROUP))["pending"] == 0


async def test_a_worker_dying_with_a_tail_unwritten_leaves_it_pending_for_its_successor(redis, settings):
    frames = market_frames(FRAMES)
    await _append(redis, frames)
    s = _settings(settings.redis_url, 10**9)
    keys = K.SessionKeys(SESSION.isoformat())
    first = worker.SessionProjector(redis, keys.date, s, consumer="first")
    assert await first.acquire()
    assert await first.step() == BATCH  # folded, kept for the next batch's write
    assert await redis.hget(keys.meta, "checkpoint") is None  # nothing written
    assert (await redis.xpending(keys.frames, K.GROUP))["pending"] >= BATCH
    first.drop_prefetch()
    await redis.delete(keys.lease)  # the worker dies; its lease expires

    second = worker.SessionProjector(redis, keys.date, s, consumer="second")
    assert await second.acquire()
    await _fold_to_end(second)
    live = await live_hashes(redis, keys.date)
    expected = in_memory(frames)
    assert int(live[keys.meta]["entries"]) == FRAMES
    live.pop(keys.meta)
    expected.pop(keys.meta)
    assert live == expected
    assert (await redis.xpending(keys.frames, K.GROUP))["pending"] == 0


async def test_flush_writes_a_tail_held_back(redis, settings):
    frames = market_frames(FRAMES)
    await _append(redis, frames)
    keys = K.SessionKeys(SESSION.isoformat())
    projector = worker.SessionProjector(redis, keys.date, _settings(settings.redis_url, 10**9))
    assert await projector.acquire()
    assert await projector.step() == BATCH
    assert await redis.hget(keys.meta, "checkpoint") is None
    await projector.flush()
    assert int(await redis.hget(keys.meta, "entries")) == BATCH
