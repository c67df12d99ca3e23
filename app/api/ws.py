"""WebSocket channels /ws/market, /ws/foreign, /ws/index."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from typing import Iterator

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from app.api.addresses import client_address
from app.api.auth import admit_websocket
from app.api.delivery import Pump, close_socket
from app.api.hub import Client, Hub
from app.api.transports import transport_of

log = logging.getLogger("stock_tracker.ws")

CLOSE_TOO_BIG = 1009  # a client message over WS_MAX_MESSAGE_BYTES
CLOSE_TRY_LATER = 1013  # too many connections from this IP


class IpLimiter:
    """Open WebSockets per client IP on this node."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def acquire(self, ip: str) -> bool:
        if self.open[ip] >= self.limit:
            return False
        self.open[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self.open[ip] -= 1
        if self.open[ip] <= 0:
            del self.open[ip]


@contextmanager
def client_may_leave(socket: WebSocket) -> Iterator[None]:
    """A client gone mid-way (before its upgrade is answered, or during a send) ends its
    handler quietly: uvicorn raises ClientDisconnected (an OSError), Litestar
    WebSocketDisconnect, and left to escape each reset would be an error traceback in the
    log, which any client could flood. Any other OSError (Redis's socket, say) while the
    client is still there is an error as before."""
    try:
        yield
    except WebSocketDisconnect:
        pass
    except OSError:
        transport = transport_of(socket)
        if transport is not None and not transport.is_closing():
            raise


@asynccontextmanager
async def holding_slot(socket: WebSocket, channel: str) -> AsyncIterator[bool]:
    """One of the client address's slots while the block runs; False (and the socket
    closed with 1013) when the address has none left.

    The block ends once the connection is gone or aborted (app.api.delivery), so a slot
    is what a connection holds on this node; /metrics counts them per channel.
    """
    state = socket.app.state
    ip = client_address(socket, state.proxies)
    if not state.limiter.acquire(ip):
        await close_socket(socket, CLOSE_TRY_LATER, "too many connections from this address")
        yield False
        return
    held = state.hub.metrics.connections
    held[channel] += 1
    try:
        yield True
    finally:
        held[channel] -= 1
        state.limiter.release(ip)


async def serve_channel(socket: WebSocket, channel: str) -> None:
    """Authenticate, admit, then push the channel until either side goes away."""
    state = socket.app.state
    with client_may_leave(socket):
        if not await admit_websocket(socket, state.verifier, origins=state.origins):
            return
        async with holding_slot(socket, channel) as admitted:
            if admitted:
                await _pump(socket, channel, state.hub, state.settings.ws_max_message_bytes)


async def _pump(socket: WebSocket, channel: str, hub: Hub, max_message: int) -> None:
    pump = Pump(socket)
    # What clients send is otherwise ignored, within a size bound.
    await pump.run(hub.serve(channel, Client(pump.send, pump.close)), read_messages(socket, max_message))


def too_big(data: str | bytes, max_message: int) -> bool:
    # The bound is in bytes: a text message of multi-byte characters is longer on the wire.
    return len(data) > max_message or (isinstance(data, str) and len(data.encode()) > max_message)


async def read_messages(
    socket: WebSocket, max_message: int, handle: Callable[[str | bytes], Awaitable[None]] | None = None
) -> None:
    """Client messages to ``handle`` (or ignored) until the client leaves; one over
    ``max_message`` bytes closes the socket."""
    while True:
        event = await socket.receive()
        if event["type"] == "websocket.disconnect":
            return
        data = event.get("text") or event.get("bytes") or b""
        if too_big(data, max_message):
            await close_socket(socket, CLOSE_TOO_BIG, "message too big")
            return
        if handle is not None:
            await handle(data)


@websocket("/ws/market")
async def ws_market(socket: WebSocket) -> None:
    """Full MarketSnapshot on every (throttled) change."""
    await serve_channel(socket, "market")


@websocket("/ws/foreign")
async def ws_foreign(socket: WebSocket) -> None:
    """ForeignSummary on every (throttled) foreign-flow change."""
    await serve_channel(socket, "foreign")


@websocket("/ws/index")
async def ws_index(socket: WebSocket) -> None:
    """All indices on every (throttled) index change."""
    await serve_channel(socket, "index")
