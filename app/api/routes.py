"""REST routes: the seed's market endpoints, health, readiness and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from litestar import Controller, Request, Response, get
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.responses import ExceptionResponseContent
from litestar.params import PathParameter, QueryParameter
from redis.asyncio import Redis

from app import keys as K
from app.api import metrics
from app.api.auth import OPEN
from app.api.views import foreign_summary
from app.clock import parse_session_date
from app.projections import read
from app.projections.hashes import comma_list
from app.schemas import DerivativesData, ForeignSummary, IndexData, MarketSnapshot, SessionRef, SessionStats
from app.api.cache import ClosedSessionCache
from app.api.deps import ClosedCacheDep, RedisDep, SettingsDep, HubDep
from app.api.openapi_errors import BEARER, NOT_READY, errors
from app.store import REDIS_DOWN

DateParam = QueryParameter(required=False, description="Session (trading date) YYYY-MM-DD; default: the current session")


def check_date(date: str | None) -> str | None:
    """``?date=`` as given, checked (400 for a day that does not exist), or None."""
    if date is None:
        return None
    try:
        return parse_session_date(date)
    except ValueError as exc:  # a 200 with an empty body would look like a quiet market
        raise ValidationException(detail=str(exc)) from None


def json_response(body: bytes) -> Response:
    """Already encoded JSON (a cached or rendered body) as the response."""
    return Response(body, media_type="application/json")


async def dated(
    redis: Redis, cache: ClosedSessionCache, key: tuple, date: str | None,
    answer: Callable[[SessionRef | None], Awaitable[bytes]],
) -> bytes:
    """The body for ``?date=``: kept from an earlier request when that session is closed
    (no Redis read at all), else ``answer(ref)`` for the session it names (None: the
    current one; ``ref`` None when there is no session yet)."""
    day = check_date(date)
    body = cache.cached(key, day)
    if body is not None:
        return body
    return await answer(await read.resolve_session(redis, day))


async def cached_or_built(
    redis: Redis, cache: ClosedSessionCache, key: tuple, date: str | None,
    build: Callable[[SessionRef | None], Awaitable[object]],
) -> bytes:
    """``build(ref)`` encoded for the session ``?date=`` names (None: the current one),
    kept without expiry once that session is closed."""
    return await dated(redis, cache, key, date, lambda ref: cache.get(key, ref, lambda: build(ref)))


async def _session(redis: Redis, date: str | None) -> str | None:
    """The session to read: the given date, or the current one (closed or not)."""
    ref = await read.resolve_session(redis, check_date(date))
    return ref.date if ref else None


class MarketController(Controller):
    path = "/api/market"
    tags = ["market"]

    @get("/snapshot", summary="Full market snapshot: quotes, indices, foreign, derivatives",
         responses=errors(400), security=BEARER)
    async def snapshot(
        self, redis: RedisDep, hub: HubDep, closed_cache: ClosedCacheDep, date: str | None = DateParam
    ) -> MarketSnapshot:
        async def build(ref: SessionRef | None) -> bytes:
            if ref is None or (not ref.closed and ref.date == await read.current_session(redis)):
                # The current session: the very text the /ws/market push carries, rendered
                # once per change (a ?date= naming today must not rebuild it per request).
                return (await hub.current("market")).encode()
            return await closed_cache.get(("snapshot",), ref, lambda: read.market_snapshot(redis, ref.date))

        if date is None:
            return json_response(await build(None))
        return json_response(await dated(redis, closed_cache, ("snapshot",), date, build))

    @get("/foreign", summary="Foreign investor flow: totals and top 5 net buyers / sellers",
         responses=errors(400), security=BEARER)
    async def foreign(self, redis: RedisDep, closed_cache: ClosedCacheDep, date: str | None = DateParam) -> ForeignSummary:
        async def build(ref: SessionRef | None) -> ForeignSummary:
            return await foreign_summary(redis, ref.date if ref else None)

        return json_response(await cached_or_built(redis, closed_cache, ("foreign",), date, build))

    @get("/indices", summary="Indices (VN30, VNINDEX, HNXIndex, ...) with breadth and intraday line",
         responses=errors(400), security=BEARER)
    async def indices(self, redis: RedisDep, closed_cache: ClosedCacheDep, date: str | None = DateParam) -> dict[str, IndexData]:
        async def build(ref: SessionRef | None) -> dict[str, IndexData]:
            return await read.read_indices(redis, ref.date) if ref else {}

        return json_response(await cached_or_built(redis, closed_cache, ("indices",), date, build))

    @get("/derivatives", summary="The active VN30 futures contract and its basis",
         responses=errors(400), security=BEARER)
    async def derivatives(
        self, redis: RedisDep, closed_cache: ClosedCacheDep, date: str | None = DateParam
    ) -> DerivativesData | None:
        async def build(ref: SessionRef | None) -> DerivativesData | None:
            return await read.read_derivatives(redis, ref.date) if ref else None

        return json_response(await cached_or_built(redis, closed_cache, ("derivatives",), date, build))

    @get("/trade-analysis/{symbol:str}", summary="Active buy / active sell breakdown of one symbol",
         responses=errors(400, 404), security=BEARER)
    async def trade_analysis(
        self, redis: RedisDep, symbol: Annotated[str, PathParameter()], date: str | None = DateParam
    ) -> SessionStats:
        session = await _session(redis, date)
        stats = await read.read_stats(redis, session, [symbol.upper()]) if session else {}
        if not stats:
            raise NotFoundException(detail=f"no trades for symbol {symbol!r} in this session")
        return next(iter(stats.values()))


@get("/api/vn30-components", tags=["market"], summary="VN30 constituents (kept by the feed side)",
     responses=errors(), security=BEARER)
async def vn30_components(redis: RedisDep) -> dict[str, list[str]]:
    raw = await redis.hget(K.VN30_COMPONENTS, "symbols")
    symbols = comma_list(raw)
    return {"symbols": symbols}


@get("/healthz", tags=["ops"], summary="The process is up", opt=OPEN, responses=errors(guarded=False))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["ops"], summary="Redis reachable and projector lag under the bound", opt=OPEN,
     responses={**errors(guarded=False), 503: NOT_READY})
async def readyz(redis: RedisDep, settings: SettingsDep) -> Response:
    try:
        await redis.ping()
        # Reads the current session's own keys: on a cluster this fails (so: not ready)
        # while that session's slot has no master, even if every other node answers.
        lag = await metrics.projector_lag_ms(redis)
    except (*REDIS_DOWN, OSError) as exc:
        return Response({"status": "unavailable", "redis": False, "error": type(exc).__name__}, status_code=503)
    ok = lag is None or lag <= settings.ready_max_lag_ms
    body = {"status": "ok" if ok else "lagging", "redis": True, "projector_lag_ms": lag}
    return Response(body, status_code=200 if ok else 503)


def json_error(request: Request, exc: HTTPException) -> Response:
    """An HTTP error as JSON: Litestar would label it with the handler's own media type."""
    return ExceptionResponseContent(
        status_code=exc.status_code, detail=exc.detail, headers=exc.headers, extra=exc.extra, media_type=MediaType.JSON
    ).to_response(request)


# Its 401 and 429 were JSON bodies labelled text/plain (the page's type), not what the spec says.
@get("/metrics", tags=["ops"], summary="Prometheus metrics", media_type="text/plain; version=0.0.4",
     responses=errors(), security=BEARER, exception_handlers={HTTPException: json_error})
async def metrics_route(redis: RedisDep, hub: HubDep) -> str:
    started = time.perf_counter()
    text = await metrics.render(redis, hub)
    return text + f"stock_tracker_metrics_render_seconds {time.perf_counter() - started:.6f}\n"
