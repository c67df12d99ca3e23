"""``stock-tracker demo``: the whole pipeline in one process on a simulated market."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import datetime, time

from app.clock import VN_TZ, now_vn
from app.config import Settings
from app.ingest.run import run_simulator
from app.projections import worker
from app.projections.read import market_snapshot
from app.schemas import MarketSnapshot
from app.store import open_redis

log = logging.getLogger("stock_tracker.demo")

OPEN = time(9, 0)
CLOSE = time(15, 0)


def start_time(now: datetime) -> time:
    """Start where a live market would be now; outside trading hours, just before
    the opening auction prints so there is something to watch at once."""
    local = now.astimezone(VN_TZ)
    if local.weekday() < 5 and OPEN <= local.time() < CLOSE:
        return local.time().replace(microsecond=0)
    return time(9, 14, 50)


def render(snapshot: MarketSnapshot) -> str:
    """A compact text board of the snapshot."""
    lines = []
    idx = "  ".join(
        f"{i.index_id} {i.value:,.2f} ({i.change:+.2f}, adv {i.advances}/dec {i.declines})"
        for i in snapshot.indices.values()
    )
    lines.append(idx or "indices: waiting for MI frames")
    d = snapshot.derivatives
    if d is not None:
        basis = f"basis {d.basis:+.2f} ({'premium' if d.is_premium else 'discount'})" if d.basis is not None else "basis n/a"
        lines.append(f"{d.symbol} {d.last_price:,.1f} vol {d.volume:,}  {basis}")
    f = snapshot.foreign
    if f is not None:
        lines.append(
            f"foreign net {f.total_net_value / 1e9:+,.2f} bn VND  "
            f"top buy {', '.join(x.symbol for x in f.top_buy) or '-'}  "
            f"top sell {', '.join(x.symbol for x in f.top_sell) or '-'}"
        )
    top = sorted(snapshot.quotes.values(), key=lambda s: -s.total_volume)[:8]
    for s in top:
        active = s.mua_chu_dong_volume + s.ban_chu_dong_volume
        ratio = s.mua_chu_dong_volume / active if active else 0.0
        lines.append(
            f"  {s.symbol:<10} buy {s.mua_chu_dong_volume:>11,}  sell {s.ban_chu_dong_volume:>11,}  "
            f"neutral {s.neutral_volume:>10,}  buy ratio {ratio:5.1%}"
        )
    return "\n".join(lines)


async def run_demo(settings: Settings, speed: float = 1.0, seed: int = 1, interval: float = 2.0) -> None:
    """Simulator -> stream -> projector, printing the board until Ctrl-C."""
    from app.ingest.simulator import MarketSimulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    now = now_vn()
    async with open_redis(settings, embedded=True) as redis:
        sim = MarketSimulator(seed=seed, start=now.date(), days=None, open_at=start_time(now))
        log.info("event=demo_start date=%s from=%s speed=%s", sim.start, start_time(now), speed)
        tasks = [
            asyncio.create_task(run_simulator(redis, settings, sim, speed, None)),
            asyncio.create_task(worker.run(redis, settings, stop)),
        ]
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except asyncio.TimeoutError:
                    pass
                for task in tasks:
                    if task.done() and task.exception():
                        raise task.exception()
                sys.stdout.write("\n" + render(await market_snapshot(redis)) + "\n")
                sys.stdout.flush()
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    log.info("event=demo_stop")
