"""FakeFastConnect: a fake SSI FastConnect Data server (REST + classic SignalR 2.x) fed by the simulator.

It speaks the wire protocol of docs/ssi.md (AccessToken, REST, SignalR, channels) closely enough for SSI's
official Python SDK and for raw SignalR clients: AccessToken, Bearer-checked REST,
negotiate/connect/start/ping/abort/reconnect, the init frame, keep-alives, hub
invocation results and ``Broadcast`` frames carrying the simulator's strings unchanged.
This module runs the market pump; the routes live in rest, signalr and faults.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import zlib
from collections import OrderedDict
from contextlib import asynccontextmanager, suppress
from datetime import date, datetime, time
from typing import Any, AsyncIterator, Callable, Iterator

from litestar import Litestar
from litestar.datastructures import State

from app import redact
from app.sim.fake.faults import FaultSwitches, admin_router
from app.sim.fake.rest import REST_HANDLERS
from app.sim.fake.signalr import SIGNALR_HANDLERS, broadcast_text
from app.sim.fake.state import Connection, Session
from app.sim.fake.tokens import TokenIssuer
from app.sim.fake.stats import FakeStats
from app.sim.market import MarketSimulator
from app.sim.timetable import VN_TZ
from app.sim.wire import ALL_CHANNELS, SimEvent

__all__ = ["FakeFastConnect", "create_fake_app", "serve_fake"]

log = logging.getLogger("stock_tracker.fake_ssi")

_YIELD_EVERY = 32  # frames published between forced yields to the event loop


class FakeFastConnect(FaultSwitches):
    """A fake FastConnect Data server: ``app`` is the Litestar ASGI app to serve.

    One simulated market feeds every connection. ``speed`` is simulated seconds per real
    second (0: flat out, but only while someone is connected); the lunch break stays
    quiet as on the real feed, the overnight gap is skipped. ``queue_max`` bounds each
    connection's backlog of market frames: beyond it that connection loses frames, or
    with ``backpressure`` the market waits for it instead.

    ``universe`` picks the simulated stocks (see MarketSimulator); the REST answers list them.
    ``sim`` and ``events`` continue a simulator run someone else started (the demo plays
    the start of the day itself); ``hold`` keeps the market still until a connection has
    subscribed, so a listener misses nothing of it.
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        start: date | None = None,
        speed: float = 1.0,
        activity: float = 1.0,
        futures_naming: str = "legacy",
        open_at: time | None = None,
        consumer_id: str = "demo",
        consumer_secret: str = "demo",
        token_ttl_s: float = 8 * 3600,
        keepalive_s: float = 10.0,
        switch_mode: str = "union",
        queue_max: int = 20_000,
        sim: MarketSimulator | None = None,
        events: Iterator[SimEvent] | None = None,
        hold: bool = False,
        backpressure: bool = False,
        universe: str = "vn30",
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as possible)")
        if keepalive_s <= 0 or token_ttl_s <= 0:
            raise ValueError("keepalive_s and token_ttl_s must be positive")
        if switch_mode not in ("union", "replace"):
            raise ValueError("switch_mode must be 'union' or 'replace'")
        if queue_max < _YIELD_EVERY:
            raise ValueError(f"queue_max must be >= {_YIELD_EVERY}")
        self.sim = sim or MarketSimulator(
            seed=seed, start=start, days=None, channels=ALL_CHANNELS, futures_naming=futures_naming,
            activity=activity, open_at=open_at, universe=universe,
        )
        self._events = events
        self.hold = hold
        self.backpressure = backpressure
        self.seed = seed
        self.speed = float(speed)
        self.consumer_id = consumer_id
        self.consumer_secret = consumer_secret
        self.token_ttl_s = float(token_ttl_s)
        self.keepalive_s = float(keepalive_s)
        self.switch_mode = switch_mode
        self.queue_max = queue_max
        self.stats = FakeStats()
        self.tokens = TokenIssuer(consumer_id, self.token_ttl_s, self.stats)
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # by ConnectionToken
        self._conns: dict[str, Connection] = {}  # by ConnectionId
        self._init_faults()
        self._seq = 0
        self._cursor_id = f"{zlib.crc32(f'fake-ssi/{seed}'.encode()):08X}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._kick: asyncio.Event | None = None  # wakes the market pump
        self._unstall: asyncio.Event | None = None  # wakes senders when a stall changes
        self._drained: asyncio.Event | None = None  # a sender took frames off its queue
        self._anchor: tuple[float, float] | None = None  # (sim epoch s, loop time)
        self._paced: tuple[float, float] | None = None  # the last anchor, kept past the day's end
        self.sim_time: str | None = None
        self.app = self._build_app()

    # ---- fault switches (safe to call from any thread) -----------------------

    def token_ok(self, token: str | None) -> bool:
        """A token this server issued, unexpired, while tokens are not being rejected."""
        if self._reject_tokens or not token:
            return False
        return self.tokens.valid(token)

    def wake_market(self) -> None:
        """A socket opened or subscribed: a held or idle market pump looks again."""
        if self._kick is not None:
            self._kick.set()

    def note_drained(self) -> None:
        """A sender took frames off its queue (or went away): backpressure looks again."""
        if self._drained is not None:
            self._drained.set()


    @asynccontextmanager
    async def _lifespan(self, _app: Litestar) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._kick = asyncio.Event()
        self._unstall = asyncio.Event()
        self._drained = asyncio.Event()
        self._anchor = self._paced = None
        pump = asyncio.create_task(self._pump(), name="fake-ssi-market")
        log.info("event=fake_ssi_started seed=%d start=%s speed=%s switch_mode=%s keepalive_s=%s",
                 self.seed, self.sim.start.isoformat(), self.speed, self.switch_mode, self.keepalive_s)
        try:
            yield
        finally:
            pump.cancel()
            with suppress(asyncio.CancelledError):
                await pump
            for conn in list(self._conns.values()):
                conn.end(1001, "server shutting down")
            log.info("event=fake_ssi_stopped frames_generated=%d frames_sent=%d",
                     self.stats.frames_generated, self.stats.frames_sent)

    async def _pump(self) -> None:
        published = 0
        events = self._events if self._events is not None else self.sim.events()
        try:
            # With open_at the simulator first replays the morning silently: keep that off the loop.
            first = await asyncio.to_thread(next, events, None)
            if self.hold:
                await self._wait(lambda: any(c.session.sub for c in self._conns.values()))
            for ev in itertools.chain([] if first is None else [first], events):
                if ev.frame is None:
                    log.info("event=session_close date=%s", ev.at.date().isoformat())
                    self._anchor = None  # skip the overnight gap
                    continue
                if self._burst <= 0:
                    await self._pace(ev)
                if self._burst > 0:
                    self._burst -= 1
                    if self._burst == 0:
                        self._anchor = None  # carry on paced from wherever the burst left the market
                        log.info("event=burst_done sim_time=%s", ev.at.time().isoformat())
                if self.backpressure and not self._room():
                    await self._wait(self._room)
                self._publish(ev)
                published += 1
                if published % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event=market_failed")

    async def _wait(self, ready: Callable[[], bool]) -> None:
        """Until ``ready()``, rechecked whenever a socket opens, subscribes or drains."""
        kick, drained = self._kick, self._drained
        assert kick is not None and drained is not None
        while not ready():
            kick.clear()
            drained.clear()
            waits = [asyncio.ensure_future(kick.wait()), asyncio.ensure_future(drained.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    def _room(self) -> bool:
        return all(c.queued < self.queue_max for c in self._conns.values())

    def sim_now(self) -> datetime | None:
        """The simulated time at the pace of the market (None before it was paced): it runs
        on past the day's last frame, when pacing stops until the next day's first."""
        if self._paced is None or self._loop is None or self.speed == 0:
            return None
        sim0, real0 = self._paced
        return datetime.fromtimestamp(sim0 + (self._loop.time() - real0) * self.speed, VN_TZ)

    async def _pace(self, ev: SimEvent) -> None:
        loop = asyncio.get_running_loop()
        kick = self._kick
        assert kick is not None
        if self.speed == 0:
            # Flat out only matters to listeners: idle until one connects (or a burst).
            while not self._conns and self._burst <= 0:
                kick.clear()
                await kick.wait()
            return
        at = ev.at.timestamp()
        if self._anchor is None:
            self._anchor = self._paced = (at, loop.time())
        sim0, real0 = self._anchor
        while self._burst <= 0:
            delay = real0 + (at - sim0) / self.speed - loop.time()
            if delay <= 0:
                return
            kick.clear()
            try:
                await asyncio.wait_for(kick.wait(), delay)
            except asyncio.TimeoutError:
                return

    def _publish(self, ev: SimEvent) -> None:
        self._seq += 1
        seq = self._seq
        self.stats.frames_generated += 1
        self.sim_time = ev.at.isoformat()
        if not self._conns:
            return
        data_type, symbol = ev.data_type, ev.symbol.upper()
        invocation: str | None = None
        for conn in self._conns.values():
            targets = conn.session.sub.get(data_type, False)
            if targets is False or (targets is not None and symbol not in targets):
                continue
            if conn.queued >= self.queue_max:
                conn.dropped += 1
                self.stats.frames_dropped += 1
                if not conn.overflowing:
                    conn.overflowing = True
                    log.warning("event=queue_overflow conn=%s queued=%d", conn.session.id, conn.queued)
                continue
            if invocation is None:
                invocation = broadcast_text(ev.frame)
            conn.out.append((seq, invocation, ev.frame))
            conn.queued += 1
            conn.wake.set()

    # ---- per-connection sender and receiver ----------------------------------------

    def _build_app(self) -> Litestar:
        return Litestar(
            route_handlers=[*REST_HANDLERS, *SIGNALR_HANDLERS, admin_router()],
            lifespan=[self._lifespan],
            state=State({"fake": self}),
            openapi_config=None,
            logging_config=None,
        )


def create_fake_app(**kwargs: Any) -> Litestar:
    """The Litestar app of a new :class:`FakeFastConnect`."""
    return FakeFastConnect(**kwargs).app


class _DenialNoise(logging.Filter):
    # uvicorn logs an ERROR for every WebSocket refused with a proper HTTP status (401/400).
    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()


_denial_noise = _DenialNoise()


async def serve_fake(host: str, port: int, **kwargs: Any) -> None:
    """Serve a :class:`FakeFastConnect` with uvicorn until cancelled (or signalled)."""
    import uvicorn

    fake = FakeFastConnect(**kwargs)
    logging.getLogger("uvicorn.error").addFilter(_denial_noise)
    # uvicorn's request lines carry connectionToken= (and Bearer headers at DEBUG): masked
    # here too, for a fake run without logs.setup's handler.
    redact.guard_loggers()
    server = uvicorn.Server(uvicorn.Config(
        fake.app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
        ws_ping_interval=None,  # SignalR liveness is the `{}` keep-alive; a stall must be silent
        ws="websockets-sansio",  # the sent counts rely on how it writes (see _sender)
        ws_per_message_deflate=False, timeout_graceful_shutdown=3,
    ))
    log.info("event=fake_ssi_listen url=http://%s:%d/ consumer=%s", host, port, fake.consumer_id)
    task = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        with suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        raise
