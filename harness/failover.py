"""A master failover during ingest, end to end: what the failover test asserts and the
cluster bench times.

Frames flow source -> StreamWriter (this process) -> the session's master; a
``stock-tracker project`` and a ``stock-tracker serve`` process run beside, and a
WebSocket client watches ``/ws/market``. Part-way through, the master of the session's
slot is SIGKILLed; its replica takes over. Nobody is told: ingest, projector and API
must recover by themselves. The killed node is started again afterwards (it rejoins as
a replica), so the cluster is whole for whoever uses it next.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import websockets

from app import keys as K
from app.ingest.writer import StreamWriter
from app.local_redis import free_port, stop_process
from app.store import connect
from harness.redis_cluster import private_redis_cluster

SESSION = "2026-11-25"
WIRE_DATE = "25/11/2026"
RECEIVED = 1_795_600_000_000  # 2026-11-25 in Vietnam


def source_frames(n: int) -> list[str]:
    """``n`` distinct frames of one session: trades of 30 symbols, every one counted."""
    out = []
    for i in range(n):
        sym = f"S{i % 30:02d}"
        t = 9 * 3600 + 20 * 60 + i // 10
        content = {
            "RType": "X-TRADE", "TradingDate": WIRE_DATE, "Time": f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}",
            "Symbol": sym, "Exchange": "HOSE", "LastPrice": 10000.0 + i % 7 * 50, "LastVol": 100.0,
            "TotalVol": float(100 * (i // 30 + 1)), "TradingSession": "LO",
        }
        out.append(json.dumps({"DataType": "X-TRADE", "Content": json.dumps(content)}, separators=(",", ":")))
    return out


@dataclass
class Failover:
    """What happened: the frames sent and stored, the client's view, the timings (s)."""

    sent: list[str]
    stored: list[str] = field(default_factory=list)
    folded: int = 0
    ws_events: list[str] = field(default_factory=list)  # "down", "up", "state" in order of arrival
    final_state: dict | None = None
    snapshot: dict | None = None
    promoted_s: float = 0.0  # kill -> a replica serves the slot
    ingest_resumed_s: float = 0.0  # kill -> the first batch confirmed after it
    clients_full_s: float = 0.0  # kill -> the client holds full state again (status up, then state)
    retries: int = 0
    node_timeout_ms: int = 0
    replay_differences: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # the projector's and the API node's stderr
    # (route, status, JSON body?) each time a polled route's status changed
    http: list[tuple[str, int, bool]] = field(default_factory=list)


class Process:
    """A ``stock-tracker`` command in the background, its log kept for a failure report."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args], env={**os.environ, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def stop(self) -> str:
        stop_process(self.proc, 10)
        return self.proc.stderr.read().decode(errors="replace")


async def run_failover(
    cluster: private_redis_cluster, frames: int = 3000, batch: int = 20, interval_s: float = 0.01,
    kill_after: int = 1000, flush_each: bool = True,
) -> Failover:
    """Send ``frames`` frames, ``batch`` every ``interval_s``, killing the master after ``kill_after``.

    ``flush_each`` False: the writer is flushed after every second batch only, so two
    batches are in flight when the master dies, and both are resent, in order."""
    key = K.SessionKeys(SESSION).frames
    master = cluster.master_of(key)
    # Everyone is pointed at a node that survives: the URL is only where discovery starts.
    entry = next(n for n in cluster.nodes if n.alive() and n is not master)
    env = {"REDIS_URL": entry.url, "LOG_LEVEL": "INFO", "PROJECTOR_BLOCK_MS": "50", "PROJECTOR_LEASE_MS": "3000",
           "WS_THROTTLE_MS": "50"}
    port = free_port()
    result = Failover(sent=source_frames(frames), node_timeout_ms=cluster.node_timeout_ms)
    redis = await connect(entry.url)
    await redis.flushall()
    projector = Process(["project"], env)
    api = Process(["serve", "--port", str(port)], env)
    try:
        await _until_up(f"http://127.0.0.1:{port}/healthz")
        writer = StreamWriter(redis)
        # The session exists (and is current) before the client connects.
        await writer.append([(f, RECEIVED) for f in result.sent[:batch]])
        await writer.flush()
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/market", max_size=None) as ws:
            watcher = asyncio.create_task(_watch(ws, result))
            poller = asyncio.create_task(_poll(f"http://127.0.0.1:{port}", result))
            killed_at = None
            sent = batch
            while sent < frames:
                chunk = result.sent[sent : sent + batch]
                await writer.append([(f, RECEIVED) for f in chunk])
                if flush_each or sent // batch % 2 == 0:
                    await writer.flush()
                sent += len(chunk)
                if killed_at is not None and not result.ingest_resumed_s:
                    result.ingest_resumed_s = time.monotonic() - killed_at
                if killed_at is None and sent >= kill_after:
                    master.kill()
                    killed_at = time.monotonic()
                    result.ws_events.append("killed")
                    asyncio.get_running_loop().run_in_executor(None, _time_promotion, cluster, key, master, killed_at, result)
                await asyncio.sleep(interval_s)
            await writer.flush()
            result.retries = writer.retries
            await _until(lambda: _folded(redis, result, frames), 60)
            # The node's answer is read again on each look: a notice of the last write can
            # reach the node just after a first read, and the client's next push then
            # differs from that earlier answer, not from what the node serves.
            await _until(lambda: _shows(result, f"http://127.0.0.1:{port}/api/market/snapshot"), 30)
            result.clients_full_s = result.clients_full_s - killed_at if result.clients_full_s else 0.0
            watcher.cancel()
            poller.cancel()
        result.stored = [e[1][b"f"].decode() for e in await redis.xrange(key) if b"f" in e[1]]
        from app.replay import verify  # after the projector caught up: live == replay

        result.replay_differences = (await verify(redis, SESSION)).lines()
    finally:
        result.logs = [projector.stop(), api.stop()]
        await redis.aclose()
        if not master.alive():
            cluster.restart(master)
        cluster.wait_ok()
    return result


async def _poll(base: str, result: Failover) -> None:
    """/readyz and a market route every 50 ms: what a proxy and a client see meanwhile."""
    last: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while True:
            for route in ("/readyz", "/api/market/indices"):
                try:
                    response = await client.get(route)
                except httpx.HTTPError:
                    continue
                if last.get(route) != response.status_code:
                    last[route] = response.status_code
                    is_json = response.headers.get("content-type", "").startswith("application/json")
                    result.http.append((route, response.status_code, is_json))
            await asyncio.sleep(0.05)


def _time_promotion(cluster, key, master, killed_at, result) -> None:
    cluster.wait_promoted(key, master)
    result.promoted_s = time.monotonic() - killed_at


async def _watch(ws, result: Failover) -> None:
    """Record what the client sees: status down/up and states, the time of full state."""
    up_seen = False
    async for message in ws:
        if not isinstance(message, str):
            continue
        data = json.loads(message)
        if data.get("type") == "status":
            result.ws_events.append("up" if data["connected"] else "down")
            up_seen = bool(data["connected"])
            continue
        result.ws_events.append("state")
        result.final_state = data
        if up_seen and not result.clients_full_s and "down" in result.ws_events:
            result.clients_full_s = time.monotonic()


async def _folded(redis, result: Failover, frames: int) -> bool:
    result.folded = int(await redis.hget(K.SessionKeys(SESSION).meta, "entries") or 0)
    return result.folded >= frames


async def _shows(result: Failover, snapshot_url: str) -> bool:
    """Whether the client's last full state is the snapshot the node now serves."""
    result.snapshot = (await _get(snapshot_url)).json()
    return result.final_state == result.snapshot


async def _until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await predicate():
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def _until_up(url: str) -> None:
    async def up() -> bool:
        return (await _get(url)).status_code == 200

    await _until(up, 30)


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url)
