#!/usr/bin/env python3
"""API benchmarks: end-to-end WebSocket latency, fan-out, and REST throughput.

Each figure is printed beside a baseline measured in the same run:
- latency: a frame appended to the session stream -> the first /ws/market push that shows
  it, with 2,000 simulated frames/s going through a `stock-tracker project` subprocess and
  one `stock-tracker serve` node; baseline: Redis PUBLISH -> a redis-py subscriber, timed
  at the same moments, in the same client process;
- fan-out: per-client lag of each push (probe appended -> received) with N clients on
  /ws/market of one node (--workers 1), a change every throttle + 10 ms (~9 pushes/s);
  baseline: the same lag with one client;
- REST: GET /api/market/snapshot requests/s and p99 at 64 concurrent keep-alive
  connections after a ~50k-frame session was projected; baseline: GET /healthz, same load;
- /ws subscriptions (bench/ws_subs.py), on a full-market session (1,600 symbols) of their
  own: probe latency of 2,000 clients on 30-symbol boards, 200 on `*` with
  ?compression=deflate (and their bytes on the wire beside /ws/market's and 5 plain `*`
  clients' in the same phase), 1,000 on candles or trades of random symbols,
  and the node's CPU while clients only follow symbols that never change (baseline: the
  same load with no clients).

Clients run in processes of their own (plain asyncio protocols that look only for the
probe: bench/api_clients.py, bench/ws_clients.py), so the server's figures do not pay for a
heavy client; bench/children.py starts and stops every process. Runs against a private
redis-server it starts (no persistence), never a shared one; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.probe import SESSION_DATE, Feed, lags_ms, percentile  # noqa: E402
from harness.redis_binary import NoRedisServer, redis_server_binary  # noqa: E402
# The modules beside this file:
from api_clients import (  # noqa: E402
    PING_CHANNEL, PROBE_ID, WsClients, http_client_main, measure_rest, ws_client_main,
)
from children import Children, raise_nofile, wait_http  # noqa: E402
from rawws import HOST  # noqa: E402
import ws_clients  # noqa: E402
import ws_subs  # noqa: E402

LAG_TARGET_MS = 200.0
E2E_MARGIN_MS = 25.0
PER_PROCESS = 500  # WebSockets per client process


async def wait_caught_up(redis, timeout: float = 60.0) -> None:
    from app import keys as K

    keys = K.SessionKeys(SESSION_DATE.isoformat())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = await redis.xrevrange(keys.frames, count=1)
        checkpoint = await redis.hget(keys.meta, "checkpoint")
        if last and checkpoint == last[0][0]:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the projector did not catch up within %.0f s" % timeout)


async def measure_e2e(children: Children, feed: Feed, url: str, port: int, seconds: float,
                      rate: int, throttle_ms: int) -> dict:
    from app.store import redis_from_url

    tick = 0.01
    per_batch = max(1, round(rate * tick))
    client = await WsClients.start(children, port, 1, url)
    if client.ready != 1:
        raise RuntimeError(f"the latency client could not connect: {client.failures}")
    pinger = redis_from_url(url)
    stop = asyncio.Event()

    async def ping() -> None:
        while not stop.is_set():
            await pinger.publish(PING_CHANNEL, repr(time.time()))
            await asyncio.sleep(tick)

    await feed.pace(tick, per_batch - 1, seconds=1.0)  # warm-up, not measured
    await client.dump()
    frames0, started = feed.frames, time.perf_counter()
    pinging = asyncio.create_task(ping())
    seqs = await feed.pace(tick, per_batch - 1, seconds=seconds)
    elapsed = time.perf_counter() - started
    rate_seen = (feed.frames - frames0) / elapsed
    stop.set()
    await pinging
    await pinger.aclose()
    await asyncio.sleep(max(0.5, 3 * throttle_ms / 1000))
    got = await client.dump()
    await client.stop()
    lags, missing = lags_ms(got["records"][0], feed.sent, seqs)
    pings = [p * 1000 for p in got["pings"]]
    return {
        "rate": rate_seen, "probes": len(seqs), "missing": missing,
        "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99), "max_ms": max(lags, default=math.nan),
        "pubsub_p50_ms": percentile(pings, 50), "pubsub_p99_ms": percentile(pings, 99),
        "pubsub_samples": len(pings),
    }


async def fanout_level(clients: list[WsClients], feed: Feed, seconds: float, every: float, settle: float) -> dict:
    for c in clients:
        c.cpu_s = (await c.dump())["cpu_s"]  # drop what the connect phase received
    window = time.perf_counter()
    await asyncio.sleep(0.5)
    seqs = await feed.pace(every, 0, seconds=seconds)
    await asyncio.sleep(settle)
    lags: list[float] = []
    missing = 0
    closed: dict[str, int] = {}
    cpu = 0.0
    for c in clients:
        got = await c.dump()
        for records in got["records"]:
            these, lost = lags_ms(records, feed.sent, seqs)
            lags += these
            missing += lost
        for code, count in got["closed"].items():
            closed[code] = closed.get(code, 0) + count
        cpu += got["cpu_s"] - c.cpu_s
        c.cpu_s = got["cpu_s"]
    return {
        "clients": sum(c.ready for c in clients), "pushes": len(seqs), "samples": len(lags),
        "missing": missing, "closed": closed,
        "client_cpu": cpu / (time.perf_counter() - window),  # cores the client processes used
        "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99), "max_ms": max(lags, default=math.nan),
    }


async def measure_fanout(children: Children, feed: Feed, port: int, levels: list[int],
                         seconds: float, throttle_ms: int, deflate: bool) -> dict:
    settle = max(1.0, 3 * throttle_ms / 1000)
    # Just over the throttle, so each change is pushed on its own: at exactly the
    # throttle, a change that lands a little sooner after the previous push than that
    # push did after its change waits out the interval, and the lag ratchets up to the
    # slowest push so far.
    every = max(100, throttle_ms + 10) / 1000
    one = await WsClients.start(children, port, 1, deflate=deflate)
    baseline = await fanout_level([one], feed, 2 * seconds, every, settle)
    await one.stop()
    clients: list[WsClients] = []
    out = []
    held = 0
    for n in levels:
        started = time.perf_counter()
        chunks = []
        while held + sum(chunks) < n:
            chunks.append(min(PER_PROCESS, n - held - sum(chunks)))
        clients += await asyncio.gather(*(WsClients.start(children, port, k, deflate=deflate) for k in chunks))
        held = n
        connected = sum(c.ready for c in clients)
        connect_s = time.perf_counter() - started
        result = await fanout_level(clients, feed, seconds, every, settle)
        result.update(target=n, connected=connected, connect_s=connect_s,
                      compressed=sum(c.compressed for c in clients),
                      failures=[c.failures for c in clients if c.failures])
        out.append(result)
        print(f"  fan-out {n:>5} clients: p99 {result['p99_ms']:.1f} ms, missing {result['missing']}, "
              f"closed {result['closed']}", file=sys.stderr)
        # Past twice the target the node is overloaded; more clients only add minutes.
        if connected < n or result["p99_ms"] > 2 * LAG_TARGET_MS or result["missing"] or result["closed"]:
            break
    for c in clients:
        await c.stop()
    ok = [r["target"] for r in out if r["p99_ms"] <= LAG_TARGET_MS and not r["missing"] and r["connected"] == r["target"]]
    return {"baseline": baseline, "levels": out, "capacity": max(ok, default=0), "push_ms": every * 1000, "deflate": deflate}


async def bench(args: argparse.Namespace, binary: str) -> dict:
    from app.local_redis import free_port, private_redis_server
    from app.store import redis_from_url

    quick = args.quick
    e2e_s = 4.0 if quick else 12.0
    fan_s = 3.0 if quick else 5.0
    rest_s, rest_warm = (3.0, 0.5) if quick else (6.0, 1.0)
    levels = [250, 1000] if quick else [250, 500, *range(1000, 100_000, 500)]
    levels = [n for n in levels if n <= args.max_clients] or [args.max_clients]
    limit = raise_nofile()
    if limit < max(levels) + 200:
        print(f"warning: the descriptor limit ({limit}) is low for {max(levels)} clients", file=sys.stderr)
    results: dict = {"throttle_ms": args.throttle_ms, "quick": quick}
    logdir = tempfile.mkdtemp(prefix="stock-tracker-bench-api-")
    children = Children(logdir)
    started = time.perf_counter()
    with private_redis_server(binary) as url:
        redis = redis_from_url(url)
        try:
            port = free_port()
            env = {
                **os.environ, "REDIS_URL": url, "LOG_LEVEL": "WARNING",
                "WS_THROTTLE_MS": str(args.throttle_ms), "WS_MAX_PER_IP": str(10 * max(levels) + 100),
                # Every bench client shares one address: the per-address REST limit would
                # measure itself, not the node.
                "API_RATE_LIMIT": "0",
            }
            children.server("projector", ["project"], env)
            api = children.server("api", ["serve", "--host", HOST, "--port", str(port), "--workers", "1"], env)
            await wait_http(port, children)

            feed = Feed(redis, probe_id=PROBE_ID, seed=args.seed)
            e2e_frames = int((e2e_s + 1.0) * args.rate)  # with its 1 s warm-up
            preload = max(0, args.rest_frames - e2e_frames)
            while feed.frames < preload:
                await feed.append(min(1000, preload - feed.frames), probe=False)
            await feed.writer.flush()
            await wait_caught_up(redis)

            if not args.ws_only:
                print("latency ...", file=sys.stderr)
                results["e2e"] = await measure_e2e(children, feed, url, port, e2e_s, args.rate, args.throttle_ms)
                await wait_caught_up(redis)
                children.check()

            print("REST ...", file=sys.stderr)
            results["frames"] = feed.frames
            import httpx

            async with httpx.AsyncClient() as http:
                results["snapshot_bytes"] = len((await http.get(f"http://{HOST}:{port}/api/market/snapshot")).content)
                board = (await http.get(f"http://{HOST}:{port}/api/market/board")).json()["rows"]
                results["board_row_bytes"] = round(
                    sum(len(json.dumps(row, separators=(",", ":"))) for row in board.values()) / max(1, len(board))
                )
            results["rest"] = {} if args.ws_only else {
                "healthz": await measure_rest(children, port, "/healthz", args.concurrency, rest_s, rest_warm),
                "snapshot": await measure_rest(children, port, "/api/market/snapshot", args.concurrency, rest_s, rest_warm),
                "board": await measure_rest(children, port, "/api/market/board", args.concurrency, rest_s, rest_warm),
                "concurrency": args.concurrency,
            }
            children.check()

            if not args.ws_only:
                print("fan-out ...", file=sys.stderr)
                results["fanout"] = await measure_fanout(children, feed, port, levels, fan_s, args.throttle_ms, args.deflate)
                children.check()

            print("/ws subscriptions (full market) ...", file=sys.stderr)
            scale = 0.25 if quick else 1.0
            results["subs"] = await ws_subs.measure(
                children, redis, port, api.pid, throttle_ms=args.throttle_ms, rate=args.ws_rate,
                seconds=3.0 if quick else 5.0, seed=args.seed, per_process=PER_PROCESS,
                board_clients=int(2000 * scale), star_clients=int(200 * scale), history_clients=int(1000 * scale),
                log=lambda text: print(text, file=sys.stderr),
            )
            results["load"] = os.getloadavg()
            children.check()
        except Exception:
            await children.stop()
            for name, _ in children.servers:
                print(f"--- {name} log (tail) ---\n{children.tail(name)}", file=sys.stderr)
            raise
        finally:
            await children.stop()
            await redis.aclose()
            shutil.rmtree(logdir, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    return results


def level_note(level: dict) -> str:
    """What a fan-out level's p99 leaves out: clients that never connected, pushes missed."""
    if level["connected"] < level["target"]:
        return f" ({level['connected']:,} connected)"
    if level["missing"] or level["closed"]:
        return f" ({level['missing']:,} pushes missed, closed {level['closed']})"
    return ""


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.1f} ms"


def table(r: dict) -> str:
    throttle = r["throttle_ms"]
    if "e2e" not in r:  # --ws-only
        return subs_table(r)
    e = r["e2e"]
    f = r["fanout"]
    base = f["baseline"]
    h, s = r["rest"]["healthz"], r["rest"]["snapshot"]
    conc = r["rest"]["concurrency"]
    pubsub = "(PUBLISH -> redis-py subscriber)"
    rows = [
        (f"latency p50, append -> /ws/market ({e['rate']:,.0f} frames/s)", _ms(e["p50_ms"]),
         f"{_ms(e['pubsub_p50_ms'])} {pubsub}", "", ""),
        (f"latency p99, append -> /ws/market ({e['rate']:,.0f} frames/s)", _ms(e["p99_ms"]),
         f"{_ms(e['pubsub_p99_ms'])} {pubsub}", "",
         f"<= {throttle + E2E_MARGIN_MS:.0f} ms (throttle {throttle} + {E2E_MARGIN_MS:.0f})"),
    ]
    for level in f["levels"]:
        note = level_note(level)
        rows.append((
            f"fan-out p99 lag, {level['target']:,} clients, 1 worker", _ms(level["p99_ms"]) + note,
            f"{_ms(base['p99_ms'])} (1 client)", f"{level['p99_ms'] / base['p99_ms']:.1f}x",
            f"<= {LAG_TARGET_MS:.0f} ms",
        ))
    rows.append((f"fan-out: most clients with p99 <= {LAG_TARGET_MS:.0f} ms", f"{f['capacity']:,}",
                 f"largest tried: {max(l['target'] for l in f['levels']):,}", "", ">= 1,000"))
    rows.append((f"REST /api/market/snapshot, {conc} concurrent", f"{s['rps']:,.0f} req/s",
                 f"{h['rps']:,.0f} req/s (/healthz)", f"{s['rps'] / h['rps']:.2f}x", ""))
    rows.append((f"REST /api/market/snapshot p99, {conc} concurrent", _ms(s["p99_ms"]),
                 f"{_ms(h['p99_ms'])} (/healthz)", f"{s['p99_ms'] / h['p99_ms']:.1f}x", ""))
    b = r["rest"].get("board")
    if b:
        rows.append((f"REST /api/market/board, {conc} concurrent", f"{b['rps']:,.0f} req/s",
                     f"{h['rps']:,.0f} req/s (/healthz)", f"{b['rps'] / h['rps']:.2f}x", ""))
    rows += [row[:5] for row in ws_subs.rows(r["subs"], throttle)]
    out = ["| benchmark | stock-tracker | baseline (same run) | ratio | target |", "| --- | --- | --- | --- | --- |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out.append("")
    out.append(
        f"Session: {r['frames']:,} frames projected, snapshot {r['snapshot_bytes']:,} bytes, "
        f"board row {r.get('board_row_bytes', 0):,} bytes on average; "
        f"fan-out: a change every {f['push_ms']:.0f} ms, {f['levels'][0]['pushes']} per level"
        f"{', clients negotiate permessage-deflate' if f['deflate'] else ''}; "
        f"REST errors {s['errors'] + h['errors']}; load average {', '.join(f'{x:.2f}' for x in r['load'])}; "
        f"run took {r['seconds']:.0f} s. /ws: {r['subs']['symbols']:,} symbols, {r['subs']['rate']:,.0f} frames/s."
    )
    return "\n".join(out)


def subs_table(r: dict) -> str:
    out = ["| benchmark | stock-tracker | baseline (same run) | ratio | target |", "| --- | --- | --- | --- | --- |"]
    out += ["| " + " | ".join(row[:5]) + " |" for row in ws_subs.rows(r["subs"], r["throttle_ms"])]
    sub = r["subs"]
    out += ["", f"/ws: {sub['symbols']:,} symbols, {sub['rate']:,.0f} frames/s, a probe every {sub['push_ms']:.0f} ms; "
            f"load average {', '.join(f'{x:.2f}' for x in r['load'])}; run took {r['seconds']:.0f} s."]
    return "\n".join(out)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_ws":
        asyncio.run(ws_client_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "deflate"))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_subs":
        port, n, mode, seed, names = sys.argv[2:7]
        asyncio.run(ws_clients.client_main(int(port), int(n), mode, int(seed), names))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_http":
        port, path, conns, seconds, warmup, addresses = sys.argv[2:8]
        asyncio.run(http_client_main(int(port), path, int(conns), float(seconds), float(warmup), addresses == "True"))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (~40 s): fewer, shorter measurements")
    parser.add_argument("--rate", type=int, default=2000, help="frames/s appended during the latency run")
    parser.add_argument("--throttle-ms", type=int, default=100, help="WS_THROTTLE_MS of the API node")
    parser.add_argument("--max-clients", type=int, default=2000, help="largest fan-out level")
    parser.add_argument("--concurrency", type=int, default=64, help="REST connections")
    parser.add_argument("--rest-frames", type=int, default=50_000, help="session size before the REST run")
    parser.add_argument("--deflate", action="store_true",
                        help="fan-out clients negotiate permessage-deflate, as browsers do")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ws-only", action="store_true", help="only the /ws subscription figures")
    parser.add_argument("--ws-rate", type=int, default=500, help="frames/s of the full-market /ws phases")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    parser.add_argument("--json-out", metavar="FILE", help="write the raw figures as JSON to FILE")
    args = parser.parse_args()
    try:
        binary = redis_server_binary()
    except NoRedisServer as exc:
        sys.exit(str(exc))
    # A SIGTERM unwinds like Ctrl-C, so the servers and clients are stopped either way.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = asyncio.run(bench(args, binary))
    except KeyboardInterrupt:
        sys.exit(130)
    print(table(results))
    if args.json:
        print(json.dumps(results, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
