#!/usr/bin/env python3
"""Redis Cluster benchmarks: the same ingest and fold on a cluster and on one Redis, and a
master failover during ingest.

- ingest / fold: ``ingest_file`` and ``project --drain`` of the same simulated frames, on
  a private 3-master/3-replica cluster (a batch counts once a replica confirms it: WAIT)
  and on one private redis-server (no replicas, no WAIT), in the same run;
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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import keys as K  # noqa: E402
from app.config import Settings  # noqa: E402
from app.ingest.run import ingest_file  # noqa: E402
from app.projections import worker  # noqa: E402
from app.local_redis import private_redis_server  # noqa: E402
from app.store import connect  # noqa: E402
from bench.core import SESSION_DATE, frames_file  # noqa: E402
from harness.failover import run_failover  # noqa: E402
from harness.redis_binary import NoRedisServer, redis_server_binary  # noqa: E402
from harness.redis_cluster import private_redis_cluster  # noqa: E402


async def ingest_and_fold(url: str, path: Path, frames: int) -> dict:
    """frames/s of ``ingest_file`` then ``drain`` of one session on the store at ``url``."""
    redis = await connect(url)
    try:
        await redis.flushall()
        settings = Settings(redis_url=url)
        started = time.perf_counter()
        appended = await ingest_file(redis, settings, str(path), progress=False)
        ingest = appended / (time.perf_counter() - started)
        session = SESSION_DATE.isoformat()
        assert await redis.xlen(K.SessionKeys(session).frames) == frames
        started = time.perf_counter()
        folded = await worker.drain(redis, settings, [session])
        fold = folded / (time.perf_counter() - started)
        return {"ingest": ingest, "fold": fold}
    finally:
        await redis.aclose()


async def bench(n: int, seed: int, binary: str, node_timeout_ms: int) -> dict:
    path = frames_file(n, seed)
    results: dict = {"frames": n, "node_timeout_ms": node_timeout_ms, "load_before": os.getloadavg()}
    with private_redis_server(binary) as url:
        results["single"] = await ingest_and_fold(url, path, n)
    # One Redis with a replica: the same WAIT and the same replication work as a cluster
    # master, without the cluster.
    with private_redis_server(binary) as url, private_redis_server(binary) as replica_url:
        _follow(replica_url, url)
        results["replicated"] = await ingest_and_fold(url, path, n)
    with private_redis_cluster(binary, masters=3, replicas=1, node_timeout_ms=node_timeout_ms) as cluster:
        results["cluster"] = await ingest_and_fold(cluster.url, path, n)
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


def table(r: dict) -> str:
    s, c, f, p = r["single"], r["cluster"], r["failover"], r["replicated"]
    budget = r["node_timeout_ms"] / 1000 + 5
    rows = [
        ("ingest (file -> stream)", f"{c['ingest']:,.0f} frames/s", f"{s['ingest']:,.0f} frames/s (one Redis)",
         f"{c['ingest'] / s['ingest']:.2f}x", ">= 0.8x"),
        ("fold (stream -> hashes, exactly once)", f"{c['fold']:,.0f} frames/s", f"{s['fold']:,.0f} frames/s (one Redis)",
         f"{c['fold'] / s['fold']:.2f}x", ">= 0.8x"),
        ("ingest, vs one Redis with a replica", f"{c['ingest']:,.0f} frames/s",
         f"{p['ingest']:,.0f} frames/s (one Redis + replica, WAIT)", f"{c['ingest'] / p['ingest']:.2f}x", ""),
        ("fold, vs one Redis with a replica", f"{c['fold']:,.0f} frames/s",
         f"{p['fold']:,.0f} frames/s (one Redis + replica)", f"{c['fold'] / p['fold']:.2f}x", ""),
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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        binary = redis_server_binary()
    except NoRedisServer as exc:
        raise SystemExit(str(exc))
    results = asyncio.run(bench(args.frames, args.seed, binary, args.node_timeout_ms))
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
