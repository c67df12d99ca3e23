"""WebSocket fan-out on one API node.

Projectors publish a change notice after each applied batch; the node's one
supervised pub/sub reader turns notices into per-channel pushes, throttled on the
trailing edge: the first notice after a quiet spell pushes at once, later ones
within the interval collapse into one push at its end, which reads the state as it
then stands. A push reads the state once, encodes it once and hands the same bytes
to every client on the channel. Each client has a one-slot mailbox (only the latest
state matters) drained by its own writer, so a slow client never delays the others;
one that stays blocked is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis

from app import keys as K
from app.api.delivery import Close, Send, Writer
from app.api.notices import Subscription
from app.contracts import FeedStatus, Notice
from app.projections.read import current_session
from app.store import UNAVAILABLE, detect
from app.projections.hashes import from_hash
from app.projections.kinds import channel_kinds

log = logging.getLogger("stock_tracker.hub")

CHANNELS = ("market", "foreign", "index")
# Which projection changes each channel shows (the registry of kinds says).
_KINDS = {channel: channel_kinds(channel) for channel in CHANNELS}
FOLLOW_S = 1.0  # how often the node checks which session is current (its notices' channel)
_JSON = msgspec.json.Encoder()


class StatusMessage(msgspec.Struct, tag_field="type", tag="status", omit_defaults=True):
    """``{"type":"status","connected":bool}``: whether live data is reaching the client.

    When it is not, ``reason`` says which link is down: ``feed`` (SSI) or ``store``
    (this node lost Redis; full state follows once it is back).
    """

    connected: bool
    reason: str | None = None


class Client(Writer):
    """One WebSocket of a seed channel: a one-slot state mailbox behind the control
    messages (app.api.delivery)."""

    def __init__(self, send: Send, close: Close) -> None:
        super().__init__(send, close)
        self._state: str | None = None
        self._offered: str | None = None

    def offer(self, payload: str) -> None:
        """Replace the waiting state: a client only ever needs the newest one."""
        if payload is self._offered:
            return  # the very render it already has (its first state, pushed to all as well)
        self._offered = payload
        self._state = payload
        self._ready.set()

    def _take(self) -> tuple[str] | None:
        payload, self._state = self._state, None
        return None if payload is None else (payload,)


@dataclass
class Metrics:
    """Node-local counters for /metrics (``ws``: the /ws subscription sockets)."""

    # Connections holding a per-address slot, by channel (app.api.ws.holding_slot): from
    # admission until the connection is gone, a dropped client's last second included.
    connections: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*CHANNELS, "ws"), 0))
    pushes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0))
    drops: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*CHANNELS, "ws"), 0))
    pubsub_reconnects: int = 0


class Hub:
    """Per-channel client sets, the throttle, and the supervised pub/sub reader."""

    def __init__(
        self,
        redis: Redis,
        render: Callable[[str], Awaitable[str]],
        throttle_ms: int = 100,
        send_timeout: float = 5.0,
        heartbeat_s: float = 30.0,
        live=None,
    ) -> None:
        self.heartbeat_s = heartbeat_s
        self.redis = redis
        self.render = render  # channel -> current state as JSON text
        self.throttle = throttle_ms / 1000
        self.send_timeout = send_timeout
        self.clients: dict[str, set] = {c: set() for c in (*CHANNELS, "ws")}
        self.live = live  # the /ws subscriptions (app.api.live), fed the same notices
        if live is not None:
            live.trusted = lambda: self.pubsub_up
        self.metrics = Metrics()
        self.feed_connected: bool | None = None
        self.pubsub_up = False
        self._announced: StatusMessage | None = None  # the last status sent to clients
        self._ever_up = False
        self.departed = 0  # clients gone since start (their connections await collection)
        self._last_push = dict.fromkeys(CHANNELS, 0.0)
        self._scheduled: dict[str, asyncio.Task] = {}
        # The last rendered state per channel, valid until a notice touches it.
        self._cache: dict[str, str] = {}
        self._dirty = dict.fromkeys(CHANNELS, True)
        self._rendering: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._reader: asyncio.Task | None = None
        self._failing: set[str] = set()  # channels whose last push could not be rendered
        self._follow_waiters: list[asyncio.Future] = []
        self._follow_now = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever())
        self._tasks.add(asyncio.create_task(self._heartbeat_forever()))

    async def _heartbeat_forever(self) -> None:
        """``ping`` bytes to every client, so idle connections stay visibly alive."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            self.broadcast(b"ping")

    async def stop(self) -> None:
        tasks = [t for t in (self._reader, *self._scheduled.values(), *self._tasks) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.live is not None:
            await self.live.stop()

    # -- clients -------------------------------------------------------------------

    async def serve(self, channel: str, client: Client) -> None:
        """Register a client, give it the current state at once, and run its writer."""
        # Before joining: the full state a change of session sends goes to the others.
        await self.followed()
        await self._run_writer(channel, client, self.send_timeout, whole_state=True)

    async def serve_ws(self, conn: Writer, send_timeout: float) -> None:
        """Run a /ws connection's writer; it gets status and heartbeats like the others."""
        await self._run_writer("ws", conn, send_timeout)

    async def _run_writer(self, channel: str, writer: Writer, send_timeout: float, whole_state: bool = False) -> None:
        # Registered first: a push rendered meanwhile reaches it too.
        self.clients[channel].add(writer)
        try:
            if whole_state:  # a seed channel's client gets the whole state at once
                try:
                    writer.offer(await self.current(channel))
                except UNAVAILABLE as exc:
                    # Redis is away: the retried push delivers the state when it is back.
                    log.warning("event=initial_state_failed channel=%s error=%s", channel, type(exc).__name__)
                    self.notify(channel)
            if self._announced is not None:
                writer.offer_control(_JSON.encode(self._announced).decode())
            await writer.run(send_timeout)
            if writer.dropped:
                self.metrics.drops[channel] += 1
        finally:
            self.clients[channel].discard(writer)
            self.departed += 1

    async def current(self, channel: str) -> str:
        """The channel's state as JSON text: cached until a notice changes it, and
        rendered once however many clients or requests ask at the same moment."""
        while True:
            # Without pub/sub, changes go unseen: the cache is only current while it is up.
            if not self._dirty[channel] and self.pubsub_up and channel in self._cache:
                return self._cache[channel]
            pending = self._rendering.get(channel)
            if pending is None:
                pending = self._rendering[channel] = asyncio.ensure_future(self._render(channel))
                return await asyncio.shield(pending)
            # A render that started before the latest notice may be stale: wait, re-check.
            await asyncio.shield(pending)

    async def _render(self, channel: str) -> str:
        try:
            self._dirty[channel] = False  # a notice during the render sets it again
            payload = await self.render(channel)
            self._cache[channel] = payload
            return payload
        except BaseException:
            self._dirty[channel] = True
            raise
        finally:
            self._rendering.pop(channel, None)

    # -- pushes ----------------------------------------------------------------------

    def notify(self, channel: str) -> None:
        """Trailing-edge throttle: push now if quiet, else once at the interval's end."""
        self._dirty[channel] = True
        if channel in self._scheduled:
            return
        delay = max(0.0, self._last_push[channel] + self.throttle - time.monotonic())
        self._scheduled[channel] = asyncio.create_task(self._push_after(channel, delay))

    async def _push_after(self, channel: str, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
        finally:
            # Notices arriving while we render schedule the next push.
            self._scheduled.pop(channel, None)
        self._last_push[channel] = time.monotonic()
        if not self.clients[channel] or not self.pubsub_up:
            # Without pub/sub the full state follows once it is back (status first).
            return
        try:
            payload = await self.current(channel)
        except UNAVAILABLE as exc:
            if channel not in self._failing:  # once per outage
                log.warning("event=push_failed channel=%s error=%s", channel, type(exc).__name__)
                self._failing.add(channel)
            self._retry_later(channel)
            return
        self._failing.discard(channel)
        self.metrics.pushes[channel] += 1
        for client in list(self.clients[channel]):
            client.offer(payload)

    def _retry_later(self, channel: str, delay: float = 0.5) -> None:
        async def retry() -> None:
            await asyncio.sleep(delay)
            self.notify(channel)

        task = asyncio.create_task(retry())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def broadcast(self, payload: str | bytes) -> None:
        """The same message to every client of every channel (status, heartbeat)."""
        for clients in self.clients.values():
            for client in list(clients):
                client.offer_control(payload)

    def on_notice(self, notice: Notice) -> None:
        if self.live is not None:
            self.live.on_notice(notice)
        kinds = set(notice.kinds)
        for channel, wanted in _KINDS.items():
            if kinds & wanted:
                self.notify(channel)

    def resync(self) -> None:
        """Full state to everyone: after pub/sub was away, notices may have been lost."""
        if self.live is not None:
            self.live.resync()
        for channel in CHANNELS:
            self.notify(channel)

    # -- the supervised pub/sub reader ---------------------------------------------------

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            sub: Subscription | None = None
            try:
                await detect(self.redis)
                sub = Subscription(self.redis)
                await sub.open(await current_session(self.redis))
                if not self.pubsub_up:
                    self.pubsub_up = True
                    log.info("event=pubsub_up channel=%s", sub.channel)
                    await self._load_feed_status()
                    # Status first, then full state: notices may have been lost meanwhile.
                    self._announce()
                    self.resync()
                backoff = 0.1
                await self._read(sub)
            except asyncio.CancelledError:
                if sub is not None:
                    await _quietly(sub.close())
                raise
            except UNAVAILABLE as exc:
                if self.pubsub_up:
                    log.warning("event=pubsub_down error=%s", type(exc).__name__)
                    self.pubsub_up = False
                    self._announce()
                self.metrics.pubsub_reconnects += 1
                if sub is not None:
                    await _quietly(sub.close())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _read(self, sub: Subscription) -> None:
        """Dispatch messages; every FOLLOW_S (or when a client arrives), move to a new
        current session (then full state to all)."""
        next_check = time.monotonic() + FOLLOW_S
        while True:
            if not self._follow_now.is_set():
                message = await sub.get(timeout=max(0.0, next_check - time.monotonic()), wake=self._follow_now)
                if message is not None:
                    self._dispatch(message, sub)
            if time.monotonic() >= next_check or self._follow_now.is_set():
                self._follow_now.clear()
                waiters, self._follow_waiters = self._follow_waiters, []
                next_check = time.monotonic() + FOLLOW_S
                if await sub.follow(await current_session(self.redis)):
                    log.info("event=pubsub_follow channel=%s", sub.channel)
                    self.resync()
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    async def followed(self, timeout: float = 1.0) -> None:
        """Wait (briefly) until the reader has checked which session is current: a client
        arriving just after a new session began then gets its notices from the start."""
        if not self.pubsub_up:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._follow_waiters.append(waiter)
        self._follow_now.set()
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            pass

    def _dispatch(self, message: dict, sub: Subscription) -> None:
        channel = message.get("channel")
        data = message.get("data")
        try:
            if sub.is_notice(channel):
                self.on_notice(msgspec.json.decode(data, type=Notice))
            elif channel == K.FEED_STATUS_CHANNEL:
                self._set_feed(msgspec.json.decode(data, type=FeedStatus).connected)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("event=bad_notice channel=%s error=%s", channel, exc)

    def _set_feed(self, connected: bool) -> None:
        self.feed_connected = connected
        self._announce()

    async def _load_feed_status(self) -> None:
        raw = await self.redis.hgetall(K.FEED_STATUS)
        if raw:
            self.feed_connected = from_hash(raw, FeedStatus).connected

    def status(self) -> StatusMessage | None:
        """What clients are told; None while there is nothing to tell."""
        if not self.pubsub_up:
            # Before the first connection there was no data to lose: say nothing yet.
            return StatusMessage(False, "store") if self._announced is not None or self._ever_up else None
        if self.feed_connected is False:
            return StatusMessage(False, "feed")
        if self.feed_connected is None and self._announced is None:
            return None  # no feed status kept (a file or simulator ingest): nothing to report
        return StatusMessage(True)

    def _announce(self) -> None:
        """Tell every client the status when it changed."""
        if self.pubsub_up:
            self._ever_up = True
        status = self.status()
        if status is not None and status != self._announced:
            self._announced = status
            self.broadcast(_JSON.encode(status).decode())


async def _quietly(awaitable: Awaitable) -> None:
    try:
        await awaitable
    except Exception:
        pass
