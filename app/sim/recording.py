"""Simulated frames to a JSONL file (one Broadcast string per line), as `ingest --file` reads
and the benchmarks replay: ``write_jsonl(MarketSimulator(universe="all", ...), path)``."""
from __future__ import annotations

from itertools import islice
from pathlib import Path

from app.sim.market import MarketSimulator

__all__ = ["write_jsonl"]


def write_jsonl(sim: MarketSimulator, path: str | Path, limit: int | None = None) -> int:
    """Write the frames of ``sim`` (at most ``limit``; close markers left out) to ``path``;
    returns how many were written."""
    frames = (ev.frame for ev in sim.events() if ev.frame is not None)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for frame in islice(frames, limit):
            fh.write(frame)
            fh.write("\n")
            n += 1
    return n
