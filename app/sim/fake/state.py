"""What the fake's routes share with its server: sessions, connections, and the server's face.

Routes find their server in the Litestar app's state (``fake_of``); ``FakeServer``
lists what they may use of it.
"""
from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Protocol

from litestar import WebSocket
from litestar.connection import ASGIConnection

from app.sim.fake.stats import FakeStats, SentRecord
from app.sim.fake.tokens import TokenIssuer

if TYPE_CHECKING:
    from app.sim.market import MarketSimulator

__all__ = ["Session", "Connection", "FakeServer", "fake_of"]


class Session:
    """What negotiate hands out: survives its sockets so /reconnect keeps the subscription."""

    __slots__ = ("id", "token", "bearer", "protocol", "sub", "conn")

    def __init__(self, token: str, bearer: str, protocol: str) -> None:
        self.id = str(uuid.uuid4())
        self.token = token
        self.bearer = bearer
        self.protocol = protocol
        self.sub: dict[str, frozenset[str] | None] = {}
        self.conn: Connection | None = None


class Connection:
    """One open WebSocket: an ordered outbox (only market frames may be dropped)."""

    __slots__ = ("session", "socket", "out", "queued", "wake", "done", "close_mode", "last_send",
                 "overflowing", "dropped", "sent", "reconnect", "peer", "record")

    def __init__(self, session: Session, socket: WebSocket, reconnect: bool) -> None:
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
        self.record = SentRecord(session.id)

    def push(self, text: str) -> None:
        self.out.append((0, text, None))
        self.wake.set()

    def end(self, code: int, reason: str) -> None:
        if not self.done.is_set():
            self.close_mode = (code, reason)
            self.done.set()


class FakeServer(Protocol):
    """The part of FakeFastConnect that REST, SignalR and admin routes use."""

    sim: MarketSimulator
    sim_time: str | None
    stats: FakeStats
    tokens: TokenIssuer
    consumer_id: str
    consumer_secret: str
    token_ttl_s: float
    keepalive_s: float
    switch_mode: str
    _sessions: OrderedDict[str, Session]  # by ConnectionToken
    _conns: dict[str, Connection]  # by ConnectionId
    _seq: int  # Broadcasts generated so far, the cursor's position
    _cursor_id: str
    _loop: asyncio.AbstractEventLoop | None
    _stall_until: float
    _burst: int

    @property
    def rejecting_tokens(self) -> bool: ...
    def token_ok(self, token: str | None) -> bool: ...
    def wake_market(self) -> None: ...
    def note_drained(self) -> None: ...
    async def wait_unstalled(self) -> None: ...
    def drop(self) -> None: ...
    def stall(self, seconds: float) -> None: ...
    def reject_tokens(self, on: bool = True) -> None: ...
    def expire_tokens(self) -> None: ...
    def burst(self, frames: int) -> None: ...


def fake_of(connection: ASGIConnection) -> FakeServer:
    """The server behind a request or socket (the app carries it in its state)."""
    return connection.app.state.fake
