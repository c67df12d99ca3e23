"""Redis (AOF, appendfsync always) killed and restarted mid-session under a running system.

Ingest, projector and an API node run as the processes an operator would start. Redis is
SIGKILLed while frames are flowing and started again on the same port from its AOF. Nobody
is restarted: ingest resends what was not acknowledged (at most once), the projector takes
its lease back and goes on from its checkpoint, and the node tells its WebSocket clients
the store went away, then that it is back, then sends full state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date

import httpx
import pytest
import websockets

from app import keys as K
from app.sim import MarketSimulator
from app.replay import verify
from app.local_redis import private_redis_server
from app.store import redis_from_url
from tests.apiserver import ApiServer, until
from tests.test_api import recv_json

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DAY = date(2026, 11, 25)
SEED = 3
FRAMES = 30_000
KILL_AT = 10_000  # frames in the stream when Redis dies: mid-flow, ingest still sending
SPEED = 200  # simulated seconds per second: ~8 s for the whole run, bursts of ~3k frames/s


def expected_frames() -> list[bytes]:
    frames = []
    for event in MarketSimulator(seed=SEED, start=DAY).events():
        if event.frame is not None:
            frames.append(event.frame.encode())
            if len(frames) == FRAMES:
                return frames
    raise AssertionError("the simulated session is shorter than the test needs")


async def test_ingest_projector_and_api_ride_out_a_redis_restart(redis_binary, tmp_path):
    store = private_redis_server(redis_binary, appendonly=True)
    store.start()
    keys = K.SessionKeys(DAY.isoformat())
    env = {**os.environ, "REDIS_URL": store.url, "LOG_LEVEL": "INFO",
           "PROJECTOR_BLOCK_MS": "50", "PROJECTOR_LEASE_MS": "2000"}
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("ingest", "project")}
    procs: dict[str, subprocess.Popen] = {}
    client = redis_from_url(store.url)
    try:
        procs["project"] = subprocess.Popen([sys.executable, "-m", "app", "project"], env=env,
                                            stdout=subprocess.DEVNULL, stderr=logs["project"])
        procs["ingest"] = subprocess.Popen(
            [sys.executable, "-m", "app", "ingest", "--simulate", "--seed", str(SEED), "--date", DAY.isoformat(),
             "--frames", str(FRAMES), "--speed", str(SPEED)],
            env=env, stdout=subprocess.DEVNULL, stderr=logs["ingest"])
        with ApiServer(store.url, WS_THROTTLE_MS="50") as node:
            async with websockets.connect(node.ws + "/ws/market", max_size=None) as ws:
                await recv_json(ws)  # the state at connect time

                async def stream_len() -> int:
                    return await client.xlen(keys.frames)

                await until(lambda: _at_least(stream_len, KILL_AT), timeout=60)
                assert procs["ingest"].poll() is None, "ingest must still be sending when Redis dies"
                await client.aclose()
                store.proc.send_signal(signal.SIGKILL)
                store.proc.wait()

                # The node notices at once and says so ...
                assert await next_status(ws) == {
                    "type": "status", "connected": False, "reason": "store"}
                down = httpx.get(node.http + "/api/market/snapshot", timeout=10)
                assert down.status_code == 503 and "detail" in down.json(), down.text[:300]

                store.start()  # same port, same directory: the AOF is replayed
                client = redis_from_url(store.url)
                # ... then that it is back, then full state, with no node restart.
                assert await recv_json(ws, timeout=30, status=True) == {"type": "status", "connected": True}
                state = await recv_json(ws, timeout=30, status=True)
                assert state.get("type") != "status" and "quotes" in state

                assert procs["ingest"].wait(timeout=120) == 0
                # Every frame is in the stream once, in order: what was acknowledged
                # survived the kill, what was not was resent, nothing was doubled.
                stored = [fields[b"f"] for _, fields in await client.xrange(keys.frames)]
                assert len(stored) == FRAMES
                assert stored == expected_frames()

                last_id = (await client.xrevrange(keys.frames, count=1))[0][0]

                async def caught_up() -> bool:
                    return await client.hget(keys.meta, "checkpoint") == last_id

                await until(caught_up, timeout=120, interval=0.05)
                assert int(await client.hget(keys.meta, "entries")) == FRAMES
                assert (await client.xpending(keys.frames, K.GROUP))["pending"] == 0
                diff = await verify(client, keys.date)
                assert not diff, diff.lines()[:20]

                # Clients converge on what REST serves from the restored store.
                rest = httpx.get(node.http + "/api/market/snapshot", timeout=10).json()

                async def ws_matches_rest() -> bool:
                    return await recv_json(ws, timeout=10) == rest

                await until(ws_matches_rest, timeout=30, interval=0)
        for name, proc in procs.items():
            assert proc.poll() is None or proc.returncode == 0, name
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for fh in logs.values():
            fh.close()
        await client.aclose()
        store.cleanup()
    ingest_log = (tmp_path / "ingest.log").read_text()
    project_log = (tmp_path / "project.log").read_text()
    # Both really met the outage (and said so without a traceback).
    assert "event=redis_unavailable op=append" in ingest_log and "event=redis_back" in ingest_log
    assert "event=redis_unavailable" in project_log
    assert "Traceback" not in ingest_log + project_log


async def next_status(ws) -> dict:
    """Skip the state pushes still queued from before the outage."""
    while True:
        message = await recv_json(ws, timeout=20, status=True)
        if message.get("type") == "status":
            return message


async def _at_least(value, n: int) -> bool:
    return await value() >= n
