"""Delivery to one WebSocket: its writer, and the pump that runs it beside the reader.

The seed's channels (app.api.hub.Client: the newest whole state) and /ws
(app.api.ws_subscriptions.Connection: per-subscription updates) differ only in what they
have due; both send a few control messages (status, heartbeat, errors) first, bound
every send by the send timeout, and close a client that stays blocked.

A connection the node closes is gone within ``CLOSE_GRACE_S`` whatever the client does
(app.api.transports): a client that never reads could otherwise hold its socket, its
buffers and its address's slot for as long as it keeps the TCP connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from app.api.transports import abort_later, transport_of

CLOSE_SLOW = 4001  # the client did not read its pushes in time
# How long a close handshake may take before the transport is aborted. The close frame
# waits behind unread pushes, and then for the client's answer: a reading client needs a
# round trip, one that never reads would hold the connection for ever.
CLOSE_GRACE_S = 0.5

Send = Callable[[str | bytes], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


class Writer:
    """Sends control messages, then what :meth:`_take` has due, until cancelled."""

    control_limit = 8

    def __init__(self, send: Send, close: Close) -> None:
        self._send = send
        self._close = close
        self._control: deque[str | bytes] = deque(maxlen=self.control_limit)
        self._ready = asyncio.Event()
        self.dropped = False

    def offer_control(self, payload: str | bytes) -> None:
        """Queue a message that must not be replaced or merged (status, heartbeat)."""
        self._control.append(payload)
        self._ready.set()

    def _take(self) -> Sequence[str | bytes] | None:
        """The next messages to send besides control ones; None when nothing is due."""
        raise NotImplementedError

    async def run(self, send_timeout: float) -> None:
        """Send what arrives until cancelled; close the client if one send blocks past
        ``send_timeout``."""
        loop = asyncio.get_running_loop()
        control = self._control
        while True:
            await self._ready.wait()
            self._ready.clear()
            try:
                # One timeout scope per burst, moved on before each send: a timer is all a
                # send needs, where asyncio.wait_for wraps each one in a task of its own.
                async with asyncio.timeout(None) as scope:
                    while True:
                        if control:
                            batch: Sequence[str | bytes] | None = (control.popleft(),)
                        else:
                            batch = self._take()
                            if batch is None:
                                break
                        for payload in batch:
                            scope.reschedule(loop.time() + send_timeout)
                            await self._send(payload)
            except TimeoutError:
                self.dropped = True
                await self._close(CLOSE_SLOW, "too slow")  # bounded: see close_socket
                return


async def close_socket(socket: WebSocket, code: int, reason: str, grace: float = CLOSE_GRACE_S) -> None:
    """Close ``socket`` with ``code``; its connection is gone within ``grace`` seconds,
    the close handshake done or not (then the transport is aborted: the client sees a
    reset, not the code)."""
    transport = transport_of(socket)
    abort_later(transport, grace)  # a no-op once the handshake has ended the connection
    try:
        async with asyncio.timeout(grace):
            await socket.close(code=code, reason=reason)
    except TimeoutError:
        # The close frame could not even be queued: the client does not read.
        if transport is not None:
            transport.abort()
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # already gone (uvicorn's ClientDisconnected is an OSError)


class Pump:
    """One socket's send and close, and the writer and reader run side by side."""

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        self._closing: list[asyncio.Future] = []

    async def send(self, payload: str | bytes) -> None:
        key = "text" if isinstance(payload, str) else "bytes"
        await self.socket.send({"type": "websocket.send", key: payload})

    async def close(self, code: int, reason: str) -> None:
        # One close however many ask (the writer, the reader); each waits for it.
        if not self._closing:
            self._closing.append(asyncio.ensure_future(close_socket(self.socket, code, reason)))
        await asyncio.shield(self._closing[0])

    async def run(self, writer: Awaitable[None], reader: Awaitable[None]) -> None:
        """Until either ends (reading is how a departed client is noticed)."""
        tasks = [asyncio.ensure_future(writer), asyncio.ensure_future(reader)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self._closing:
                # The slot is held until the connection is gone or going: the close (or the
                # abort after CLOSE_GRACE_S) ends the reader. Released earlier, one address
                # could pin any number of sockets.
                await asyncio.wait({tasks[1]})
        finally:
            tasks += self._closing
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # However this ended (the client left, a close, an error), the connection does
            # not outlive its handler by more than the grace: uvicorn's own close of the
            # transport waits for the client to read what is buffered.
            abort_later(transport_of(self.socket), CLOSE_GRACE_S)
