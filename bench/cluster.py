#!/usr/bin/env python3
"""Redis Cluster benchmarks: the same ingest and fold on a cluster and on one Redis, and a
master failover during ingest.

- ingest / fold: ``ingest_file`` and ``project --drain`` of the same simulated frames, on
  a private 3-master/3-replica cluster (a batch counts once a replica confirms it: WAIT),
  on one private redis-server (no replicas, no WAIT) and on one with a replica (WAIT), all
  up at once and taking turns for ``--rounds`` rounds: each figure is the median; with the
  CPU the session's master spent per frame appended (a master is one thread: this bounds
  ingest whatever the cores);
- failover: SIGKILL of the current session's master while frames flow at 2,000/s
  (``harness/failover.py``, as the failover test): seconds until a replica serves the
  slot, until ingest appends again, until a /ws/market client holds full state again;
  and acknowledged frames lost or doubled (stream vs what the source sent).

Runs against servers it starts (loopback, temp dirs, no persistence), never a shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import keys as K  # noqa: E402
from app.config import Settings  # noqa: E402
from app.ingest.run import ingest_file  # noqa: E402
from app.projections import worker  # noqa: E402
from app.local_redis import private_redis_server  # noqa: E402
from app.store import connect, for_slot  # noqa: E402
from bench.core import SESSION_DATE, frames_file  # noqa: E402
from harness.failover import run_failover  # noqa: E402
from harness.redis_binary import NoRedisServer, redis_server_binary  # noqa: E402
from harness.redis_cluster import private_redis_cluster  # noqa: E402

ROUNDS = 3


async def ingest_and_fold(url: str, path: Path, frames: int) -> dict:
    """frames/s of ``ingest_file`` then ``drain`` of one session on the store at ``url``."""
    redis = await connect(url)
    try:
        await redis.flushall()
        settings = Settings(redis_url=url)
        session = SESSION_DATE.isoformat()
        master = (await for_slot(redis, K.SessionKeys(session).frames).info("server"))["process_id"]
        cpu_before = _cpu_s(master)
        started = time.perf_counter()
        appended = await ingest_file(redis, settings, str(path), progress=False)
        ingest = appended / (time.perf_counter() - started)
        # The session's master is single-threaded: its CPU per frame bounds ingest's rate.
        master_cpu_us = (_cpu_s(master) - cpu_before) / appended * 1e6
        assert await redis.xlen(K.SessionKeys(session).frames) == frames
        started = time.perf_counter()
        folded = await worker.drain(redis, settings, [session])
        fold = folded / (time.perf_counter() - started)
        return {"ingest": ingest, "fold": fold, "master_cpu_us": master_cpu_us}
    finally:
        await redis.aclose()


async def bench(n: int, seed: int, binary: str, node_timeout_ms: int, rounds: int = ROUNDS) -> dict:
    path = frames_file(n, seed)
    results: dict = {"frames": n, "node_timeout_ms": node_timeout_ms, "rounds": rounds,
                     "load_before": os.getloadavg()}
    with ExitStack() as stack:
        single = stack.enter_context(private_redis_server(binary))
        # One Redis with a replica: the same WAIT and the same replication work as a
        # cluster master, without the cluster.
        primary = stack.enter_context(private_redis_server(binary))
        _follow(stack.enter_context(private_redis_server(binary)), primary)
        cluster = stack.enter_context(
            private_redis_cluster(binary, masters=3, replicas=1, node_timeout_ms=node_timeout_ms)
        )
        # A shared box swings a single run by +-30 %: the three stores take turns, round
        # after round, and each figure is the median of its rounds.
        stores = {"single": single, "replicated": primary, "cluster": cluster.url}
        runs: dict[str, list[dict]] = {name: [] for name in stores}
        for round_ in range(rounds):
            order = list(stores) if round_ % 2 == 0 else list(stores)[::-1]
            for name in order:
                runs[name].append(await ingest_and_fold(stores[name], path, n))
        for name, got in runs.items():
            results[name] = {
                what: statistics.median(r[what] for r in got) for what in ("ingest", "fold", "master_cpu_us")
            } | {f"{what}_range": (min(r[what] for r in got), max(r[what] for r in got)) for what in ("ingest", "fold")}
        failover = await run_failover(cluster, frames=6000, batch=20, interval_s=0.01, kill_after=2000)
    results["failover"] = {
        "promoted_s": failover.promoted_s,
        "ingest_resumed_s": failover.ingest_resumed_s,
        "clients_full_s": failover.clients_full_s,
        "sent": len(failover.sent),
        "lost": len(set(failover.sent) - set(failover.stored)),
        "doubled": len(failover.stored) - len(set(failover.stored)),
        "replay_identical": not failover.replay_differences,
        "ws": _squeeze(failover.ws_events),
    }
    results["load_after"] = os.getloadavg()
    return results


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _follow(replica_url: str, primary_url: str) -> None:
    """Make ``replica_url`` a replica of ``primary_url`` and wait until it is in sync."""
    from redis import Redis as SyncRedis

    primary, replica = SyncRedis.from_url(primary_url), SyncRedis.from_url(replica_url)
    replica.replicaof("127.0.0.1", primary.connection_pool.connection_kwargs["port"])
    deadline = time.monotonic() + 30
    while replica.info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not sync")
        time.sleep(0.05)


def _squeeze(events: list[str]) -> str:
    """``state x12, killed, down, up, state x40``: the client's view, runs counted."""
    out: list[list] = []
    for e in events:
        if out and out[-1][0] == e:
            out[-1][1] += 1
        else:
            out.append([e, 1])
    return ", ".join(e if n == 1 else f"{e} x{n}" for e, n in out)


def _rate(figures: dict, what: str) -> str:
    low, high = figures[f"{what}_range"]
    return f"{figures[what]:,.0f} frames/s ({low:,.0f}-{high:,.0f})"


def table(r: dict) -> str:
    s, c, f, p = r["single"], r["cluster"], r["failover"], r["replicated"]
    budget = r["node_timeout_ms"] / 1000 + 5
    m = r["rounds"]
    rows = [
        (f"ingest (file -> stream, median of {m})", _rate(c, "ingest"), _rate(s, "ingest") + " (one Redis)",
         f"{c['ingest'] / s['ingest']:.2f}x", ">= 0.8x"),
        (f"fold (stream -> hashes, exactly once, median of {m})", _rate(c, "fold"), _rate(s, "fold") + " (one Redis)",
         f"{c['fold'] / s['fold']:.2f}x", ">= 0.8x"),
        ("ingest, vs one Redis with a replica", _rate(c, "ingest"),
         _rate(p, "ingest") + " (one Redis + replica, WAIT)", f"{c['ingest'] / p['ingest']:.2f}x", ""),
        ("fold, vs one Redis with a replica", _rate(c, "fold"),
         _rate(p, "fold") + " (one Redis + replica)", f"{c['fold'] / p['fold']:.2f}x", ""),
        ("ingest: the session master's CPU per frame", f"{c['master_cpu_us']:.1f} us",
         f"{s['master_cpu_us']:.1f} us (one Redis), {p['master_cpu_us']:.1f} us (one Redis + replica)",
         f"{s['master_cpu_us'] / c['master_cpu_us']:.2f}x", ""),
        ("failover: replica serves the slot", f"{f['promoted_s']:.1f} s", f"cluster-node-timeout {r['node_timeout_ms']} ms",
         "", ""),
        ("failover: ingest appends again", f"{f['ingest_resumed_s']:.1f} s", "", "", f"<= {budget:g} s"),
        ("failover: clients hold full state again", f"{f['clients_full_s']:.1f} s", "", "", f"<= {budget:g} s"),
        ("failover: acknowledged frames lost / doubled", f"{f['lost']} / {f['doubled']} of {f['sent']:,}",
         "replay " + ("identical" if f["replay_identical"] else "DIFFERENT"), "", "0 / 0"),
    ]
    out = ["| benchmark | Redis Cluster (3 masters + 3 replicas) | baseline (same run) | ratio | target |",
           "| --- | --- | --- | --- | --- |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    load = ", ".join(f"{x:.2f}" for x in r["load_before"])
    out.append(f"\n{r['frames']:,} frames; load average before: {load}; "
               f"after: {', '.join(f'{x:.2f}' for x in r['load_after'])}; client saw: {f['ws']}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--node-timeout-ms", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        binary = redis_server_binary()
    except NoRedisServer as exc:
        raise SystemExit(str(exc))
    results = asyncio.run(bench(args.frames, args.seed, binary, args.node_timeout_ms, args.rounds))
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
