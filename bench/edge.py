#!/usr/bin/env python3
"""The edge's figures (issue: one auth model and a hardened edge), each beside a baseline
of the same run, on one `serve --workers 1` node over a closed full-market session:

- a closed session's snapshot by ``?date=`` (cached without expiry) vs the live text;
  and what each such request cost before the cache (the whole read and encode);
- the per-address rate limit's cost: a node with a limit no client reaches vs none;
- 300 connections that never finish their request head: seconds until the node has
  closed them all (HTTP_HEADER_TIMEOUT_S), while /healthz keeps answering.

    .venv/bin/python bench/edge.py [--frames 100000] [--concurrency 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_clients import measure_rest  # noqa: E402  (closed-loop HTTP load)
from children import Children, raise_nofile, wait_http  # noqa: E402
from core import SESSION_DATE, frames_file  # noqa: E402

from app.config import Settings  # noqa: E402
from app.ingest.run import ingest_file  # noqa: E402
from app.ingest.writer import StreamWriter  # noqa: E402
from app.projections import read, worker  # noqa: E402
from app.local_redis import free_port, private_redis_server  # noqa: E402
from app.store import redis_from_url  # noqa: E402
from harness.redis_binary import redis_server_binary  # noqa: E402
from rawws import HOST  # noqa: E402

SLOW_HEADS = 300
LIMIT = 100  # requests/s per address: above what each of the bench's clients asks


async def slow_heads(port: int, timeout_s: float) -> dict:
    """Open SLOW_HEADS connections that send half a request head; time until all closed."""
    loop = asyncio.get_running_loop()
    socks = []
    for _ in range(SLOW_HEADS):
        sock = socket.create_connection((HOST, port))
        sock.setblocking(False)
        await loop.sock_sendall(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    started = time.perf_counter()
    import httpx

    async with httpx.AsyncClient() as http:
        healthy = (await http.get(f"http://{HOST}:{port}/healthz", timeout=5)).status_code == 200

    async def closed(sock: socket.socket) -> float:
        data = await asyncio.wait_for(loop.sock_recv(sock, 1024), timeout_s + 30)
        sock.close()
        return time.perf_counter() - started if data == b"" else float("nan")

    times = await asyncio.gather(*(closed(s) for s in socks))
    return {"last_closed_s": max(times), "healthz_meanwhile": healthy}


async def prepare(url: str, frames: int) -> None:
    redis = redis_from_url(url)
    settings = Settings(redis_url=url)
    await ingest_file(redis, settings, str(frames_file(frames, 1, "all")), progress=False)
    await StreamWriter(redis).close_session(SESSION_DATE.isoformat())
    await worker.drain(redis, settings)
    await redis.aclose()


async def build_ms(url: str) -> float:
    """The whole read and encode a dated request paid before the cache (median of 9)."""
    import msgspec

    redis = redis_from_url(url)
    times = []
    for _ in range(9):
        started = time.perf_counter()
        msgspec.json.encode(await read.market_snapshot(redis, SESSION_DATE.isoformat()))
        times.append((time.perf_counter() - started) * 1000)
    await redis.aclose()
    return statistics.median(times)


async def bench(args) -> dict:
    results: dict = {}
    children = Children(tempfile.mkdtemp(prefix="stock-tracker-bench-edge-"))
    with private_redis_server(redis_server_binary()) as url:
        try:
            await prepare(url, args.frames)
            results["build_ms"] = await build_ms(url)
            base = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "WARNING"}
            ports = {}
            for name, env in (
                ("unlimited", {"API_RATE_LIMIT": "0"}),
                # Each bench connection says it is its own client, as a proxy in front would.
                ("limited", {"API_RATE_LIMIT": str(LIMIT), "FORWARDED_ALLOW_IPS": HOST,
                             "HTTP_HEADER_TIMEOUT_S": str(args.header_timeout)}),
            ):
                ports[name] = free_port()
                children.server(name, ["serve", "--host", HOST, "--port", str(ports[name]), "--workers", "1"], {**base, **env})
                await wait_http(ports[name], children)
            load = (args.concurrency, args.seconds, 1.0)
            dated = f"/api/market/snapshot?date={SESSION_DATE.isoformat()}"
            results["dated"] = await measure_rest(children, ports["unlimited"], dated, *load)
            results["live"] = await measure_rest(children, ports["unlimited"], "/api/market/snapshot", *load)
            path = "/api/vn30-components"
            results["limited"] = await measure_rest(children, ports["limited"], path, *load, True)
            results["unlimited"] = await measure_rest(children, ports["unlimited"], path, *load, True)
            results["heads"] = await slow_heads(ports["limited"], args.header_timeout)
            results["load"] = os.getloadavg()
            children.check()
        finally:
            await children.stop()
    return results


def table(r: dict) -> str:
    def rest(x: dict) -> str:
        return f"{x['rps']:,.0f} req/s, p99 {x['p99_ms']:.1f} ms"

    heads = r["heads"]
    rows = [
        ("REST `/api/market/snapshot?date=` (closed session, cached)", rest(r["dated"]),
         f"{rest(r['live'])} (the live snapshot)", f"{r['dated']['rps'] / r['live']['rps']:.2f}x"),
        ("  before the cache: each dated request read and encoded whole", f"{r['build_ms']:.1f} ms a request",
         "", f"<= {1000 / r['build_ms']:,.0f} req/s"),
        (f"REST with the per-address rate limit on ({LIMIT}/s; {r['limited']['errors']} refused)", rest(r["limited"]), f"{rest(r['unlimited'])} (API_RATE_LIMIT=0)",
         f"{r['limited']['rps'] / r['unlimited']['rps']:.2f}x"),
        (f"{SLOW_HEADS} connections never finishing their head: all closed after",
         f"{heads['last_closed_s']:.1f} s", f"HTTP_HEADER_TIMEOUT_S {r['header_timeout']:g} s; /healthz meanwhile: "
         + ("200" if heads["healthz_meanwhile"] else "failed"), ""),
    ]
    out = ["| benchmark | stock-tracker | baseline (same run) | ratio |", "| --- | --- | --- | --- |"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    out.append(f"\n{r['frames']:,}-frame full-market session; load average {', '.join(f'{x:.2f}' for x in r['load'])}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    args = parser.parse_args()
    raise_nofile()
    results = asyncio.run(bench(args))
    results.update(frames=args.frames, header_timeout=args.header_timeout)
    print(table(results))


if __name__ == "__main__":
    main()
