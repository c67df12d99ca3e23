"""Fault switches of the fake (drop, stall, token rejection and expiry, bursts), as methods
and as loopback-only ``/_fake/*`` HTTP endpoints for tests."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import threading
import time as _time
from contextlib import suppress
from typing import Any, Callable

from litestar import Request, Response, Router, get, post

from app.sim.fake.channels import spec_text
from app.sim.fake.rest import json_response
from app.sim.fake.state import Connection, fake_of
from app.sim.fake.tokens import TokenIssuer

__all__ = ["FaultSwitches", "admin_router"]

log = logging.getLogger("stock_tracker.fake_ssi")


class FaultSwitches:
    """Mixin of FakeFastConnect: the switches tests flip (safe to call from any thread)."""

    _conns: dict[str, Connection]
    tokens: TokenIssuer
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: int | None
    _kick: asyncio.Event | None  # wakes the market pump
    _unstall: asyncio.Event | None  # wakes senders when a stall changes

    def _init_faults(self) -> None:
        self._reject_tokens = False
        self._stall_until = 0.0  # loop time
        self._burst = 0  # frames still to run flat out

    @property
    def rejecting_tokens(self) -> bool:
        return self._reject_tokens

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
        n = self.tokens.revoke_all()
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

    async def wait_unstalled(self) -> None:
        """Return once no stall is in force."""
        loop = asyncio.get_running_loop()
        unstall = self._unstall
        assert unstall is not None
        while (left := self._stall_until - loop.time()) > 0:
            unstall.clear()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(unstall.wait(), left)


def _is_loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


async def _loopback_only(request: Request) -> Response | None:
    """The one admin guard: every /_fake/* request from elsewhere is refused."""
    host = request.client.host if request.client else None
    if not _is_loopback(host):
        log.warning("event=admin_refused peer=%s path=%s", host, request.url.path)
        return json_response({"detail": "loopback only"}, 403)
    return None


def _number(request: Request, name: str, default: str | None = None) -> float:
    raw = request.query_params.get(name, default)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"query parameter {name!r} must be a non-negative number")
    return value


@post("/drop", status_code=200)
async def admin_drop(request: Request) -> Response:
    fake = fake_of(request)
    n = len(fake._conns)
    fake.drop()
    return json_response({"ok": True, "dropped": n})


@post("/stall", status_code=200)
async def admin_stall(request: Request) -> Response:
    fake = fake_of(request)
    try:
        seconds = _number(request, "seconds")
    except ValueError as exc:
        return json_response({"ok": False, "detail": str(exc)}, 400)
    fake.stall(seconds)
    return json_response({"ok": True, "seconds": seconds})


@post("/reject-tokens", status_code=200)
async def admin_reject(request: Request) -> Response:
    fake = fake_of(request)
    on = (request.query_params.get("on") or "1").lower() in ("1", "true", "on", "yes")
    fake.reject_tokens(on)
    return json_response({"ok": True, "on": on})


@post("/expire-tokens", status_code=200)
async def admin_expire(request: Request) -> Response:
    fake = fake_of(request)
    n = len(fake._conns)
    fake.expire_tokens()
    return json_response({"ok": True, "closed": n})


@post("/burst", status_code=200)
async def admin_burst(request: Request) -> Response:
    fake = fake_of(request)
    try:
        frames = int(_number(request, "frames"))
    except ValueError as exc:
        return json_response({"ok": False, "detail": str(exc)}, 400)
    fake.burst(frames)
    return json_response({"ok": True, "frames": frames})


@get("/stats")
async def admin_stats(request: Request) -> Response:
    fake = fake_of(request)
    body = fake.stats.as_dict()
    body.update(
        stalled=fake._loop is not None and fake._stall_until > fake._loop.time(),
        rejecting_tokens=fake.rejecting_tokens,
        burst_pending=fake._burst,
        sim_time=fake.sim_time,
        subscriptions={cid: spec_text(c.session.sub) for cid, c in fake._conns.items()},
    )
    return json_response(body)


def admin_router() -> Router:
    """The /_fake/* endpoints behind the loopback guard."""
    return Router(
        path="/_fake",
        route_handlers=[admin_drop, admin_stall, admin_reject, admin_expire, admin_burst, admin_stats],
        before_request=_loopback_only,
    )

