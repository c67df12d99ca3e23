"""The WebSocket edge of a node: connections it closes are gone within the close grace
(their slots with them) whatever the client does, and WS_ALLOWED_ORIGINS.

Against real uvicorn nodes (`stock-tracker serve`) on a private redis-server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app.api.app import create_app
from app.api.delivery import CLOSE_GRACE_S
from app.api.origins import AllowedOrigins
from app.api.transports import find_transport
from app.config import Settings
from tests.apiserver import ApiServer, until
from tests.test_hostile_clients import Node, RawWs, fill_board_and_publish, frame, limit_available, seed_board

pytestmark = pytest.mark.anyio

ROUTES = ("/ws", "/ws/market", "/ws/foreign", "/ws/index")
LISTED = "https://board.example.com"


def subscribe(**message) -> bytes:
    return frame(0x1, json.dumps({"op": "subscribe", **message}).encode())


# -- closed connections are gone within the grace ------------------------------------------


async def test_a_ws_subscriber_that_never_reads_is_dropped_and_its_slot_comes_back(redis, redis_server):
    await seed_board(redis, 1000)  # a "*" board snapshot is ~675 KB
    send_timeout = 0.3
    src = "127.0.0.9"
    symbols = [f"Z{i:04d}" for i in range(1000)]
    with ApiServer(redis_server.url, WS_MAX_PER_IP="1", WS_SEND_TIMEOUT_S=str(send_timeout),
                   WS_MAX_MESSAGE_BYTES="16384", API_RATE_LIMIT="0") as server:
        node = Node(server)
        stuck = await RawWs.open(server.port, "/ws", src, rcvbuf=4096)
        try:
            # Eight different boards of ~670 KB each: more than loopback's buffers take.
            for k in range(8):
                assert await stuck.send(subscribe(channel="board", symbols=symbols[:k] + symbols[k + 1:]))
            assert await until(lambda: node.clients_are(1), timeout=5)
            await until(lambda: node.drops_reach(1), timeout=30, interval=0.02)
            assert stuck.messages == 0 and not stuck.ended  # it never read, and is still there
            assert await until(lambda: node.clients_are(0), timeout=send_timeout + 1, interval=0.02)
            assert await until(lambda: limit_available(server.port, [src], per_ip=1), timeout=send_timeout + 1,
                               interval=0.05)
        finally:
            stuck.abort()
            await node.http.aclose()


async def test_a_close_behind_unread_pushes_is_bounded_too(redis, redis_server):
    """Any close the node makes, not only the slow client's 4001: here a message over the
    limit (1009) from a client that reads nothing, with a send timeout far away."""
    await seed_board(redis, 1000)
    stop = asyncio.Event()
    publishing = asyncio.create_task(fill_board_and_publish(redis, stop))
    src = "127.0.0.10"
    try:
        with ApiServer(redis_server.url, WS_MAX_PER_IP="1", WS_SEND_TIMEOUT_S="120", WS_THROTTLE_MS="20",
                       API_RATE_LIMIT="0") as server:
            node = Node(server)
            stuck = await RawWs.open(server.port, "/ws/market", src, rcvbuf=4096)
            try:
                assert await until(lambda: node.clients_are(1), timeout=5)
                # Megabytes of pushes the client has not read are waiting before the close frame.
                pushes = await node.metric("stock_tracker_ws_pushes_total")
                await until(lambda: node._pushes_reach(pushes + 20), timeout=30)
                assert await stuck.send(frame(0x1, b"a" * 5000))
                assert await until(lambda: node.clients_are(0), timeout=CLOSE_GRACE_S + 1, interval=0.02)
                assert await until(lambda: limit_available(server.port, [src], per_ip=1), timeout=5, interval=0.05)
                assert stuck.messages == 0
                # The connection was aborted under the client: reading finds it reset.
                assert await stuck.wait(lambda w: w.ended, timeout=20) and stuck.gone
            finally:
                stuck.abort()
                await node.http.aclose()
    finally:
        stop.set()
        await publishing


async def test_clients_that_leave_at_any_moment_leave_no_error_in_the_log(redis, redis_server):
    """Gone before the upgrade is answered, right after it, or after the first state: a
    client leaving is no error (each was a logged traceback, which anyone could flood)."""
    await seed_board(redis, 3)
    server = ApiServer(redis_server.url, API_RATE_LIMIT="0").start()
    try:
        node = Node(server)

        async def one(i: int) -> None:
            route = ROUTES[i % len(ROUTES)]
            ws = await RawWs.open(server.port, route, f"127.0.1.{i + 1}", handshake=i % 3 != 0)
            if i % 3 == 2 and route != "/ws":
                await ws.wait(lambda w: w.messages or w.ended)
            ws.abort()

        for _ in range(3):
            await asyncio.gather(*(one(i) for i in range(60)))
        assert await until(lambda: node.clients_are(0), timeout=10)
        await node.http.aclose()
    finally:
        server.stop()
    logged = server.proc.stderr.read().decode()
    assert "Traceback" not in logged and "error" not in logged.lower(), logged[-2000:]


async def test_the_transport_is_found_through_any_wrappers():
    """uvicorn hands its protocol's bound methods to the app; Litestar and middleware wrap
    them (closures, functools.wraps, partials)."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=a)
    try:
        class ServerProtocol:
            def __init__(self):
                self.transport = transport

            async def send(self, message):
                pass

        raw = ServerProtocol().send

        def closure(inner):
            async def wrapped(message):
                await inner(message)
            return wrapped

        @functools.wraps(raw)
        async def decorated(message):
            pass

        partial = functools.partial(closure(raw))
        assert find_transport(closure(closure(partial))) is transport
        assert find_transport(decorated) is transport
        assert find_transport(closure(print)) is None
        assert find_transport(lambda m: None) is None
    finally:
        transport.close()
        b.close()


# -- WS_ALLOWED_ORIGINS ---------------------------------------------------------------------


def test_allowed_origins_parse_and_match():
    def scope(*origins: str) -> dict:
        return {"headers": [(b"host", b"x")] + [(b"origin", o.encode()) for o in origins]}

    allowed = AllowedOrigins(" https://Board.Example.com/ , http://localhost:8000")
    assert allowed.allows(scope("https://board.example.com"))
    assert allowed.allows(scope("HTTP://LOCALHOST:8000"))
    assert allowed.allows(scope())  # not a browser
    assert not allowed.allows(scope("https://board.example.com.evil.net"))
    assert not allowed.allows(scope("http://board.example.com"))  # another scheme is another origin
    assert not allowed.allows(scope("null"))  # a sandboxed frame or a file
    assert not allowed.allows(scope("https://board.example.com", "https://evil.net"))
    assert AllowedOrigins("").allows(scope("https://evil.net"))
    # Parsed once, when the app is made, not once per handshake.
    app = create_app(Settings(ws_allowed_origins=LISTED))
    assert isinstance(app.state.origins, AllowedOrigins) and app.state.origins.origins == AllowedOrigins(LISTED).origins


async def _first(server: ApiServer, route: str, origin: str | None, token: str | None = None):
    """What a client from ``origin`` gets first: a message, or ("closed", code, reason)."""
    async with websockets.connect(server.ws + route, origin=origin, max_size=None, open_timeout=10) as ws:
        try:
            if token is not None:
                await ws.send(json.dumps({"op": "auth", "token": token}))
            if route == "/ws":
                await ws.send(json.dumps({"op": "subscribe", "channel": "indices"}))
            while True:
                message = await asyncio.wait_for(ws.recv(), 10)
                if isinstance(message, str) and '"status"' not in message and "authenticated" not in message:
                    return json.loads(message)
        except ConnectionClosed as exc:
            return ("closed", exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else ("closed", None, "")


async def test_ws_allowed_origins_refuse_other_pages_on_every_route(redis, redis_server):
    await seed_board(redis, 3)
    with ApiServer(redis_server.url, WS_ALLOWED_ORIGINS=f"{LISTED}, http://localhost:8000") as server:
        for route in ROUTES:
            assert await _first(server, route, "https://evil.example") == ("closed", 1008, "origin not allowed"), route
            assert await _first(server, route, "null") == ("closed", 1008, "origin not allowed"), route
            assert not isinstance(await _first(server, route, LISTED), tuple), route
            assert not isinstance(await _first(server, route, None), tuple), route  # not a browser
        node = Node(server)
        try:
            assert await node.clients_are(0)  # refused handshakes took no slot
        finally:
            await node.http.aclose()


async def test_a_good_token_does_not_make_up_for_the_origin(redis, redis_server):
    await seed_board(redis, 3)
    with ApiServer(redis_server.url, WS_ALLOWED_ORIGINS=LISTED, API_TOKENS="edge-token") as server:
        for route in ROUTES:
            refused = await _first(server, route, "https://evil.example", token="edge-token")
            assert refused == ("closed", 1008, "origin not allowed"), route
            assert not isinstance(await _first(server, route, LISTED, token="edge-token"), tuple), route


async def test_without_ws_allowed_origins_any_page_may_connect(redis, redis_server):
    await seed_board(redis, 3)
    with ApiServer(redis_server.url) as server:
        for route in ROUTES:
            assert not isinstance(await _first(server, route, "https://anywhere.example"), tuple), route
