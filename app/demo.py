"""``stock-tracker demo``: the production path in one process, no Redis or SSI account needed.

fake FastConnect (simulated market) -> our SignalR client -> stream -> projector -> API
and dashboard, on an embedded store unless REDIS_URL is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime, time

import msgspec
import uvicorn

from app.api.app import create_app
from app.clock import VN_TZ, now_vn
from app.config import Settings
from app.ingest.fake_ssi import FakeFastConnect
from app.ingest.live import run_live
from app.projections import worker
from app.store import free_port, open_redis

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


class _Server(uvicorn.Server):
    """uvicorn inside our event loop: Ctrl-C is handled once, by the demo."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _server(app, host: str, port: int, **kwargs) -> _Server:
    return _Server(
        uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
            ws_per_message_deflate=False, **kwargs,
        )
    )


async def run_demo(settings: Settings, host: str = "127.0.0.1", port: int = 8000, speed: float = 1.0, seed: int = 1) -> None:
    """Run everything until Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    now = now_vn()
    opens = start_time(now)
    fake = FakeFastConnect(seed=seed, start=now.date(), speed=speed, open_at=opens)
    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}/"
    settings = msgspec.structs.replace(
        settings, ssi_url=fake_url, ssi_stream_url=fake_url, ssi_consumer_id="demo", ssi_consumer_secret="demo"
    )
    async with open_redis(settings, embedded=True) as redis:
        fake_server = _server(fake.app, "127.0.0.1", fake_port, ws_ping_interval=None)
        api_server = _server(create_app(settings, redis=redis), host, port)
        servers = [fake_server, api_server]
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not (fake_server.started and api_server.started):
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()
                raise SystemExit(f"could not start: is port {port} free? (--port)")
            await asyncio.sleep(0.05)
        tasks += [
            asyncio.create_task(run_live(redis, settings, stop)),
            asyncio.create_task(worker.run(redis, settings, stop)),
        ]
        log.info("event=demo_ready url=http://%s:%d/ market_from=%s speed=%s", host, port, opens, speed)
        print(f"\n  stock-tracker demo: open http://{host}:{port}/  (Ctrl-C to stop)\n", flush=True)
        try:
            while not stop.is_set():
                done, _ = await asyncio.wait(tasks + [asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task in tasks and not task.cancelled() and task.exception():
                        raise task.exception()
                if any(t.done() for t in tasks):
                    break
        finally:
            stop.set()
            for server in servers:
                server.should_exit = True
            await asyncio.wait(tasks, timeout=15)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    log.info("event=demo_stop")

