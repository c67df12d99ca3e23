"""uvicorn's HTTP/1.1 protocol with a deadline for the request head.

uvicorn times out idle keep-alive connections but not a client that connects and never
finishes its request line and headers: 300 such connections stayed open for 31 s. Here a
connection waiting for a request head (the first, or the next one on a kept-alive
connection) is closed after ``HTTP_HEADER_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Settings, load_settings

PROTOCOL = "app.api.http_protocol:HeadTimeoutProtocol"  # uvicorn's ``http=`` (a worker imports it)


@lru_cache(maxsize=1)
def _head_timeout_s() -> float:
    # Read in the worker process, which has the node's environment.
    return load_settings().http_header_timeout_s


class HeadTimeoutProtocol(H11Protocol):
    """H11Protocol closing a connection whose request head is not complete in time."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in (or the protocol switched)
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_timer()  # waiting for the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(_head_timeout_s(), self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict:
    """What every uvicorn serving the API is given (``serve`` and the demo)."""
    return {
        "http": PROTOCOL,
        "timeout_keep_alive": settings.http_keepalive_s,
        # Client addresses are ours to work out (app.api.addresses, FORWARDED_ALLOW_IPS):
        # uvicorn's default believes X-Forwarded-For from 127.0.0.1, so anyone local could
        # pick their own bucket.
        "proxy_headers": False,
        # Compression would be per client: it undoes encoding each push once per node.
        "ws_per_message_deflate": False,
        "log_config": None,
        "access_log": False,
    }
