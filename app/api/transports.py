"""The asyncio transport under a WebSocket, so a connection can be aborted.

ASGI has no way to end a connection at once: ``websocket.close`` queues a close frame,
and the server then closes its transport gracefully, which waits until the client has
read everything buffered. A client that never reads keeps the connection (and whatever
the node holds for it) for as long as it keeps TCP alive. Aborting the transport ends
it now.

uvicorn (every WebSocket implementation it has: websockets, websockets-sansio, wsproto)
hands the application ``receive`` and ``send`` as bound methods of its protocol object,
which keeps the connection's transport in ``.transport``; nothing in the scope leads to
it. Litestar and any middleware wrap those callables in closures, so the protocol is
found by following the wrapped callables (closure cells, ``__wrapped__``, partials) from
the socket's own ``receive`` and ``send`` down to a bound method whose owner has an
asyncio transport. Under a server that is built otherwise (Litestar's test client, say)
there is none, and the node falls back to the graceful close alone.
"""

from __future__ import annotations

import asyncio
import functools

_DEPTH = 8  # wrappers followed from the socket's callables: Litestar's, middleware's, uvicorn's


def _owner_transport(fn) -> asyncio.BaseTransport | None:
    transport = getattr(getattr(fn, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


def _inner(fn) -> list:
    """The callables ``fn`` wraps."""
    found = []
    if isinstance(fn, functools.partial):
        found.append(fn.func)
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None:
        found.append(wrapped)
    func = getattr(fn, "__func__", fn)  # a bound method's closure is its function's
    for cell in getattr(func, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(value) and not isinstance(value, type):
            found.append(value)
    return found


def find_transport(*callables) -> asyncio.BaseTransport | None:
    """The transport of the server protocol behind these ASGI callables, or None."""
    level, seen = list(callables), set()
    for _ in range(_DEPTH):
        following = []
        for fn in level:
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            transport = _owner_transport(fn)
            if transport is not None:
                return transport
            following += _inner(fn)
        if not following:
            return None
        level = following
    return None


_SCOPE_KEY = "stock_tracker.transport"  # where the found transport is kept (scopes are dicts)


def transport_of(socket) -> asyncio.BaseTransport | None:
    """The transport of a Litestar ``WebSocket`` (looked up once, then kept in its scope)."""
    scope = socket.scope
    if _SCOPE_KEY not in scope:
        scope[_SCOPE_KEY] = find_transport(socket.receive, socket.send)
    return scope[_SCOPE_KEY]


def abort_later(transport: asyncio.BaseTransport | None, delay: float) -> None:
    """Abort ``transport`` after ``delay`` seconds unless its connection is over by then
    (aborting a closed transport does nothing)."""
    if transport is not None:
        asyncio.get_running_loop().call_later(delay, transport.abort)
