"""One credential check for REST, /metrics and every WebSocket.

Credentials are static tokens (``API_TOKENS``, comma-separated, for services; ``WS_TOKEN``
counts as one more) and HS256 JWTs signed with ``API_JWT_SECRET`` that carry an ``exp``
claim (for browsers; issued by the operator's own backend). With none configured,
nothing is required and every request is let in, as before.

REST routes and ``/metrics`` are guarded by ``require_credential`` (``Authorization:
Bearer <token>``; 401 JSON with ``WWW-Authenticate``); handlers marked ``opt={"public":
True}`` stay open.

Interface (the app keeps one ``Verifier`` in ``app.state.verifier``)::

    verifier = Verifier.from_settings(settings)
    verifier.required            # True when any credential is configured
    verifier.verify(token)       # True for a known static token (constant time) or a
                                 # valid, unexpired JWT; never raises

    admission = await admit_websocket(socket, verifier)
    if not admission:            # refused (closed with 1008) or the client left
        return
    if admission.pending is not None:
        handle(admission.pending)  # the client's first message, not an auth op

``admit_websocket`` accepts the socket when not yet accepted. Given ``origins``
(app.api.origins, ``WS_ALLOWED_ORIGINS``), a handshake from an origin not listed is closed
with 1008 before any credential is looked at. A ``?token=`` in the URL is
checked at once. Otherwise, when a credential is required, the first message must be
``{"op":"auth","token":"..."}`` within ``AUTH_TIMEOUT_S``; anything else (another
message, a bad token, silence) closes the socket with 1008. A protocol where the client
speaks first (``client_speaks_first=True``, e.g. ``/ws``) also reads the first message
when nothing is required: an auth op is consumed (its token is not checked: nothing is
required), any other message comes back in ``Admission.pending`` for the caller to
process. An auth op sent later, after admission, is the caller's to acknowledge; check it
with ``verifier.verify`` and ``auth_token(message)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass

import jwt
import msgspec
from litestar import WebSocket
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.handlers.base import BaseRouteHandler

from app.api.origins import REASON as ORIGIN_REFUSED, AllowedOrigins

AUTH_TIMEOUT_S = 5.0
CLOSE_POLICY = 1008  # missing or bad credential
_MAX_AUTH_MESSAGE = 8192  # a JWT is well under this; a larger first message is not one


def _digest(token: str) -> bytes:
    # Equal-length digests: compare_digest then reveals neither content nor length.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Verifier:
    """Checks a presented token against the configured static tokens and JWT secret."""

    def __init__(self, tokens: tuple[str, ...] | list[str] = (), jwt_secret: str = "", leeway_s: float = 0.0):
        self._digests = tuple(_digest(t) for t in tokens if t)
        self._jwt_secret = jwt_secret
        self._leeway = leeway_s
        self.required = bool(self._digests or jwt_secret)

    @classmethod
    def from_settings(cls, settings) -> "Verifier":
        """From API_TOKENS, WS_TOKEN and API_JWT_SECRET."""
        tokens = [t.strip() for t in settings.api_tokens.split(",")]
        return cls([*tokens, settings.ws_token], settings.api_jwt_secret)

    def verify(self, token: str) -> bool:
        """True for a configured static token or a valid HS256 JWT with a future ``exp``."""
        if not isinstance(token, str) or not token:
            return False
        given = _digest(token)
        matched = False
        for known in self._digests:  # every token compared: the time says nothing of which
            matched |= hmac.compare_digest(given, known)
        if matched:
            return True
        if not self._jwt_secret or token.count(".") != 2:
            return False
        try:
            jwt.decode(
                token, self._jwt_secret, algorithms=["HS256"], leeway=self._leeway,
                options={"require": ["exp"], "verify_aud": False},
            )
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return False
        return True

    def __repr__(self) -> str:  # never the secrets
        return f"Verifier(static_tokens={len(self._digests)}, jwt={bool(self._jwt_secret)})"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


PUBLIC = "public"  # handler opt: open without a credential (/, /healthz, /readyz, static files)
NOT_LIMITED = "not_rate_limited"  # handler opt: not counted by the REST rate limit
# Health probes, the page and its files: a load balancer has no credential, and a page
# load must not use up a client's request budget.
OPEN = {PUBLIC: True, NOT_LIMITED: True}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stock-tracker"'}


def require_credential(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard of every HTTP route: a valid ``Authorization: Bearer`` credential when one is
    configured (401 otherwise), unless the handler is marked ``opt={"public": True}``.

    WebSockets are admitted by ``admit_websocket`` (their credential may come in the
    first message, after the handshake this guard would see).
    """
    if connection.scope["type"] != "http" or handler.opt.get(PUBLIC):
        return
    verifier: Verifier = connection.app.state.verifier
    if not verifier.required:
        return
    token = bearer_token(connection.headers.get("authorization"))
    if token is None or not verifier.verify(token):
        # Which of the two it was is not said: either way the answer is the same.
        raise NotAuthorizedException(detail="missing or invalid credential", headers=_CHALLENGE)


class _AuthOp(msgspec.Struct):
    op: str
    token: str | None = None


def auth_token(message: str | bytes) -> str | None:
    """The token of a ``{"op":"auth","token":...}`` message; None for any other message.

    An auth op without a (string) token gives ``""``, which no verifier accepts.
    """
    if len(message) > _MAX_AUTH_MESSAGE:
        return None
    try:
        parsed = msgspec.json.decode(message, type=_AuthOp)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    if parsed.op != "auth":
        return None
    return parsed.token or ""


@dataclass(frozen=True)
class Admission:
    """What ``admit_websocket`` decided; true when the client may proceed."""

    admitted: bool
    pending: str | bytes | None = None  # the client's first message, for the caller

    def __bool__(self) -> bool:
        return self.admitted


async def admit_websocket(
    socket: WebSocket, verifier: Verifier, *, timeout: float = AUTH_TIMEOUT_S, client_speaks_first: bool = False,
    origins: AllowedOrigins | None = None, refusal: str | None = None,
) -> Admission:
    """Accept ``socket`` and check its origin and credential (see the module docstring);
    ``refusal``, the reason a request the route cannot serve is closed 1008 with, once
    the origin is allowed."""
    await socket.accept()
    if origins is not None and not origins.allows(socket.scope):
        return await _refuse(socket, ORIGIN_REFUSED)
    if refusal is not None:
        return await _refuse(socket, refusal)
    query = socket.query_params.get("token")
    if query is not None:
        if verifier.verify(query) or not verifier.required:
            return Admission(True)
        return await _refuse(socket)
    if not verifier.required and not client_speaks_first:
        return Admission(True)
    try:
        event = await asyncio.wait_for(socket.receive(), timeout)
    except asyncio.TimeoutError:
        return Admission(True) if not verifier.required else await _refuse(socket)
    except WebSocketDisconnect:
        return Admission(False)
    if event["type"] == "websocket.disconnect":
        return Admission(False)
    message = event.get("text")
    if message is None:
        message = event.get("bytes") or b""
    token = auth_token(message)
    if not verifier.required:
        return Admission(True, None if token is not None else message)
    if token is not None and verifier.verify(token):
        return Admission(True)
    return await _refuse(socket)


async def _refuse(socket: WebSocket, reason: str = "missing or invalid credential") -> Admission:
    try:
        await socket.close(code=CLOSE_POLICY, reason=reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # already gone
    return Admission(False)
