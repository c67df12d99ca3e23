"""The /ws socket: one connection, many subscriptions (docs/ws.md).

Each connection has its own writer. A subscription's waiting update is merged with the
next one (the newest row per symbol, candle per start, and every new trade), so a slow
client gets fewer, larger updates and never a stale row; its seq counts the messages it
was actually sent. Control messages (errors, acknowledgements, status, heartbeat) wait
in a short queue of their own.
"""

from __future__ import annotations

import asyncio
import logging

from litestar import WebSocket, websocket

from app.api import ws_protocol as P
from app.api.delivery import Close, Pump, Send, Writer, close_socket
from app.api.feeds import STYLE, render
from app.api.live import Live
from app.api.auth import admit_websocket
from app.store import UNAVAILABLE
from app.api.ws import CLOSE_TOO_BIG, client_may_leave, holding_slot, read_messages, too_big

log = logging.getLogger("stock_tracker.ws")
RETRY_S, RETRY_MAX_S = 0.25, 2.0  # a subscription made while Redis is away tries again

class Sub:
    """One subscription of one connection."""

    __slots__ = ("conn", "topic", "head", "style", "seq", "snapshot", "pending", "data", "session", "live")

    def __init__(self, conn: "Connection", topic: P.Topic, key: dict) -> None:
        self.conn = conn
        self.topic = topic
        self.head = P.encode_key(topic.channel, key)
        self.style = STYLE[topic.channel]
        self.seq = 0
        self.snapshot: P.Data | None = None
        self.pending: dict | None = None
        self.data: P.Data | None = None  # pending rendered, while it is one update as offered
        self.session = "null"
        self.live = True

    def set_snapshot(self, data: P.Data, session: str) -> None:
        """A snapshot replaces whatever was waiting; updates after it continue from it."""
        self.snapshot, self.session = data, session
        self.pending = self.data = None
        self.conn.wake(self)

    def offer(self, pieces: dict, data: P.Data, session: str) -> None:
        if self.pending is None:
            self.pending, self.data = pieces, data
        else:
            # The shared dict is never changed in place: other subscribers hold it too.
            self.pending, self.data = {**self.pending, **pieces}, None
        self.session = session
        self.conn.wake(self)

    def preview(self) -> str:
        """The data the waiting update would carry (for tests and debugging)."""
        return self.data.text if self.data is not None else render(self.style, self.pending or {})

    def take(self) -> list[str | bytes]:
        """The messages due now: a snapshot and/or one (merged) update."""
        out = []
        if self.snapshot is not None:
            self.seq = 0
            out.append(self._message("snapshot", self.snapshot))
            self.snapshot = None
        if self.pending is not None:
            # An update merged for this client alone is rendered (and compressed) for it.
            data = self.data if self.data is not None else P.Data(render(self.style, self.pending))
            self.pending = self.data = None
            self.seq += 1
            out.append(self._message("update", data))
        return out

    def _message(self, kind: str, data: P.Data) -> str | bytes:
        if self.conn.deflate:
            return P.deflated_message(self.head, kind, self.seq, self.session, data)
        return P.message(self.head, kind, self.seq, self.session, data.text)


class Connection(Writer):
    """A /ws client: its subscriptions, and its writer (app.api.delivery)."""

    control_limit = 64

    def __init__(self, send: Send, close: Close, deflate: bool = False) -> None:
        super().__init__(send, close)
        self.deflate = deflate  # ?compression=deflate: data messages as binary raw deflate
        self.subs: dict[P.Topic, Sub] = {}
        self._due: dict[Sub, None] = {}  # subscriptions with something to send, in order

    def wake(self, sub: Sub) -> None:
        self._due[sub] = None
        self._ready.set()

    def _take(self) -> list[str | bytes] | None:
        due = self._due
        if not due:
            return None
        sub = next(iter(due))
        del due[sub]
        return sub.take() if sub.live else []


class Session:
    """What one client asked for, handled one message at a time."""

    def __init__(self, conn: Connection, live: Live, settings, verifier) -> None:
        self.conn = conn
        self.live = live
        self.settings = settings
        self.verifier = verifier
        self._retries: set[asyncio.Task] = set()

    async def handle(self, text: str | bytes) -> None:
        try:
            op = P.parse(text, self.settings.ws_max_symbols, self.settings.tape_length)
            if op.op == "auth":
                # Already admitted: a later auth (say, a renewed JWT) is checked and answered.
                if self.verifier.required and not self.verifier.verify(op.token):
                    raise P.ProtocolError("unauthorized", "invalid token")
                self.conn.offer_control(P.reply("authenticated"))
            elif op.op == "subscribe":
                await self._subscribe(op)
            else:
                self._unsubscribe(op)
        except P.ProtocolError as exc:
            self.conn.offer_control(P.error(exc))

    async def _subscribe(self, op: P.Op) -> None:
        subs = self.conn.subs
        old = subs.get(op.topic)
        if old is None and len(subs) >= self.settings.ws_max_subs:
            raise P.ProtocolError(
                "too_many_subscriptions", f"at most {self.settings.ws_max_subs} subscriptions per connection", op.key
            )
        if old is not None:  # subscribing again: a fresh snapshot (how a client recovers a gap)
            self._drop(old)
        sub = subs[op.topic] = Sub(self.conn, op.topic, op.key)
        try:
            await self.live.subscribe(sub, op.topic)
        except UNAVAILABLE:
            # Redis is away: the client is told, the subscription stays (it counts, and can
            # be unsubscribed), and its snapshot follows once Redis answers again.
            self.conn.offer_control(P.error(P.ProtocolError(
                "unavailable", "the store is unavailable: the snapshot follows when it is back", op.key
            )))
            task = asyncio.create_task(self._subscribe_later(sub))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        except BaseException:
            subs.pop(op.topic, None)
            sub.live = False
            raise

    async def _subscribe_later(self, sub: Sub) -> None:
        delay = RETRY_S
        while True:
            await asyncio.sleep(delay)
            if not sub.live:  # unsubscribed, or subscribed again, meanwhile
                return
            try:
                await self.live.subscribe(sub, sub.topic)
            except UNAVAILABLE:
                delay = min(2 * delay, RETRY_MAX_S)
                continue
            if not sub.live:  # unsubscribed while its snapshot was read
                self.live.unsubscribe(sub, sub.topic)
            return

    def _unsubscribe(self, op: P.Op) -> None:
        sub = self.conn.subs.get(op.topic)
        if sub is None:
            raise P.ProtocolError("not_subscribed", "no such subscription on this connection", op.key)
        self._drop(sub)
        self.conn.offer_control(P.reply("unsubscribed", channel=op.topic.channel, key=op.key))

    def _drop(self, sub: Sub) -> None:
        sub.live = False
        self.conn.subs.pop(sub.topic, None)
        self.live.unsubscribe(sub, sub.topic)

    def close(self) -> None:
        for task in self._retries:
            task.cancel()
        for sub in list(self.conn.subs.values()):
            self._drop(sub)


@websocket("/ws")
async def ws_subscriptions(socket: WebSocket) -> None:
    """Subscriptions with snapshots and delta updates (docs/ws.md)."""
    state = socket.app.state
    settings, hub, live, verifier = state.settings, state.hub, state.live, state.verifier
    # The client speaks first here: an auth message (when a credential is required, within
    # 5 s) or its first subscription, handed back to be handled like any other.
    # A compression the node does not offer is refused (1008 with the reason) before the
    # credential is looked at: the client would misread every message.
    try:
        deflate, refusal = P.compression(socket.query_params.get("compression")) == "deflate", None
    except P.ProtocolError as exc:
        deflate, refusal = False, exc.message
    with client_may_leave(socket):
        admission = await admit_websocket(
            socket, verifier, client_speaks_first=True, origins=state.origins, refusal=refusal
        )
        if not admission:
            return
        async with holding_slot(socket, "ws") as admitted:
            if admitted:
                by_message = verifier.required and socket.query_params.get("token") is None
                await _serve(socket, hub, live, settings, verifier, by_message, admission.pending, deflate)


async def _serve(
    socket: WebSocket, hub, live: Live, settings, verifier, by_message: bool, first: str | bytes | None,
    deflate: bool,
) -> None:
    pump = Pump(socket)
    conn = Connection(pump.send, pump.close, deflate)
    session = Session(conn, live, settings, verifier)
    if by_message:
        conn.offer_control(P.reply("authenticated"))
    # A client arriving just after a new session began subscribes to that session.
    await hub.followed()

    async def read() -> None:
        if first is not None:
            if too_big(first, settings.ws_max_message_bytes):
                await close_socket(socket, CLOSE_TOO_BIG, "message too big")
                return
            await session.handle(first)
        await read_messages(socket, settings.ws_max_message_bytes, session.handle)

    try:
        await pump.run(hub.serve_ws(conn, settings.ws_send_timeout_s), read())
    finally:
        session.close()
