"""``stock-tracker demo``: the production path in one process, no Redis or SSI account needed.

fake FastConnect (simulated market) -> our SignalR client -> stream -> projector -> API
and dashboard, on an embedded store unless REDIS_URL is set.

Whatever the wall clock says, the demo plays one simulated trading day (see
:func:`app.ingest.demo_clock.plan`): from 09:00 up to the simulated now, flat out and
straight into the stream, then from the fake FastConnect through our SignalR client in
real time (times ``--speed``). One simulator run feeds both parts, so every figure on
the page comes from the same day and no frame is lost or doubled at the hand-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
import uvicorn
from redis.asyncio import Redis

from app import keys as K
from app.api.app import create_app
from app.api.http_protocol import uvicorn_options
from app.api.feed import LIVE, SIMULATION_FIELDS, Simulation
from app.clock import SESSION_CLOSE, VN_TZ, now_vn
from app.config import Settings
from app.contracts import FeedStatus
from app.errors import UserError
from app.ingest.demo_clock import DemoPlan, SimClock, plan
from app.sim.fake import FakeFastConnect, parse_channels
from app.ingest.live import ALL_MARKET_CHANNELS, channels_for, run_live
from app.sim import ALL_CHANNELS, VN30_SYMBOLS, MarketSimulator, SimEvent
from app.ingest.writer import StreamWriter, now_ms
from app.projections import worker
from app.projections.hashes import to_hash
from app.projections.stream import stream_position
from app.local_redis import check_port
from app.store import open_redis

log = logging.getLogger("stock_tracker.demo")

# Frames per append in the catch-up: big enough to amortise a round trip, small enough
# (~30 ms of simulation) that the page keeps being served in between.
CATCH_UP_BATCH = 4000
# The projector reads the catch-up backlog in bigger batches than live (one diff and
# one apply per batch): about 12 % faster over a day, measured.
PROJECTOR_BATCH = 5000


class _Server(uvicorn.Server):
    """uvicorn inside our event loop: Ctrl-C is handled once, by the demo."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn; a busy port is one line (UserError)."""
    check_port(host, port)  # names a busy port the way every command does
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        check_port(host, port)  # taken since the check: the same one line
        raise UserError(f"cannot listen on {host}:{port}") from None
    return sock


async def _serve(server: uvicorn.Server, sock: socket.socket, what: str) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit:  # uvicorn exits when its startup fails; here that is one line
        raise UserError(f"the demo's {what} could not start (see the log above)") from None


async def _start(app, sock: socket.socket, what: str, **kwargs) -> tuple[_Server, asyncio.Task]:
    options = {"log_config": None, "access_log": False, "ws_per_message_deflate": False, **kwargs}
    server = _Server(uvicorn.Config(app, lifespan="on", **options))
    task = asyncio.create_task(_serve(server, sock, what))
    while not server.started:
        if task.done():
            task.result()  # its error, else:
            raise UserError(f"the demo's {what} stopped while starting")
        await asyncio.sleep(0.02)
    return server, task


def subscription(specs: tuple[str, ...]) -> Callable[[SimEvent], bool]:
    """Whether a simulated frame is one our feed client subscribes to (as the fake decides)."""
    sub = parse_channels(",".join(specs))

    def wanted(ev: SimEvent) -> bool:
        targets = sub.get(ev.data_type, False)
        return targets is None or (targets is not False and ev.symbol.upper() in targets)

    wanted.channels = frozenset(sub) & ALL_CHANNELS  # type: ignore[attr-defined]
    return wanted


@dataclass
class CatchUp:
    """The day's start, written straight to the stream."""

    frames: int = 0
    seconds: float = 0.0
    pending: SimEvent | None = None  # the first event of the live part
    last: object = None  # stream position of the last catch-up entry


async def catch_up(redis: Redis, settings: Settings, events: Iterator[SimEvent], until: datetime,
                   wanted: Callable[[SimEvent], bool], stop: asyncio.Event) -> CatchUp:
    """Append every subscribed frame before ``until``, in order, exactly once (or until ``stop``)."""
    started = time.perf_counter()
    writer = StreamWriter(redis, settings.stream_retention_days)
    done = CatchUp()
    batch: list[str] = []

    async def flush() -> None:
        if batch:
            received = now_ms()
            await writer.append([(frame, received) for frame in batch])
            done.frames += len(batch)
            batch.clear()
        # Let the append go out (Redis works on it while we simulate the next batch)
        # and the page be served.
        await asyncio.sleep(0)

    for ev in events:
        if ev.at >= until:
            done.pending = ev
            break
        if ev.frame is not None and wanted(ev):
            batch.append(ev.frame)
            if len(batch) >= CATCH_UP_BATCH:
                await flush()
                if stop.is_set():  # Ctrl-C while catching up: no need to finish
                    break
    await flush()
    await writer.flush()
    done.seconds = time.perf_counter() - started
    return done


@dataclass
class Demo:
    """A running demo (what the tests look at)."""

    plan: DemoPlan
    api_url: str
    stop: asyncio.Event
    catch_up: CatchUp = field(default_factory=CatchUp)
    fake: FakeFastConnect | None = None
    clock: SimClock | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)  # the catch-up is folded
    tasks: list[asyncio.Task] = field(default_factory=list)  # the parts: the demo ends if one does
    watch: asyncio.Task | None = None


async def _announce_caught_up(redis: Redis, demo: Demo, started: float) -> None:
    """Log when the projector has folded the whole catch-up, and tell the page."""
    target = demo.catch_up.last
    while target is not None:
        _, checkpoint = await stream_position(redis, demo.plan.date.isoformat())
        if checkpoint is not None and checkpoint >= target:
            break
        await asyncio.sleep(0.1)
    await redis.hset(K.FEED_STATUS, "phase", LIVE)
    demo.caught_up.set()
    log.info("event=demo_caught_up simulated_date=%s folded=%d seconds=%.2f", demo.plan.date,
             demo.catch_up.frames, time.perf_counter() - started)


@contextlib.asynccontextmanager
async def start_demo(
    settings: Settings, redis: Redis, sock: socket.socket, *, speed: float = 1.0, seed: int = 1,
    clock: Callable[[], datetime] = now_vn, planner: Callable[[datetime], DemoPlan] = plan,
    stop: asyncio.Event | None = None, universe: str = "vn30",
) -> AsyncIterator[Demo]:
    """Start the demo on ``redis``, its API on ``sock``; everything stops on exit or ``stop``.

    When ``stop`` is set during the catch-up, the live part is not started. Beyond the
    vn30 ``universe`` our feed client subscribes ALL (unless SSI_CHANNELS says otherwise).
    """
    started = time.perf_counter()
    the_plan = planner(clock())
    host, port = sock.getsockname()[:2]
    demo = Demo(the_plan, f"http://{host}:{port}/", stop or asyncio.Event())
    settings = msgspec.structs.replace(settings, projector_batch=max(settings.projector_batch, PROJECTOR_BATCH))
    if universe != "vn30" and not settings.ssi_channels:
        settings = msgspec.structs.replace(settings, ssi_channels=";".join(ALL_MARKET_CHANNELS))
    log.info("event=demo_plan now=%s simulated_date=%s simulated_from=%s reason=%s speed=%s",
             clock().isoformat(timespec="seconds"), the_plan.date, the_plan.start, the_plan.reason, speed)
    # The fake lists the simulator's symbols as the VN30: what our client will subscribe.
    wanted = subscription(await channels_for(settings, list(VN30_SYMBOLS), the_plan.start_at))
    sim = MarketSimulator(seed=seed, start=the_plan.date, days=1, channels=wanted.channels,  # type: ignore[attr-defined]
                          futures_naming=settings.futures_naming, universe=universe)
    simulation = Simulation(sim_date=the_plan.date.isoformat(), sim_from=the_plan.start.isoformat(), speed=speed)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(K.FEED_STATUS, "gaps")
        # The hub reads `connected` from this hash: the feed client is not connected yet.
        pipe.hset(K.FEED_STATUS, mapping={**to_hash(FeedStatus(connected=False, since=now_vn().isoformat())),
                                          **to_hash(simulation)})
        await pipe.execute()
    servers: list[_Server] = []
    try:
        api, api_task = await _start(create_app(settings, redis=redis), sock, "API server", **uvicorn_options(settings))
        servers.append(api)
        demo.tasks += [api_task, asyncio.create_task(worker.run(redis, settings, demo.stop))]
        print(f"\n  stock-tracker demo: open {demo.api_url}  (simulated market, {the_plan.date} from "
              f"{the_plan.start}; Ctrl-C to stop)\n", flush=True)

        events = sim.events()
        demo.catch_up = await catch_up(redis, settings, events, the_plan.start_at, wanted, demo.stop)
        if demo.stop.is_set():
            yield demo
            return
        demo.catch_up.last, _ = await stream_position(redis, the_plan.date.isoformat())
        rest = events if demo.catch_up.pending is None else itertools.chain([demo.catch_up.pending], events)
        # The market holds still until our client has subscribed, and waits for it rather
        # than dropping frames: the live part loses nothing either.
        demo.fake = FakeFastConnect(seed=seed, speed=speed, sim=sim, events=rest, hold=True, backpressure=True)
        demo.clock = SimClock(the_plan.start_at, speed, demo.fake.sim_now,
                              end=datetime.combine(the_plan.date, SESSION_CLOSE, VN_TZ))
        fake_sock = listen("127.0.0.1", 0)
        fake_url = f"http://127.0.0.1:{fake_sock.getsockname()[1]}/"
        fake, fake_task = await _start(demo.fake.app, fake_sock, "fake FastConnect", ws_ping_interval=None)
        servers.append(fake)
        live = msgspec.structs.replace(settings, ssi_url=fake_url, ssi_stream_url=fake_url,
                                       ssi_consumer_id="demo", ssi_consumer_secret="demo")
        demo.tasks += [
            fake_task,
            asyncio.create_task(run_live(redis, live, demo.stop, clock=demo.clock.now, sleep=demo.clock.sleep)),
        ]
        demo.watch = asyncio.create_task(_announce_caught_up(redis, demo, started))
        log.info("event=demo_ready url=%s simulated_date=%s simulated_from=%s reason=%s catch_up_frames=%d "
                 "catch_up_s=%.2f speed=%s", demo.api_url, the_plan.date, the_plan.start, the_plan.reason,
                 demo.catch_up.frames, demo.catch_up.seconds, speed)
        yield demo
    finally:
        demo.stop.set()
        if demo.watch is not None:
            demo.watch.cancel()
        for server in servers:
            server.should_exit = True
        if demo.tasks:
            await asyncio.wait(demo.tasks, timeout=15)
        for task in demo.tasks:
            task.cancel()
        await asyncio.gather(*demo.tasks, *([demo.watch] if demo.watch else []), return_exceptions=True)
        with contextlib.suppress(Exception):  # a store that is gone has nothing to clean
            await redis.hdel(K.FEED_STATUS, *SIMULATION_FIELDS)


async def run_demo(settings: Settings, host: str = "127.0.0.1", port: int = 8000, speed: float = 1.0,
                   seed: int = 1, clock: Callable[[], datetime] = now_vn, universe: str = "vn30") -> None:
    """Run everything until Ctrl-C (or a part fails)."""
    sock = listen(host, port)  # before anything starts: a busy port is all there is to say
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_redis(settings, embedded=True) as redis, \
                start_demo(settings, redis, sock, speed=speed, seed=seed, clock=clock, stop=stop,
                           universe=universe) as demo:
            stopped = asyncio.ensure_future(stop.wait())
            try:
                done, _ = await asyncio.wait([*demo.tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            for task in done:
                if task is not stopped and not task.cancelled() and task.exception():
                    raise task.exception()
    finally:
        sock.close()
    log.info("event=demo_stop")
