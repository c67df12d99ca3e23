#!/usr/bin/env python3
"""Simulator benchmark: what one simulated trading day is, per universe.

For each universe: its symbols, frames in the day, the busiest second (when, and how many
frames), the ATO and ATC seconds, how skewed trading is (the share of trades made by the
busiest tenth of the symbols), and how fast the generator makes frames on one core. The
baseline is the VN30 day generated in the same run; the targets are the full market's
size: 2-5 million frames a day and tens of thousands of frames in an auction second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.sim import UNIVERSES, MarketSimulator  # noqa: E402

DAY = date(2026, 11, 25)
TRADES = ("X-TRADE", "X")


def measure(universe: str, seed: int) -> dict:
    """One simulated day of ``universe``: counts per second and per symbol, generation speed."""
    sim = MarketSimulator(universe=universe, seed=seed, start=DAY, days=1)
    per_second: Counter[str] = Counter()
    trades: Counter[str] = Counter()
    frames = 0
    started = time.perf_counter()
    for event in sim.events():
        if event.frame is None:
            continue
        frames += 1
        per_second[event.at.strftime("%H:%M:%S")] += 1
        if event.data_type == "X-TRADE":
            trades[event.symbol] += 1
    elapsed = time.perf_counter() - started
    busiest, peak = per_second.most_common(1)[0]
    top = max(1, len(trades) // 10)
    return {
        "universe": universe,
        "symbols": len(trades),
        "frames": frames,
        "busiest_second": busiest,
        "busiest_frames": peak,
        "ato_frames": per_second.get("09:15:00", 0),
        "atc_frames": per_second.get("14:45:00", 0),
        "top_tenth_trade_share": sum(n for _, n in trades.most_common(top)) / max(1, sum(trades.values())),
        "frames_per_s": frames / elapsed,
        "seconds": elapsed,
    }


def table(results: list[dict]) -> str:
    base = next(r for r in results if r["universe"] == "vn30")
    out = [
        "| universe | symbols traded | frames / day | busiest second | ATO second | ATC second "
        "| top tenth's share of trades | generation | vs VN30 (same run) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        out.append(
            f"| {r['universe']} | {r['symbols']:,} | {r['frames']:,} | {r['busiest_frames']:,} at {r['busiest_second']} "
            f"| {r['ato_frames']:,} | {r['atc_frames']:,} | {r['top_tenth_trade_share']:.0%} "
            f"| {r['frames_per_s']:,.0f} frames/s | {r['frames'] / base['frames']:.1f}x frames, "
            f"{r['frames_per_s'] / base['frames_per_s']:.2f}x speed |"
        )
    out.append(f"\nOne day ({DAY}, default channels, activity 1); load average after: "
               f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}. "
               "Full-market targets: 2-5M frames a day, tens of thousands in an auction second.")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universes", default="vn30,all",
                        help=f"comma-separated, from {', '.join(UNIVERSES)} (vn30, the baseline, is always run)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args()
    wanted = ["vn30", *(u for u in dict.fromkeys(args.universes.split(",")) if u and u != "vn30")]
    unknown = [u for u in wanted if u not in UNIVERSES]
    if unknown:
        raise SystemExit(f"unknown universe {unknown[0]!r}: choose from {', '.join(UNIVERSES)}")
    results = [measure(u, args.seed) for u in wanted]
    print(table(results))
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
