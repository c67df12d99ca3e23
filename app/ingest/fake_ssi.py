"""A fake SSI FastConnect Data server (REST + classic SignalR 2.x) fed by the simulator.

It speaks the wire protocol of docs/ssi.md (AccessToken, REST, SignalR, channels) closely enough for SSI's
official Python SDK and for raw SignalR clients: AccessToken, Bearer-checked REST,
negotiate/connect/start/ping/abort/reconnect, the init frame, keep-alives, hub
invocation results and ``Broadcast`` frames carrying the simulator's strings unchanged.
Fault switches (drop, stall, token rejection and expiry, bursts) serve tests, both as
methods and as loopback-only ``/_fake/*`` HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import itertools
import json
import logging
import math
import secrets
import threading
import time as _time
import uuid
import zlib
from collections import OrderedDict, deque
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import orjson
from litestar import Litestar, Request, Response, WebSocket, get, post, route, websocket
from litestar.enums import HttpMethod, MediaType

from app.sim import ALL_CHANNELS, INDEX_IDS, VN_TZ, MarketSimulator, SimEvent

__all__ = ["FakeFastConnect", "FakeStats", "create_fake_app", "frames_digest", "serve_fake", "parse_channels"]

log = logging.getLogger("stock_tracker.fake_ssi")

HUB = "FcMarketDataV2Hub"
SIGNALR = "/v2.0/signalr"
MARKET = "/api/v2/Market"
KNOWN_CHANNELS = frozenset(ALL_CHANNELS | {"OL"})
_BROADCAST_HEAD = '{"H":"' + HUB + '","M":"Broadcast","A":['
_BATCH = 100  # invocations per data frame when a backlog has built up
_YIELD_EVERY = 32  # frames published between forced yields to the event loop
_MAX_SESSIONS = 10_000
_JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}
_DENIED = "Authorization has been denied for this request."
_INDEX_EXCHANGE = {"VNINDEX": "HOSE", "VN30": "HOSE", "HNXIndex": "HNX"}


def parse_channels(text: str) -> dict[str, frozenset[str] | None]:
    """``"X-QUOTE:ACB-VCB,MI:ALL"`` -> ``{"X-QUOTE": {"ACB", "VCB"}, "MI": None}`` (None = ALL).

    Channel names and targets are upper-cased; spaces around any part are ignored.
    """
    out: dict[str, frozenset[str] | None] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, targets = part.partition(":")
        name = name.strip().upper()
        if not sep or not name:
            raise ValueError(f"bad channel spec {part[:40]!r}: expected CHANNEL:TARGETS")
        if name not in KNOWN_CHANNELS:
            raise ValueError(f"unknown channel {name[:20]!r}")
        symbols = {t.strip().upper() for t in targets.split("-") if t.strip()}
        if not symbols:
            raise ValueError(f"channel {name} has no targets")
        if "ALL" in symbols or out.get(name, frozenset()) is None:
            out[name] = None
        else:
            out[name] = frozenset(symbols | (out.get(name) or frozenset()))
    if not out:
        raise ValueError("no channels")
    return out


def frames_digest(frames: Iterable[str | bytes] = (), into: hashlib.blake2b | None = None) -> hashlib.blake2b:
    """blake2b-128 over Broadcast strings in order, each followed by NUL (never inside a JSON text).

    Pass ``into`` to extend a running digest; ``.hexdigest()`` is what ``/_fake/stats`` shows.
    """
    h = hashlib.blake2b(digest_size=16) if into is None else into
    for frame in frames:
        h.update(frame.encode() if isinstance(frame, str) else frame)
        h.update(b"\0")
    return h


def _spec_text(sub: dict[str, frozenset[str] | None]) -> list[str]:
    return [f"{ch}:{'ALL' if t is None else '-'.join(sorted(t))}" for ch, t in sorted(sub.items())]


class _Sent:
    """Broadcast strings handed to one socket: how many, and their digest in order."""

    __slots__ = ("conn", "frames", "digest")

    def __init__(self, conn: str) -> None:
        self.conn = conn
        self.frames = 0
        self.digest = frames_digest()


@dataclass
class FakeStats:
    """Counters of one fake server (read them, don't write them)."""

    connections_open: int = 0
    connections_total: int = 0
    negotiations: int = 0
    tokens_issued: int = 0
    frames_generated: int = 0
    frames_sent: int = 0  # Broadcast invocations delivered, all connections
    frames_dropped: int = 0  # lost to full per-connection queues
    keepalives_sent: int = 0
    frames_sent_by_conn: dict[str, int] = field(default_factory=dict)
    # One entry per socket, in connection order: a reconnect transport reuses its id, so
    # only this list tells two sockets of one connection apart.
    sent_by_conn: list[_Sent] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "negotiations": self.negotiations,
            "tokens_issued": self.tokens_issued,
            "frames_generated": self.frames_generated,
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
            "keepalives_sent": self.keepalives_sent,
            "frames_sent_by_conn": dict(self.frames_sent_by_conn),
            "sent_by_conn": [{"conn": s.conn, "frames": s.frames, "digest": s.digest.hexdigest()}
                             for s in self.sent_by_conn],
        }


class _Session:
    """What negotiate hands out: survives its sockets so /reconnect keeps the subscription."""

    __slots__ = ("id", "token", "bearer", "protocol", "sub", "conn")

    def __init__(self, token: str, bearer: str, protocol: str) -> None:
        self.id = str(uuid.uuid4())
        self.token = token
        self.bearer = bearer
        self.protocol = protocol
        self.sub: dict[str, frozenset[str] | None] = {}
        self.conn: _Conn | None = None


class _Conn:
    """One open WebSocket: an ordered outbox (only market frames may be dropped)."""

    __slots__ = ("session", "socket", "out", "queued", "wake", "done", "close_mode", "last_send",
                 "overflowing", "dropped", "sent", "reconnect", "peer", "record")

    def __init__(self, session: _Session, socket: WebSocket, reconnect: bool) -> None:
        self.session = session
        self.socket = socket
        # Items are (seq, text, frame): seq > 0 for Broadcast invocations (frame: the string
        # they carry, for the digest), 0 for ready-made messages.
        self.out: deque[tuple[int, str, str | None]] = deque()
        self.queued = 0  # Broadcast items in ``out``
        self.wake = asyncio.Event()
        self.done = asyncio.Event()
        self.close_mode: tuple[int, str] | None = None  # None: client left; code 0: abrupt
        self.last_send = 0.0
        self.overflowing = False
        self.dropped = 0
        self.sent = 0
        self.reconnect = reconnect
        self.peer = ""
        self.record = _Sent(session.id)

    def push(self, text: str) -> None:
        self.out.append((0, text, None))
        self.wake.set()

    def end(self, code: int, reason: str) -> None:
        if not self.done.is_set():
            self.close_mode = (code, reason)
            self.done.set()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _json(content: Any, status: int = 200) -> Response:
    return Response(content=content, status_code=status, media_type=MediaType.JSON)


def _denied() -> Response:
    # ASP.NET Web API's stock 401 body; the SDK json-decodes every response.
    return _json({"Message": _DENIED}, 401)


def _envelope(data: list | None, total: int, status: str = "Success", message: str = "Success") -> Response:
    return _json({"data": data, "message": message, "status": status, "totalRecord": total})


def _params(request: Request) -> dict[str, str]:
    """Query params by lower-cased name, ``lookupRequest.`` prefix removed (ASP.NET binds both)."""
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        k = key.lower()
        if k.startswith("lookuprequest."):
            k = k[len("lookuprequest."):]
        out.setdefault(k, value)
    return out


def _page(params: dict[str, str]) -> tuple[int, int]:
    try:
        index = int(params.get("pageindex") or 1)
        size = int(params.get("pagesize") or 100)
    except ValueError:
        raise ValueError("pageIndex and pageSize must be integers") from None
    if index < 1 or size < 1:
        raise ValueError("pageIndex and pageSize must be positive")
    return index, size


def _protocol(raw: str | None) -> str:
    # ProtocolResolver: unparseable or too old -> 1.2, too new -> 2.0, else the client's own.
    try:
        v = float(raw or "")
    except ValueError:
        return "1.2"
    if v < 1.2:
        return "1.2"
    if v > 2.0:
        return "2.0"
    return raw.strip()  # type: ignore[union-attr]


def _hubs_ok(connection_data: str | None) -> bool:
    if not connection_data:
        return True
    try:
        hubs = json.loads(connection_data)
        return isinstance(hubs, list) and all(str(h.get("name", "")).lower() == HUB.lower() for h in hubs)
    except (ValueError, AttributeError):
        return False


def _is_loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class FakeFastConnect:
    """A fake FastConnect Data server: ``app`` is the Litestar ASGI app to serve.

    One simulated market feeds every connection. ``speed`` is simulated seconds per real
    second (0: flat out, but only while someone is connected); the lunch break stays
    quiet as on the real feed, the overnight gap is skipped. ``queue_max`` bounds each
    connection's backlog of market frames: beyond it that connection loses frames, or
    with ``backpressure`` the market waits for it instead.

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
            activity=activity, open_at=open_at,
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
        self._signing_key = secrets.token_bytes(32)
        self._tokens: dict[str, float] = {}  # access token -> exp (epoch seconds)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # by ConnectionToken
        self._conns: dict[str, _Conn] = {}  # by ConnectionId
        self._reject_tokens = False
        self._stall_until = 0.0
        self._burst = 0
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

    def drop(self) -> None:
        """Close every open socket abruptly (no close frame)."""
        self._call(self._drop)

    def stall(self, seconds: float) -> None:
        """Send nothing at all (keep-alives included) for ``seconds``; sockets stay open."""
        self._call(self._do_stall, float(seconds))

    def reject_tokens(self, on: bool = True) -> None:
        """While on, AccessToken fails and every Bearer check fails."""
        self._call(self._set_reject, bool(on))

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far and close the open sockets."""
        self._call(self._expire)

    def burst(self, frames: int) -> None:
        """Run the market flat out for ``frames`` frames, to every subscribed connection."""
        self._call(self._do_burst, int(frames))

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and loop.is_running() and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(fn, *args)
        else:
            fn(*args)

    def _drop(self) -> None:
        conns = list(self._conns.values())
        for conn in conns:
            conn.end(0, "dropped")
        log.warning("event=fault_drop sockets=%d", len(conns))

    def _do_stall(self, seconds: float) -> None:
        now = self._loop.time() if self._loop else _time.monotonic()
        self._stall_until = now + max(0.0, seconds)
        if self._unstall is not None:
            self._unstall.set()
        log.warning("event=fault_stall seconds=%.3f", seconds)

    def _set_reject(self, on: bool) -> None:
        self._reject_tokens = on
        log.warning("event=fault_reject_tokens on=%d", on)

    def _expire(self) -> None:
        n = len(self._tokens)
        self._tokens.clear()
        conns = list(self._conns.values())
        for conn in conns:
            conn.end(1008, "token expired")
        log.warning("event=fault_expire_tokens tokens=%d sockets=%d", n, len(conns))

    def _do_burst(self, frames: int) -> None:
        if frames <= 0:
            return
        self._burst += frames
        if self._kick is not None:
            self._kick.set()
        log.warning("event=fault_burst frames=%d", frames)

    # ---- tokens ----------------------------------------------------------------

    def _issue_token(self) -> str:
        wall = _time.time()
        now = int(wall)
        # Whole seconds as usual; sub-minute test TTLs keep their fraction (NumericDate allows it).
        exp: float = int(wall + self.token_ttl_s) if self.token_ttl_s >= 60 else round(wall + self.token_ttl_s, 3)
        claims = {"sub": self.consumer_id, "iss": "fake-fc-data", "jti": uuid.uuid4().hex,
                  "iat": now, "nbf": now, "exp": exp}
        # Some clients decode the payload as standard base64, some as base64url: keep it to
        # [A-Za-z0-9] so both read it (docs/ssi.md, AccessToken).
        for n in itertools.count():
            claims["n"] = n
            payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
            if payload.isalnum():
                break
        signing_input = f"{_JWT_HEADER}.{payload}"
        sig = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).hexdigest()
        token = f"{signing_input}.{sig}"
        if len(self._tokens) > 10_000:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > wall}
        self._tokens[token] = float(exp)
        self.stats.tokens_issued += 1
        return token

    def _token_ok(self, token: str | None) -> bool:
        if self._reject_tokens or not token:
            return False
        exp = self._tokens.get(token)
        return exp is not None and _time.time() < exp

    # ---- market pump -------------------------------------------------------------

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
                invocation = _BROADCAST_HEAD + orjson.dumps(ev.frame).decode() + "]}"
            conn.out.append((seq, invocation, ev.frame))
            conn.queued += 1
            conn.wake.set()

    # ---- per-connection sender and receiver ----------------------------------------

    def _cursor(self, seq: int) -> str:
        return f"d-{self._cursor_id}-B,{seq}|C,0|D,1"

    async def _wait_unstalled(self) -> None:
        loop = asyncio.get_running_loop()
        unstall = self._unstall
        assert unstall is not None
        while (left := self._stall_until - loop.time()) > 0:
            unstall.clear()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(unstall.wait(), left)

    async def _sender(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        send = conn.socket.send
        stats = self.stats
        conn_id = conn.session.id
        record = conn.record
        conn.last_send = loop.time()
        try:
            while True:
                await self._wait_unstalled()
                out = conn.out
                if out:
                    seq, text, frame = out.popleft()
                    if seq == 0:
                        await send({"type": "websocket.send", "text": text})
                    else:
                        parts, frames = [text], [frame]
                        while out and out[0][0] and len(parts) < _BATCH:
                            seq, text, frame = out.popleft()
                            parts.append(text)
                            frames.append(frame)
                        conn.queued -= len(parts)
                        conn.overflowing = False
                        if self._drained is not None:
                            self._drained.set()
                        message = '{"C":"' + self._cursor(seq) + '","M":[' + ",".join(parts) + "]}"
                        # uvicorn's sans-I/O protocol (serve_fake pins it) waits for flow control,
                        # then writes to the transport without suspending again: once send returns
                        # the frames are the peer's to receive (closing flushes them), and a
                        # cancelled send wrote nothing. So these counts are what was delivered.
                        await send({"type": "websocket.send", "text": message})
                        n = len(parts)
                        conn.sent += n
                        record.frames += n
                        record.digest.update(("\0".join(frames) + "\0").encode())  # frames_digest, one update a batch
                        stats.frames_sent += n
                        stats.frames_sent_by_conn[conn_id] = stats.frames_sent_by_conn.get(conn_id, 0) + n
                    conn.last_send = loop.time()
                    continue
                idle_left = conn.last_send + self.keepalive_s - loop.time()
                if idle_left <= 0:
                    await send({"type": "websocket.send", "text": "{}"})
                    stats.keepalives_sent += 1
                    conn.last_send = loop.time()
                    continue
                conn.wake.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.wake.wait(), idle_left)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away mid-send
            log.debug("event=send_failed conn=%s error=%s", conn_id, type(exc).__name__)
            conn.done.set()

    async def _receiver(self, conn: _Conn) -> None:
        try:
            while True:
                message = await conn.socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message["type"] != "websocket.receive":
                    continue
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                self._on_client_message(conn, text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("event=receive_failed conn=%s error=%s", conn.session.id, type(exc).__name__)
        finally:
            conn.done.set()

    def _on_client_message(self, conn: _Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            log.warning("event=client_bad_json conn=%s size=%d", conn.session.id, len(text))
            return
        if not isinstance(msg, dict) or msg.get("I") is None:
            log.warning("event=client_not_invocation conn=%s", conn.session.id)
            return
        rid = str(msg["I"])
        hub, method, args = msg.get("H"), msg.get("M"), msg.get("A")
        if not isinstance(hub, str) or hub.lower() != HUB.lower():
            return self._reply_error(conn, rid, f"'{str(hub)[:40]}' Hub could not be resolved.")
        if not isinstance(method, str) or method.lower() != "switchchannels":
            return self._reply_error(conn, rid, f"'{str(method)[:40]}' method could not be resolved on hub '{HUB}'.")
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], str):
            return self._reply_error(conn, rid, "SwitchChannels takes one string argument.")
        try:
            wanted = parse_channels(args[0])
        except ValueError as exc:
            return self._reply_error(conn, rid, str(exc))
        session = conn.session
        if self.switch_mode == "replace":
            sub = dict(wanted)
        else:
            sub = dict(session.sub)
            for ch, targets in wanted.items():
                have = sub.get(ch, frozenset())
                sub[ch] = None if targets is None or have is None else frozenset(have | targets)
        session.sub = sub
        conn.push(json.dumps({"I": rid}, separators=(",", ":")))
        if self._kick is not None:
            self._kick.set()  # a held market may start
        log.info("event=switch_channels conn=%s mode=%s channels=%s", session.id, self.switch_mode,
                 ",".join(_spec_text(sub))[:300])

    def _reply_error(self, conn: _Conn, rid: str, error: str) -> None:
        conn.push(json.dumps({"I": rid, "E": error}, separators=(",", ":")))
        log.warning("event=invocation_error conn=%s id=%s error=%s", conn.session.id, rid[:20], error.replace(" ", "_")[:120])

    async def _deny(self, socket: WebSocket, status: int, message: str) -> None:
        log.warning("event=ws_refused status=%d path=%s reason=%s", status, socket.url.path, message.replace(" ", "_"))
        if "websocket.http.response" in (socket.scope.get("extensions") or {}):
            await socket.receive()  # websocket.connect
            body = json.dumps({"Message": message}).encode()
            await socket.send({"type": "websocket.http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            ]})
            await socket.send({"type": "websocket.http.response.body", "body": body})
        else:  # the server can only refuse with 403
            await socket.close(code=1008, reason=message[:120])

    async def _serve_socket(self, socket: WebSocket, reconnect: bool) -> None:
        q = socket.query_params
        session = self._sessions.get(q.get("connectionToken") or "")
        bearer = _bearer(socket.headers) or (session.bearer if session else None)
        if not self._token_ok(bearer):
            return await self._deny(socket, 401, _DENIED)
        if (q.get("transport") or "").lower() != "websockets":
            return await self._deny(socket, 400, "Only the webSockets transport is supported.")
        if session is None:
            return await self._deny(socket, 400, "The connection token is not recognized.")
        if not _hubs_ok(q.get("connectionData")):
            return await self._deny(socket, 400, "A hub in connectionData could not be resolved.")
        await socket.accept()
        session.bearer = bearer  # type: ignore[assignment]
        conn = _Conn(session, socket, reconnect)
        conn.peer = f"{socket.client.host}:{socket.client.port}" if socket.client else "?"
        old = session.conn
        if old is not None:
            old.end(1000, "replaced by a new transport connection")
        if not reconnect:
            session.sub = {}
            conn.push(json.dumps({"C": self._cursor(self._seq), "S": 1, "M": []}, separators=(",", ":")))
        session.conn = conn
        self._conns[session.id] = conn
        self.stats.connections_open = len(self._conns)
        self.stats.connections_total += 1
        self.stats.frames_sent_by_conn.setdefault(session.id, 0)
        self.stats.sent_by_conn.append(conn.record)
        if self._kick is not None:
            self._kick.set()
        log.info("event=ws_connected conn=%s peer=%s reconnect=%d open=%d", session.id, conn.peer,
                 reconnect, len(self._conns))
        tasks = [asyncio.create_task(self._sender(conn)), asyncio.create_task(self._receiver(conn))]
        try:
            await conn.done.wait()
        finally:
            for task in tasks:
                task.cancel()
            # A send blocked on a full socket may not wind down promptly: don't wait on it.
            await asyncio.wait(tasks, timeout=1.0)
            log.info("event=ws_tasks_stopped conn=%s pending=%d", session.id, sum(not t.done() for t in tasks))
            if self._conns.get(session.id) is conn:
                del self._conns[session.id]
                if self._drained is not None:
                    self._drained.set()  # a market waiting on this socket's backlog goes on
            if session.conn is conn:
                session.conn = None
            self.stats.connections_open = len(self._conns)
        mode = conn.close_mode
        log.info("event=ws_closed conn=%s how=%s frames_sent=%d dropped=%d open=%d", session.id,
                 "client" if mode is None else ("abrupt" if mode[0] == 0 else f"close_{mode[0]}"),
                 conn.sent, conn.dropped, len(self._conns))
        if mode is not None and mode[0]:
            with suppress(Exception):
                await socket.close(code=mode[0], reason=mode[1])
        # With mode[0] == 0 the handler returns without a close frame: uvicorn then drops
        # the TCP connection, which is what an abrupt network failure looks like.

    # ---- the Litestar app ----------------------------------------------------------

    def _build_app(self) -> Litestar:
        fake = self

        def session_for(request: Request) -> _Session | None:
            return fake._sessions.get(request.query_params.get("connectionToken") or "")

        def authorized(request: Request, session: _Session | None = None) -> bool:
            token = _bearer(request.headers) or (session.bearer if session else None)
            return fake._token_ok(token)

        @post(MARKET + "/AccessToken", status_code=200)
        async def access_token(request: Request) -> Response:
            try:
                body = json.loads(await request.body() or b"null")
            except ValueError:
                body = None
            fields = {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}
            cid, secret = str(fields.get("consumerid") or ""), str(fields.get("consumersecret") or "")
            good = (hmac.compare_digest(cid.encode(), fake.consumer_id.encode())
                    and hmac.compare_digest(secret.encode(), fake.consumer_secret.encode()))
            if fake._reject_tokens or not good:
                log.warning("event=token_refused consumer=%s reason=%s", cid[:40] or "-",
                            "rejecting" if fake._reject_tokens else "bad_credentials")
                # The SDK splats the body into Response(status, message, data): these three keys only.
                return _json({"message": "The connection is invalid", "status": 400, "data": None})
            token = fake._issue_token()
            log.info("event=token_issued consumer=%s ttl_s=%d issued=%d", cid[:40], fake.token_ttl_s,
                     fake.stats.tokens_issued)
            return _json({"message": "Success", "status": 200, "data": {"accessToken": token}})

        @get(MARKET + "/{endpoint:str}")
        async def market(request: Request) -> Response:
            endpoint = str(request.path_params["endpoint"])
            handler = rest.get(endpoint.lower())
            if handler is None:
                return _json({"Message": f"No HTTP resource was found for Market/{endpoint[:40]}."}, 404)
            if not authorized(request):
                log.warning("event=rest_unauthorized endpoint=%s", endpoint[:40])
                return _denied()
            params = _params(request)
            try:
                return handler(params)
            except ValueError as exc:
                return _envelope(None, 0, status="Error", message=str(exc))

        def index_components(params: dict[str, str]) -> Response:
            index, size = _page(params)
            code = (params.get("indexcode") or "").strip()
            if code and code.upper() != "VN30":
                return _envelope([], 0)
            symbols = fake.sim.symbols
            page = symbols[(index - 1) * size: index * size]
            return _envelope([{
                "IndexCode": "VN30",
                "IndexName": "VN30",
                "Exchange": "HOSE",
                "TotalSymbolNo": str(len(symbols)),
                "IndexComponent": [{"Isin": s, "StockSymbol": s} for s in page],
            }], 1)

        def securities(params: dict[str, str]) -> Response:
            index, size = _page(params)
            market_id = (params.get("market") or "").strip().upper()
            rows = [{"Market": "HOSE", "Symbol": s, "StockName": s, "StockEnName": s} for s in fake.sim.symbols]
            rows += [{"Market": "DER", "Symbol": f, "StockName": f"Hợp đồng tương lai chỉ số VN30 {f}",
                      "StockEnName": f"VN30 index futures {f}"} for f in fake.sim.futures]
            if market_id:
                rows = [r for r in rows if r["Market"] == market_id]
            return _envelope(rows[(index - 1) * size: index * size], len(rows))

        def index_list(params: dict[str, str]) -> Response:
            index, size = _page(params)
            exchange = (params.get("exchange") or "").strip().upper()
            rows = [{"IndexCode": i, "IndexName": i, "Exchange": _INDEX_EXCHANGE.get(i, "HOSE")} for i in INDEX_IDS]
            if exchange:
                rows = [r for r in rows if r["Exchange"] == exchange]
            return _envelope(rows[(index - 1) * size: index * size], len(rows))

        rest: dict[str, Callable[[dict[str, str]], Response]] = {
            "indexcomponents": index_components,
            "securities": securities,
            "indexlist": index_list,
        }

        @route(SIGNALR + "/negotiate", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
        async def negotiate(request: Request) -> Response:
            bearer = _bearer(request.headers)
            if not fake._token_ok(bearer):
                log.warning("event=negotiate_unauthorized")
                return _denied()
            if not _hubs_ok(request.query_params.get("connectionData")):
                return _json({"Message": "A hub in connectionData could not be resolved."}, 400)
            protocol = _protocol(request.query_params.get("clientProtocol"))
            # SignalR's connection tokens are protected blobs full of '+', '/' and '=': keep
            # them URL-unsafe so clients that forget to encode them fail here too.
            while True:
                token = base64.b64encode(secrets.token_bytes(6) + uuid.uuid4().bytes + secrets.token_bytes(8)).decode()
                if "+" in token or "/" in token:
                    break
            session = _Session(token, bearer, protocol)  # type: ignore[arg-type]
            fake._sessions[token] = session
            while len(fake._sessions) > _MAX_SESSIONS:
                oldest = next(iter(fake._sessions))
                if fake._sessions[oldest].conn is not None:
                    fake._sessions.move_to_end(oldest)
                    break
                del fake._sessions[oldest]
            fake.stats.negotiations += 1
            log.info("event=negotiate conn=%s method=%s protocol=%s", session.id, request.method, protocol)
            return _json({
                "Url": SIGNALR,
                "ConnectionToken": token,
                "ConnectionId": session.id,
                "KeepAliveTimeout": 2 * fake.keepalive_s,
                "DisconnectTimeout": 3 * fake.keepalive_s,
                "ConnectionTimeout": 110.0,
                "TryWebSockets": True,
                "ProtocolVersion": protocol,
                "TransportConnectTimeout": 5.0,
                "LongPollDelay": 0.0,
            })

        @route(SIGNALR + "/start", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
        async def start(request: Request) -> Response:
            session = session_for(request)
            if not authorized(request, session):
                return _denied()
            if session is None:
                return _json({"Message": "The connection token is not recognized."}, 400)
            log.info("event=start conn=%s", session.id)
            return _json({"Response": "started"})

        @route(SIGNALR + "/ping", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
        async def ping() -> Response:
            return _json({"Response": "pong"})

        @route(SIGNALR + "/abort", http_method=[HttpMethod.POST, HttpMethod.GET], status_code=200)
        async def abort(request: Request) -> Response:
            session = session_for(request)
            if not authorized(request, session):
                return _denied()
            if session is None:
                return _json({"Message": "The connection token is not recognized."}, 400)
            if session.conn is not None:
                session.conn.end(1000, "aborted")
            log.info("event=abort conn=%s", session.id)
            return Response(content=b"", status_code=200, media_type=MediaType.TEXT)

        @websocket(SIGNALR + "/connect")
        async def connect(socket: WebSocket) -> None:
            await fake._serve_socket(socket, reconnect=False)

        @websocket(SIGNALR + "/reconnect")
        async def reconnect(socket: WebSocket) -> None:
            await fake._serve_socket(socket, reconnect=True)

        # ---- admin (tests only, loopback only) ----

        def admin(request: Request) -> Response | None:
            host = request.client.host if request.client else None
            if not _is_loopback(host):
                log.warning("event=admin_refused peer=%s path=%s", host, request.url.path)
                return _json({"detail": "loopback only"}, 403)
            return None

        def number(request: Request, name: str, default: str | None = None) -> float:
            raw = request.query_params.get(name, default)
            try:
                value = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"query parameter {name!r} must be a non-negative number")
            return value

        @post("/_fake/drop", status_code=200)
        async def admin_drop(request: Request) -> Response:
            if (refused := admin(request)) is not None:
                return refused
            n = len(fake._conns)
            fake._drop()
            return _json({"ok": True, "dropped": n})

        @post("/_fake/stall", status_code=200)
        async def admin_stall(request: Request) -> Response:
            if (refused := admin(request)) is not None:
                return refused
            try:
                seconds = number(request, "seconds")
            except ValueError as exc:
                return _json({"ok": False, "detail": str(exc)}, 400)
            fake._do_stall(seconds)
            return _json({"ok": True, "seconds": seconds})

        @post("/_fake/reject-tokens", status_code=200)
        async def admin_reject(request: Request) -> Response:
            if (refused := admin(request)) is not None:
                return refused
            on = (request.query_params.get("on") or "1").lower() in ("1", "true", "on", "yes")
            fake._set_reject(on)
            return _json({"ok": True, "on": on})

        @post("/_fake/expire-tokens", status_code=200)
        async def admin_expire(request: Request) -> Response:
            if (refused := admin(request)) is not None:
                return refused
            n = len(fake._conns)
            fake._expire()
            return _json({"ok": True, "closed": n})

        @post("/_fake/burst", status_code=200)
        async def admin_burst(request: Request) -> Response:
            if (refused := admin(request)) is not None:
                return refused
            try:
                frames = int(number(request, "frames"))
            except ValueError as exc:
                return _json({"ok": False, "detail": str(exc)}, 400)
            fake._do_burst(frames)
            return _json({"ok": True, "frames": frames})

        @get("/_fake/stats")
        async def admin_stats(request: Request) -> Response:
            if (refused := admin(request)) is not None:
                return refused
            body = fake.stats.as_dict()
            body.update(
                stalled=fake._loop is not None and fake._stall_until > fake._loop.time(),
                rejecting_tokens=fake._reject_tokens,
                burst_pending=fake._burst,
                sim_time=fake.sim_time,
                subscriptions={cid: _spec_text(c.session.sub) for cid, c in fake._conns.items()},
            )
            return _json(body)

        return Litestar(
            route_handlers=[
                access_token, market, negotiate, start, ping, abort, connect, reconnect,
                admin_drop, admin_stall, admin_reject, admin_expire, admin_burst, admin_stats,
            ],
            lifespan=[self._lifespan],
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
