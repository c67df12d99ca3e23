"""Crash consistency: a projector killed with SIGKILL again and again loses and repeats nothing."""

from __future__ import annotations

import os
import random
from datetime import date

import pytest

from app import keys as K
from app.ingest.run import run_simulator
from app.sim import MarketSimulator
from tests.crashes import kill_at_points_then_finish
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

    await kill_at_points_then_finish(redis, env, keys, points, FRAMES)
