"""Ingest runners: a JSONL file or the simulator into the session streams."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from datetime import date

from redis.asyncio import Redis

from app.clock import latest_weekday, now_vn
from app import archive
from app import keys as K
from app.config import Settings
from app.errors import UserError
from app.ingest.writer import StreamWriter, now_ms, read_file
from app.progress import Progress

log = logging.getLogger("stock_tracker.ingest")

# Frames per append when loading a file: large enough to amortise each round trip,
# small enough that one append script holds Redis for only ~20 ms.
FILE_CHUNK = 4000


def check_readable_file(path: str) -> None:
    """UserError unless ``path`` is a regular file we may read (checked before Redis is)."""
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, not a JSONL file of frames")
    if not os.path.exists(path):
        raise UserError(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise UserError(f"cannot read {path}: permission denied")


async def ingest_file(
    redis: Redis, settings: Settings, path: str, progress: bool | None = None, writer: StreamWriter | None = None
) -> int:
    """Append every line of a JSONL file; returns frames appended."""
    writer = writer or StreamWriter(redis, settings.stream_retention_days, archive_dir=settings.archive_dir)
    if archive.is_archive(path):
        return await restore_archive(redis, path, writer, progress)
    bar = Progress(None, f"ingest {os.path.basename(path)}", enabled=progress)
    async for lines in read_file(path, chunk=FILE_CHUNK):
        received = now_ms()
        await writer.append([(line, received) for line in lines])
        bar.advance(len(lines))
    await writer.flush()
    bar.close()
    return writer.appended


def simulated_start(given: date | None, today: date | None = None) -> date:
    """The first simulated trading day: ``given`` (the command line checks it is a
    weekday), else the latest weekday up to today: a weekend default would simulate
    Monday, a day ahead of the clock, which would then be the current session."""
    return given or latest_weekday(today or now_vn().date())


async def restore_archive(redis: Redis, path: str, writer: StreamWriter, progress: bool | None = None) -> int:
    """Append an archive's entries to its session, receive times and close marker included."""
    bar = Progress(None, f"restore {os.path.basename(path)}", enabled=progress)
    checked = False
    async for day, lines in archive.read_archive(path, chunk=FILE_CHUNK):
        if not checked:
            if await redis.exists(K.SessionKeys(day).frames):
                raise UserError(f"session {day} already has a stream: restoring would double it")
            checked = True
        frames: list[tuple[str, int]] = []
        for line in lines:
            if line.f is not None:
                frames.append((line.f.encode("utf-8", "surrogateescape"), line.t))
            elif line.m == "close":
                if frames:
                    await writer.append(frames, session=day)
                    frames = []
                await writer.close_session(day, line.t)
        if frames:
            await writer.append(frames, session=day)
        bar.advance(len(lines))
    await writer.flush()
    bar.close()
    return writer.appended


async def ingest_simulated(
    redis: Redis, settings: Settings, args: argparse.Namespace, writer: StreamWriter | None = None
) -> int:
    """Run the market simulator into the streams, paced by ``args.speed`` (0 = max)."""
    from app.sim import DEFAULT_CHANNELS, MarketSimulator

    channels = (
        [c.strip().upper() for c in args.channels.split(",") if c.strip()]
        if args.channels
        else DEFAULT_CHANNELS
    )
    sim = MarketSimulator(
        seed=args.seed,
        start=simulated_start(args.date),
        days=args.days,
        channels=channels,
        futures_naming=args.futures_naming,
        activity=args.activity,
        universe=args.universe,
    )
    return await run_simulator(redis, settings, sim, args.speed, args.frames, writer=writer)


async def run_simulator(
    redis: Redis, settings: Settings, sim, speed: float, limit: int | None, writer: StreamWriter | None = None
) -> int:
    """Append simulator events; session-close markers at simulated 15:00."""
    writer = writer or StreamWriter(redis, settings.stream_retention_days, archive_dir=settings.archive_dir)
    batch: list[tuple[str, int]] = []
    count = 0
    first_at = None
    started = time.monotonic()
    max_batch = settings.ingest_max_batch

    async def flush() -> None:
        if batch:
            await writer.append(batch)
            batch.clear()
        await writer.flush()

    for event in sim.events():
        if speed > 0:
            if first_at is None:
                first_at = event.at
            due = started + (event.at - first_at).total_seconds() / speed
            delay = due - time.monotonic()
            if delay > 0:
                await flush()
                await asyncio.sleep(delay)
        if event.frame is None:
            await flush()
            await writer.close_session(event.at.date().isoformat(), int(event.at.timestamp() * 1000))
            continue
        # Stamped with simulated time: a simulated day may lie ahead of the wall clock,
        # and the writer routes no frame to a day after the one it was received on.
        batch.append((event.frame, int(event.at.timestamp() * 1000)))
        count += 1
        if len(batch) >= max_batch:
            await writer.append(batch)  # lands while the next batch is simulated
            batch = []
        if limit is not None and count >= limit:
            break
    await flush()
    return count
