"""The /ws/market and REST benches' client processes (bench/api.py runs them as its `_ws`
and `_http` entries) and the bench's side of them.

- `_ws`: n sockets of /ws/market (bench/rawws.py's raw client) that look only for the probe
  value, plus optionally a redis-py subscriber timing PUBLISH as the baseline;
- `_http`: closed-loop keep-alive GET load, one JSON line of figures at the end.
"""

from __future__ import annotations

import asyncio
import json
import time

from children import Children, ClientProcess, raise_nofile
from harness.probe import percentile, probe_mark
from rawws import HOST, RawWebSocket, closed_codes, cpu_s, obey

# An index id of its own: the simulator's VN30 frames would overwrite a probe value on VN30.
PROBE_ID = "BENCHPROBE"
PROBE_MARK = probe_mark(PROBE_ID).encode()
PING_CHANNEL = "bench:ping"


class WsProbe(RawWebSocket):
    """A /ws/market socket that records when the probe value grows."""

    def __init__(self, port: int, deflate: bool = False, path: str = "/ws/market") -> None:
        super().__init__(port, path, deflate)
        self.seen = -1
        self.records: list[float] = []  # flat: receive time, probe value, ...

    def message(self, buf: bytearray, start: int, stop: int, now: float) -> None:
        at = buf.find(PROBE_MARK, start, stop)
        if at >= 0:
            at += len(PROBE_MARK)
            end = at
            while end < stop and buf[end] not in b",}":
                end += 1
            value = int(float(buf[at:end]))
            if value > self.seen:
                self.seen = value
                self.records += (now, value)
        elif self.seen < 0 and buf.startswith(b'{"quotes"', start):
            self.seen = 0  # a snapshot from before the first probe
        if not self.first.done() and self.seen >= 0:
            self.first.set_result(None)

    def take(self) -> list[float]:
        out, self.records = self.records, []
        return out


async def ws_client_main(port: int, n: int, redis_url: str, deflate: bool) -> None:
    """Hold n WebSockets (and optionally a pub/sub subscriber); obey stdin commands.

    ``dump``: one JSON line with what was received since the last dump; ``stop``: exit.
    """
    raise_nofile()
    loop = asyncio.get_running_loop()
    conns: list[WsProbe] = []
    failures: dict[str, int] = {}
    # Few handshakes at a time: each costs the node a full snapshot read, and the node's
    # Redis pool (100 connections) fails renders beyond that instead of queueing them.
    gate = asyncio.Semaphore(16)

    async def open_one() -> None:
        async with gate:
            conn = WsProbe(port, deflate)
            try:
                await loop.create_connection(lambda: conn, HOST, port)
                await asyncio.wait_for(conn.first, 30)
                why = None if conn.seen >= 0 else f"closed before the first message ({conn.close_code})"
            except (OSError, asyncio.TimeoutError) as exc:
                why = f"{type(exc).__name__} (upgraded={conn.upgraded})"
            if why is None:
                conns.append(conn)
            else:
                failures[why] = failures.get(why, 0) + 1
                if conn.transport:
                    conn.transport.abort()

    await asyncio.gather(*(open_one() for _ in range(n)))
    pings: list[float] = []
    pubsub = client = listener = None
    if redis_url:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(PING_CHANNEL)

        async def listen() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    pings.append(time.time() - float(message["data"]))

        listener = asyncio.create_task(listen())
    print(json.dumps({
        "ready": len(conns), "failures": failures, "compressed": sum(c.compressed for c in conns),
    }), flush=True)

    def dump() -> dict:
        got = {"records": [c.take() for c in conns], "closed": closed_codes(conns), "pings": pings[:], "cpu_s": cpu_s()}
        pings.clear()
        return got

    await obey(dump)
    if listener:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)


class WsClients(ClientProcess):
    """One `_ws` client process holding n WebSockets on /ws/market."""

    def __init__(self, proc: asyncio.subprocess.Process, hello: dict) -> None:
        super().__init__(proc, hello)
        self.compressed = hello["compressed"]
        self.cpu_s = 0.0

    @classmethod
    async def start(cls, children: Children, port: int, n: int, redis_url: str = "", deflate: bool = False) -> "WsClients":
        args = ("_ws", str(port), str(n), redis_url, "deflate" if deflate else "")
        return await cls.spawn(children, "a WebSocket client process", 120, *args)


class HttpLoad(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection sending the next GET as soon as a response ends."""

    def __init__(self, request: bytes, run: dict) -> None:
        self.request = request
        self.run = run
        self.buf = bytearray()
        self.need: int | None = None
        self.status = 0
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.run["running"]:
            self.run["lost"] += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if self.need is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                self.status = int(head[9:12])
                at = head.find(b"content-length:")
                if at < 0:
                    raise RuntimeError("response without content-length: " + head[:200].decode(errors="replace"))
                stop = head.find(b"\r\n", at)
                self.need = end + 4 + int(head[at + 15 : stop if stop >= 0 else len(head)])
            if len(buf) < self.need:
                return
            del buf[: self.need]
            self.need = None
            run = self.run
            if run["recording"]:
                run["latencies"].append(time.perf_counter() - self.sent)
                if self.status != 200:
                    run["errors"] += 1
            if run["running"]:
                self._send()


async def http_client_main(
    port: int, path: str, conns: int, seconds: float, warmup: float, addresses: bool = False
) -> None:
    """Closed-loop GET load; prints one JSON line of figures. ``addresses``: each
    connection says it is another client (``X-Forwarded-For``, for a node trusting us)."""
    loop = asyncio.get_running_loop()
    run = {"recording": False, "running": True, "latencies": [], "errors": 0, "lost": 0}
    transports = []
    for i in range(conns):
        forwarded = f"X-Forwarded-For: 10.9.{i // 250}.{i % 250 + 1}\r\n" if addresses else ""
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{forwarded}Accept: application/json\r\n\r\n".encode()
        transport, _ = await loop.create_connection(lambda request=request: HttpLoad(request, run), HOST, port)
        transports.append(transport)
    await asyncio.sleep(warmup)
    cpu0 = cpu_s()
    run["recording"] = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    run["recording"] = False
    elapsed = time.perf_counter() - started
    cpu = cpu_s() - cpu0
    run["running"] = False
    await asyncio.sleep(0.2)
    for transport in transports:
        transport.close()
    lat = run["latencies"]
    print(json.dumps({
        "requests": len(lat), "rps": len(lat) / elapsed, "errors": run["errors"], "lost": run["lost"],
        "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
        "client_cpu": cpu / elapsed,
    }), flush=True)


async def measure_rest(
    children: Children, port: int, path: str, conns: int, seconds: float, warmup: float, addresses: bool = False
) -> dict:
    """One `_http` client process's figures (see `http_client_main`)."""
    proc = await children.client("_http", str(port), path, str(conns), str(seconds), str(warmup), str(addresses))
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + warmup + 60)
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"the HTTP load process failed ({proc.returncode})")
    return json.loads(out)

