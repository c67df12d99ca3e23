"""The error responses (and the credential) the OpenAPI spec documents for each route.

Every error is JSON ``{"status_code": int, "detail": str}``; Litestar's own 400s add
``extra`` (what failed validation). Which can occur where:

- 400: a bad parameter (``?date=2026-13-45``, a symbol that cannot be one, ``?limit=0``);
- 404: no such thing in the session (a symbol without trades);
- 401: a missing or bad credential, when ``API_TOKENS`` or ``API_JWT_SECRET`` is set
  (every ``/api/*`` route and ``/metrics``);
- 429: the per-address rate limit (``API_RATE_LIMIT``), with ``Retry-After``;
- 503: the market data store unavailable, with ``Retry-After``.

Routes pass ``responses=errors(...)`` (the codes they raise themselves; 401/429/503 come
with it) and ``security=BEARER``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, Example, SecurityScheme

SCHEME = "BearerToken"
BEARER = [{SCHEME: []}]
COMPONENTS = Components(
    security_schemes={
        SCHEME: SecurityScheme(
            type="http", scheme="bearer",
            description="A static token (API_TOKENS) or an HS256 JWT with exp (API_JWT_SECRET); "
            "required only when one of them is set",
        )
    }
)


class ErrorBody(msgspec.Struct, kw_only=True):
    """What every error response holds."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None


_ERRORS = {
    400: ("Bad parameter", "not a date: '2026-13-45' (expected YYYY-MM-DD)"),
    401: ("Missing or invalid credential (when API_TOKENS or API_JWT_SECRET is set)", "missing or invalid credential"),
    404: ("Not found in the session", "no trades for symbol 'NOPE' in this session"),
    429: ("Rate limited (API_RATE_LIMIT per client address); see Retry-After", "rate limit exceeded, retry later"),
    503: ("Market data store unavailable; see Retry-After", "market data store unavailable, retry shortly"),
}
# What any route behind the credential can answer, whatever it does itself.
GUARDED = (401, 429, 503)


class Readiness(msgspec.Struct, kw_only=True):
    """What ``/readyz`` answers (503 when Redis is away or the projector lags)."""

    status: str  # ok | lagging | unavailable
    redis: bool
    projector_lag_ms: int | None = None
    error: str | None = None  # the kind of failure reaching Redis


NOT_READY = ResponseSpec(
    data_container=Readiness, generate_examples=False,
    description="Not ready: Redis unreachable, or the projector behind READY_MAX_LAG_MS",
    examples=[Example(summary="lagging", value={"status": "lagging", "redis": True, "projector_lag_ms": 12000})],
)


def error(status: int) -> ResponseSpec:
    description, detail = _ERRORS[status]
    return ResponseSpec(
        data_container=ErrorBody, description=description, generate_examples=False,
        examples=[Example(summary=description, value={"status_code": status, "detail": detail})],
    )


def errors(*statuses: int, guarded: bool = True) -> dict[int, ResponseSpec]:
    """``statuses``, plus 401, 429 and 503 unless ``guarded`` is false (the open routes,
    ``app.api.auth.OPEN``: neither credential nor rate limit applies to them)."""
    shared = GUARDED if guarded else ()
    return {status: error(status) for status in sorted({*statuses, *shared})}
