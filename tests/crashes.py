"""Projector crash tests' common run: workers SIGKILLed at given points, then one left to
finish, and the state checked against a replay."""

from __future__ import annotations

import signal
import subprocess
import sys

from app import keys as K
from app.replay import verify
from tests.apiserver import until


async def kill_at_points_then_finish(redis, env: dict, keys: K.SessionKeys, points, total: int) -> None:
    """Start ``project`` and SIGKILL it once it has folded each of ``points`` entries; then
    ``project --drain`` to the end; assert every entry folded once and the state equals
    its replay, with nothing left pending."""

    async def folded() -> int:
        return int(await redis.hget(keys.meta, "entries") or 0)

    async def at_least(n: int) -> bool:
        return await folded() >= n

    for point in points:
        proc = subprocess.Popen([sys.executable, "-m", "app", "project"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await until(lambda: at_least(point), timeout=60, interval=0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # A last worker, left alone, finishes the stream.
    proc = subprocess.Popen([sys.executable, "-m", "app", "project", "--drain"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await until(lambda: at_least(total), timeout=120, interval=0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert await folded() == total == await redis.xlen(keys.frames)
    diff = await verify(redis, keys.date)
    assert not diff, diff.lines()[:20]
    assert (await redis.xpending(keys.frames, K.GROUP))["pending"] == 0
