"""Crash consistency: a projector killed with SIGKILL again and again loses and repeats nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import date

import pytest

from app import keys as K
from app.ingest.run import run_simulator
from app.sim import MarketSimulator
from app.replay import verify
from tests.apiserver import until
from tests.stores import stores

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FRAMES = 200_000
KILLS = 20


@stores
async def test_sigkill_at_20_random_points_then_state_equals_a_clean_replay(redis, settings, redis_server):
    session = date(2026, 11, 25)
    sim = MarketSimulator(seed=7, start=session, activity=1.3)
    assert await run_simulator(redis, settings, sim, 0.0, FRAMES) == FRAMES
    keys = K.SessionKeys(session.isoformat())
    assert await redis.xlen(keys.frames) == FRAMES
    env = {**os.environ, "REDIS_URL": redis_server.url, "PROJECTOR_LEASE_MS": "300",
           "PROJECTOR_BLOCK_MS": "50", "LOG_LEVEL": "WARNING"}
    rng = random.Random(2026)
    points = sorted(rng.sample(range(1, FRAMES - 1000), KILLS))

    async def folded() -> int:
        return int(await redis.hget(keys.meta, "entries") or 0)

    for point in points:
        proc = subprocess.Popen([sys.executable, "-m", "app", "project"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await until(lambda: _at_least(folded, point), timeout=60, interval=0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # A last worker, left alone, finishes the stream.
    proc = subprocess.Popen([sys.executable, "-m", "app", "project", "--drain"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await until(lambda: _at_least(folded, FRAMES), timeout=120, interval=0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert await folded() == FRAMES == await redis.xlen(keys.frames)
    diff = await verify(redis, keys.date)
    assert not diff, diff.lines()[:20]
    pending = await redis.xpending(keys.frames, K.GROUP)
    assert pending["pending"] == 0


async def _at_least(value, n: int) -> bool:
    return await value() >= n
