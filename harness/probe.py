"""Timing deliveries with a probe: an MI frame of an index of its own whose IndexValue is a
sequence number, appended among simulated frames, and found again in what clients receive.

A client records ``records``: flat (receive time, probe value, ...) pairs, one each time
the value it sees grows. A probe counts as delivered by the first receipt that shows it or
a later one, so a push that folds several probes into one delivers them all.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterable
from datetime import date
from itertools import islice

SESSION_DATE = date(2026, 11, 25)


def probe_mark(probe_id: str) -> str:
    """What precedes the probe's value in a pushed message (found by substring search)."""
    return '"index_id":"' + probe_id + '","value":'


def probe_frame(probe_id: str, seq: int, hms: str, session: date = SESSION_DATE) -> bytes:
    """An MI frame of index ``probe_id`` whose IndexValue is ``seq``."""
    content = json.dumps({
        "IndexId": probe_id, "IndexValue": float(seq), "PriorIndexValue": 1.0,
        "TradingDate": session.strftime("%d/%m/%Y"), "Time": hms, "TotalQtty": 0.0,
        "TotalValue": 0.0, "Advances": 0, "NoChanges": 0, "Declines": 0, "Change": 0.0,
        "RatioChange": 0.0, "TradingSession": "LO", "Exchange": "HOSE", "RType": "MI",
    }, separators=(",", ":"))
    return json.dumps({"DataType": "MI", "Content": content}, separators=(",", ":")).encode()


def _hms_of(frame: str) -> str | None:
    at = frame.find('Time\\":\\"')
    return frame[at + 9 : at + 17] if at >= 0 else None


class Feed:
    """Simulated frames and probes appended with ``StreamWriter``; ``sent`` maps each
    probe's sequence number to the wall-clock time it was handed to ingest."""

    def __init__(self, redis, *, probe_id: str, seed: int, session: date = SESSION_DATE) -> None:
        # Imported here: the benches' client processes import this module for
        # ``percentile`` and need not load the simulator.
        from app.sim import MarketSimulator
        from app.ingest.writer import StreamWriter

        self.probe_id = probe_id
        self.session = session
        self.writer = StreamWriter(redis)
        sim = MarketSimulator(seed=seed, start=session)
        self.events = (ev for ev in sim.events() if ev.frame is not None)
        self.seq = 0
        self.hms = "09:00:00"
        self.frames = 0
        self.sent: dict[int, float] = {}

    async def append(self, n_sim: int, probe: bool = True) -> None:
        """One batch: the next ``n_sim`` simulated frames, then (unless not) a probe."""
        ms = int(time.time() * 1000)
        batch = [(ev.frame, ms) for ev in islice(self.events, n_sim)]
        if batch:  # the probe keeps to the market's clock, as a real MI frame would
            self.hms = _hms_of(batch[-1][0]) or self.hms
        if probe:
            self.seq += 1
            batch.append((probe_frame(self.probe_id, self.seq, self.hms, self.session), ms))
            self.sent[self.seq] = time.time()  # read just before the append
        self.frames += len(batch)
        await self.writer.append(batch)

    async def pace(self, every: float, n_sim: int, seconds: float = math.inf) -> range:
        """A batch (``n_sim`` frames and a probe) every ``every`` s for ``seconds``, or
        until cancelled; returns the sequence numbers of the probes it appended."""
        loop = asyncio.get_running_loop()
        first = self.seq + 1
        start = loop.time()
        i = 0
        while loop.time() - start < seconds:
            await self.append(n_sim)
            i += 1
            await asyncio.sleep(max(0.0, start + i * every - loop.time()))
        await self.writer.flush()
        return range(first, self.seq + 1)


def sent_between(sent: dict[int, float], since: float, until: float) -> list[int]:
    """The probes sent in [since, until), in order."""
    return sorted(seq for seq, at in sent.items() if since <= at < until)


def lags_ms(records: list[float], sent: dict[int, float], seqs: Iterable[int]) -> tuple[list[float], int]:
    """Per probe of ``seqs`` (ascending): the first receipt showing it (or a later one)
    minus its send time, in ms; and how many never arrived."""
    lags: list[float] = []
    missing, j, n = 0, 0, len(records)
    for seq in seqs:
        while j < n and records[j + 1] < seq:
            j += 2
        if j >= n:
            missing += 1
        else:
            lags.append((records[j] - sent[seq]) * 1000)
    return lags, missing


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]
