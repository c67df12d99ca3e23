"""Two batches in flight: a batch that overtakes the one before it is refused, never
appended first (which would make the earlier one pass for a resend, and be lost).
"""

from __future__ import annotations

import asyncio

import pytest

from app import keys as K
from app.ingest import writer as W
from app.ingest.writer import APPEND, StreamWriter
from tests import factory as F
from tests.stores import stores

pytestmark = pytest.mark.anyio

SESSION = F.SESSION
RECEIVED = 1_795_600_000_000  # 2026-11-25 in Vietnam


def frames(n: int, start: int = 0) -> list[str]:
    return [F.trade("ACB", 22900 + i % 5 * 50, 100, 100 * (i + 1), time="09:20:00") for i in range(start, start + n)]


async def append_script(redis, keys: K.SessionKeys, batch: int, after: int, raws: list[bytes]) -> int:
    script_keys, args = APPEND.bind(
        keys={"frames": keys.frames, "mark": keys.ingest_mark("w1")},
        args={"received": str(RECEIVED), "lengths": ",".join(str(len(r)) for r in raws),
              "blob": b"".join(raws), "batch": str(batch), "after": str(after)},
    )
    return int(await redis.eval(APPEND.source, len(script_keys), *script_keys, *args))


@stores
async def test_the_script_refuses_a_batch_ahead_of_its_predecessor_and_skips_a_resend(redis):
    keys = K.SessionKeys(SESSION)
    await redis.set(keys.ingest_mark("w1"), "4")  # batch 4 is in, batch 5 is on its way
    six = [f.encode() for f in frames(2, 10)]
    assert await append_script(redis, keys, batch=6, after=5, raws=six) == -1
    assert await redis.xlen(keys.frames) == 0 and await redis.get(keys.ingest_mark("w1")) == b"4"
    five = [f.encode() for f in frames(3)]
    assert await append_script(redis, keys, batch=5, after=4, raws=five) == 3
    assert await append_script(redis, keys, batch=5, after=4, raws=five) == 0  # a resend: nothing added
    assert await append_script(redis, keys, batch=6, after=5, raws=six) == 2
    assert await append_script(redis, keys, batch=5, after=4, raws=five) == 0  # late, after 6: still a resend
    stored = [e[1][b"f"] for e in await redis.xrange(keys.frames)]
    assert stored == five + six
    assert await redis.get(keys.ingest_mark("w1")) == b"6"
    # Nothing to wait for (the one before is confirmed, its mark gone with a pruned
    # session): the batch lands.
    await redis.delete(keys.ingest_mark("w1"))
    assert await append_script(redis, keys, batch=7, after=0, raws=six[:1]) == 1


@stores
async def test_a_second_batch_reaching_redis_first_is_resent_after_the_first(redis):
    writer = StreamWriter(redis)
    real = writer._pipeline
    overtaken = asyncio.Event()
    sent: list[tuple[int, str]] = []

    async def first_held_back(by_session, new, batch, previous=None):
        if batch == 1 and not overtaken.is_set():
            await overtaken.wait()  # the first batch leaves only once the second has been to Redis
        try:
            await real(by_session, new, batch, previous)
            sent.append((batch, "appended"))
        except W._Refused:
            sent.append((batch, "refused"))
            raise
        finally:
            if batch == 2:
                overtaken.set()

    writer._pipeline = first_held_back
    first, second, third = frames(40), frames(30, 40), frames(20, 70)
    await writer.append([(f, RECEIVED) for f in first])
    await writer.append([(f, RECEIVED) for f in second])
    assert writer.appended == 0
    await writer.append([(f, RECEIVED) for f in third])  # waits for the first (two in flight)
    await writer.flush()
    stored = [e[1][b"f"].decode() for e in await redis.xrange(K.SessionKeys(SESSION).frames)]
    assert stored == first + second + third  # in order, each once
    assert sent[:3] == [(2, "refused"), (1, "appended"), (2, "appended")], sent
    assert writer.appended == len(stored)


@stores
async def test_acknowledged_means_this_batch_and_every_one_before_it(redis):
    writer = StreamWriter(redis)
    real = writer._pipeline
    release = asyncio.Event()
    second_done = asyncio.Event()

    async def first_slow(by_session, new, batch, previous=None):
        if batch == 1:
            await release.wait()
        await real(by_session, new, batch, previous)
        if batch == 2:
            second_done.set()

    writer._pipeline = first_slow
    # The first batch's session was not written before: the second (another session)
    # has nothing to wait for in Redis, and lands first.
    day_before = [F.trade("ACB", 22900, 100, 100, date="24/11/2026")]
    await writer.append([(f, RECEIVED) for f in day_before])
    await writer.append([(f, RECEIVED) for f in frames(5)])
    await second_done.wait()
    assert await redis.xlen(K.SessionKeys(SESSION).frames) == 5
    assert writer.appended == 0  # in Redis, but not counted before the batch ahead of it
    release.set()
    await writer.flush()
    assert writer.appended == 6


async def test_a_batch_behind_one_that_gave_up_fails_too_and_is_not_appended(redis):
    from redis.exceptions import ConnectionError as RedisConnectionError

    writer = StreamWriter(redis, give_up_after_s=0.0)
    real = writer._pipeline
    second_tried = asyncio.Event()

    async def first_never_lands(by_session, new, batch, previous=None):
        if batch == 1:
            await second_tried.wait()
            raise RedisConnectionError("Connection refused")
        try:
            await real(by_session, new, batch, previous)
        finally:
            second_tried.set()

    writer._pipeline = first_never_lands
    await writer.append([(f, RECEIVED) for f in frames(3)])
    await writer.append([(f, RECEIVED) for f in frames(3, 3)])
    with pytest.raises(RedisConnectionError):
        await writer.flush()
    assert await redis.xlen(K.SessionKeys(SESSION).frames) == 0
    assert writer.appended == 0 and not writer._inflight
