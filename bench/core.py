#!/usr/bin/env python3
"""Core benchmarks: ingest, fold, replay and memory on N simulated frames (default 1M).

Each figure is printed beside a baseline measured in the same run on the same frames:
- ingest: our file ingest vs a bare redis-py pipelined XADD loop of the same strings;
- fold: the exactly-once worker (stream -> hashes) vs the same pure folds in memory;
- replay: seconds to rebuild the session, and a --verify of the result;
- memory: Redis bytes per stored frame vs the raw frame size.

Runs against a private redis-server it starts (no persistence), never a shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import keys as K  # noqa: E402
from app.config import Settings  # noqa: E402
from app.ingest.run import ingest_file  # noqa: E402
from app.sim import MarketSimulator  # noqa: E402
from app.projections import worker  # noqa: E402
from app.projections.session import finish_batch, fold, new_session  # noqa: E402
from app.replay import rebuild, verify  # noqa: E402
from app.store import private_redis_server, redis_from_url  # noqa: E402
from harness.redis_binary import NoRedisServer, redis_server_binary  # noqa: E402

SESSION_DATE = date(2026, 11, 25)


def frames_file(n: int, seed: int) -> Path:
    """Generate (once) a JSONL of n simulated frames of one trading session."""
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"frames-{seed}-{n}.jsonl"
    if path.exists():
        return path
    sim = MarketSimulator(seed=seed, start=SESSION_DATE, days=1, activity=1.3)
    count = 0
    with open(path.with_suffix(".tmp"), "w") as fh:
        for event in sim.events():
            if event.frame is None:
                continue
            fh.write(event.frame)
            fh.write("\n")
            count += 1
            if count >= n:
                break
    if count < n:
        raise SystemExit(f"the simulated session has only {count} frames; raise its activity")
    path.with_suffix(".tmp").rename(path)
    return path


async def bench(n: int, seed: int, binary: str) -> dict:
    path = frames_file(n, seed)
    frames = path.read_bytes().splitlines()
    raw_bytes = sum(len(f) for f in frames) / len(frames)
    results: dict = {"frames": len(frames)}
    with private_redis_server(binary) as url:
        redis = redis_from_url(url)
        settings = Settings(redis_url=url)

        # -- ingest ---------------------------------------------------------
        key = "bench:bare"
        received = int(time.time() * 1000)
        started = time.perf_counter()
        for i in range(0, len(frames), 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for f in frames[i : i + 1000]:
                    pipe.xadd(key, {"t": received, "f": f})
                await pipe.execute()
        bare = len(frames) / (time.perf_counter() - started)
        await redis.flushall()
        started = time.perf_counter()
        appended = await ingest_file(redis, settings, str(path), progress=False)
        ours = appended / (time.perf_counter() - started)
        results["ingest"] = {"ours": ours, "baseline": bare}
        session = SESSION_DATE.isoformat()
        stream = K.SessionKeys(session).frames
        assert await redis.xlen(stream) == len(frames)

        # -- memory ---------------------------------------------------------
        usage = await redis.memory_usage(stream, samples=0)
        results["memory"] = {"ours": usage / len(frames), "baseline": raw_bytes}

        # -- fold -----------------------------------------------------------
        gc.collect()
        state = new_session(session)
        started = time.perf_counter()
        for f in frames:
            fold(state, f)
        finish_batch(state)
        in_memory = len(frames) / (time.perf_counter() - started)
        del state
        gc.collect()
        started = time.perf_counter()
        folded = await worker.drain(redis, settings, [session])
        exactly_once = folded / (time.perf_counter() - started)
        results["fold"] = {"ours": exactly_once, "baseline": in_memory}

        # -- replay ---------------------------------------------------------
        started = time.perf_counter()
        await rebuild(redis, session)
        results["replay"] = {"ours": time.perf_counter() - started}
        diff = await verify(redis, session)
        results["replay"]["identical"] = not diff
        await redis.aclose()
    return results


def table(r: dict) -> str:
    n = r["frames"]
    rows = [
        ("ingest (file -> stream)", f"{r['ingest']['ours']:,.0f} frames/s",
         f"{r['ingest']['baseline']:,.0f} frames/s (bare pipelined XADD)",
         f"{r['ingest']['ours'] / r['ingest']['baseline']:.2f}x", ">= 100k/s and >= 0.8x"),
        ("fold (stream -> hashes, exactly once)", f"{r['fold']['ours']:,.0f} frames/s",
         f"{r['fold']['baseline']:,.0f} frames/s (same folds in memory)",
         f"{r['fold']['ours'] / r['fold']['baseline']:.2f}x", ">= 50k/s and >= 0.5x"),
        (f"replay ({n:,}-frame session)", f"{r['replay']['ours']:.1f} s",
         "verify: " + ("identical" if r["replay"]["identical"] else "DIFFERENT"), "", "<= 20 s"),
        ("memory (stream)", f"{r['memory']['ours']:,.0f} B/frame",
         f"{r['memory']['baseline']:,.0f} B/frame (raw frame)",
         f"{r['memory']['ours'] / r['memory']['baseline']:.2f}x", ""),
    ]
    out = ["| benchmark | stock-tracker | baseline (same run) | ratio | target |", "| --- | --- | --- | --- | --- |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    parser.add_argument("--json-out", metavar="FILE", help="write the raw figures as JSON to FILE")
    args = parser.parse_args()
    try:
        binary = redis_server_binary()
    except NoRedisServer as exc:
        sys.exit(str(exc))
    from app import gctune

    gctune.tune()  # as every stock-tracker command does
    results = asyncio.run(bench(args.frames, args.seed, binary))
    print(table(results))
    if args.json:
        print(json.dumps(results, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
