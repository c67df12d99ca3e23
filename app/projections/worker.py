"""The projection worker: runs a projector for every session stream with work.

``run`` supervises, forever: the newest session is projected as it grows, older ones
while they hold unapplied entries; ``drain`` folds everything there is, then returns.
Each session's folding (leases, exactly once) is :mod:`app.projections.projector`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from app import keys as K
from app import sessions
from app.store import UNAVAILABLE, detect, for_slot, outage_event
from app.config import Settings
from app.projections.projector import NotOwner, SessionProjector, consumer_name
from app.projections.stream import has_work

__all__ = ["NotOwner", "SessionProjector", "drain", "run", "session_dates"]

log = logging.getLogger("stock_tracker.projector")


async def session_dates(redis: Redis) -> list[str]:
    """Known session dates, oldest first."""
    return await sessions.session_dates(redis)


async def drain(redis: Redis, settings: Settings, dates: list[str] | None = None) -> int:
    """Fold every known session until its stream is consumed; returns entries read."""
    total = 0
    await detect(redis)
    for date in dates or await session_dates(redis):
        total += await _drain_session(redis, settings, date)
    return total


async def _drain_session(redis: Redis, settings: Settings, date: str) -> int:
    projector = SessionProjector(_session_client(redis, date), date, settings)
    total = 0
    while True:
        # A worker that just died still holds its lease until it expires: wait that out.
        deadline = time.monotonic() + 2 * settings.projector_lease_ms / 1000
        while not await projector.acquire():
            if time.monotonic() > deadline:
                log.warning("event=skip_session date=%s reason=lease_held", date)
                return total
            await asyncio.sleep(settings.projector_lease_ms / 10_000)
        try:
            total += await _drain_owned(projector)
            return total
        except NotOwner as exc:
            # A fold slower than the lease (a loaded machine, a short lease, a failover):
            # take it back and go on from the checkpoint Redis holds.
            log.warning("event=lease_lost date=%s detail=%s", date, exc)


def _session_client(redis: Redis, date: str) -> Redis:
    """On a cluster, a client straight to the master of the session's slot: the fold reads
    and writes only the session's keys, and the cluster client's routing of every command
    costs more than a plain client's whole round trip (it follows failovers by itself)."""
    return for_slot(redis, K.SessionKeys(date).frames)


async def _drain_owned(projector: SessionProjector) -> int:
    total = 0
    try:
        while True:
            n = await projector.step(block_ms=None)
            total += n
            if n == 0 and await projector.caught_up():
                return total
    finally:
        await projector.release()


async def run(redis: Redis, settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Project every session with unapplied entries, forever (or until ``stop``)."""
    stop = stop or asyncio.Event()
    consumer = consumer_name()
    tasks: dict[str, asyncio.Task] = {}
    log.info("event=projector_start consumer=%s", consumer)
    down_since: float | None = None
    while not stop.is_set():
        try:
            await detect(redis)
            dates = await session_dates(redis)
            latest = dates[-1] if dates else None
            for date in dates:
                task = tasks.get(date)
                if task is not None and not task.done():
                    continue
                if task is not None and not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    log.error("event=session_failed date=%s error=%s detail=%s", date, type(exc).__name__, exc)
                if date != latest and not await has_work(redis, date):
                    continue
                tasks[date] = asyncio.create_task(
                    _project_session(redis, settings, date, consumer, stop, keep=date == latest)
                )
            if down_since is not None:
                log.info("event=redis_back down_s=%.1f", time.monotonic() - down_since)
                down_since = None
        except UNAVAILABLE as exc:
            if down_since is None:  # once per outage, not once a second
                down_since = time.monotonic()
                level, event = outage_event(exc)
                log.log(level, "event=%s error=%s", event, type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            pass
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


async def _project_session(
    redis: Redis, settings: Settings, date: str, consumer: str, stop: asyncio.Event, keep: bool
) -> None:
    """Own one session stream while it has work (the latest session: until stopped)."""
    projector = SessionProjector(_session_client(redis, date), date, settings, consumer)
    owned = False
    while not stop.is_set():
        try:
            if not owned:
                owned = await projector.acquire()
                if not owned:
                    await _sleep(stop, settings.projector_lease_ms / 4000)
                    continue
                log.info("event=session_acquired date=%s consumer=%s", date, consumer)
            n = await projector.step(block_ms=settings.projector_block_ms)
            if n == 0 and not keep and await projector.caught_up():
                await projector.release()
                return
            if n == 0:
                await projector.renew()
        except NotOwner as exc:
            log.warning("event=lease_lost date=%s detail=%s", date, exc)
            owned = False
        except UNAVAILABLE as exc:
            if owned:  # once per outage: retries meanwhile are quiet
                level, event = outage_event(exc)
                log.log(level, "event=%s date=%s error=%s", event, date, type(exc).__name__)
            owned = False
            await _sleep(stop, 0.5)
    if owned:
        try:
            await projector.release()
        except UNAVAILABLE:
            pass


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
