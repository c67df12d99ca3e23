"""The Litestar application: ``create_app()``; stateless, any number of nodes."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from pathlib import Path

from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.response import File
from litestar.datastructures import State
import swagger_ui_bundle
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from redis.asyncio import Redis

from app.api.addresses import TrustedProxies
from app.api.auth import OPEN, Verifier, require_credential
from app.api.origins import AllowedOrigins
from app.api.failures import internal_error, log_unexpected
from app.api.ratelimit import rate_limit
from app.api.static_files import static_router
from app.api.cache import ClosedSessionCache
from app.api.deps import DEPENDENCIES
from app.api.feed import feed_status
from app.api.history import BoardController, HistoryController, sessions
from app.api.hub import Hub
from app.api.routes import MarketController, healthz, metrics_route, readyz, vn30_components
from app.api.views import channel_state
from app.api.live import Live
from app.api.openapi_errors import COMPONENTS
from app.api.openapi_numbers import NumberSchemaPlugin
from app.api.ws import IpLimiter, ws_foreign, ws_index, ws_market
from app.api.ws_subscriptions import ws_subscriptions
from app import gctune, logs
from app.config import Settings, load_settings
from app.store import DEFAULT_URL, REDIS_DOWN, RedisClient, outage_event, redis_from_url

log = logging.getLogger("stock_tracker.api")

STATIC = Path(__file__).with_name("static")
SWAGGER_ASSETS = "/schema-assets"


@get("/", include_in_schema=False, opt=OPEN)
async def dashboard() -> File:
    """The live dashboard page (plain HTML/CSS/JS over the REST routes and /ws)."""
    return File(STATIC / "index.html", content_disposition_type="inline", media_type="text/html")


class _Outage:
    """Logs a store outage once (its first failed request), not once per request."""

    def __init__(self) -> None:
        self.logged_at = -1e9

    def __call__(self, request: Request, exc: Exception) -> Response:
        now = time.monotonic()
        if now - self.logged_at > OUTAGE_LOG_S:
            level, event = outage_event(exc)  # a refused password says so: waiting will not help
            log.log(level, "event=%s path=%s error=%s detail=%s", event, request.url.path, type(exc).__name__, exc)
        self.logged_at = now
        return Response(
            {"status_code": 503, "detail": "market data store unavailable, retry shortly"},
            status_code=503, headers={"Retry-After": "1"},
        )


# Requests failing back to back are one outage: logged again only after this much quiet.
OUTAGE_LOG_S = 10.0


def _cors(origins: str) -> CORSConfig | None:
    """CORS_ORIGINS: browsers on these origins may call the REST API (with a Bearer token)."""
    allowed = [origin.strip() for origin in origins.split(",") if origin.strip()]
    if not allowed:
        return None  # same origin only: browsers get no CORS headers, as before
    return CORSConfig(allow_origins=allowed, allow_methods=["GET"], allow_headers=["Authorization"], max_age=600)


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> Litestar:
    """The API; ``redis`` (optional) shares an existing client, e.g. the embedded store."""
    settings = settings or load_settings()
    if not logging.getLogger().handlers:  # a uvicorn worker process starts bare
        logs.setup(settings.log_format, settings.log_level, settings=settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = RedisClient.around(redis) if redis is not None else redis_from_url(settings.redis_url or DEFAULT_URL)
        live = Live(client, settings.ws_throttle_ms, settings.tape_length)
        hub = Hub(
            client,
            render=lambda channel: channel_state(client, channel, live),
            throttle_ms=settings.ws_throttle_ms,
            send_timeout=settings.ws_send_timeout_s,
            heartbeat_s=settings.ws_heartbeat_s,
            live=live,
        )
        app.state.redis = client
        app.state.hub = hub
        app.state.live = live
        await hub.start()
        collector = asyncio.create_task(gctune.collect_forever(lambda: hub.departed))
        try:
            yield
        finally:
            collector.cancel()
            await hub.stop()
            if redis is None:
                await client.aclose()

    proxies = TrustedProxies.parse(settings.forwarded_allow_ips)
    rest_limit = rate_limit(settings.api_rate_limit, proxies)
    return Litestar(
        route_handlers=[
            MarketController, BoardController, HistoryController, sessions, vn30_components, feed_status,
            healthz, readyz, metrics_route,
            ws_market, ws_foreign, ws_index, ws_subscriptions,
            dashboard, static_router("/static", STATIC), static_router(SWAGGER_ASSETS, swagger_ui_bundle.swagger_ui_path),
        ],
        lifespan=[lifespan],
        state=State({
            "settings": settings,
            "verifier": Verifier.from_settings(settings),
            "limiter": IpLimiter(settings.ws_max_per_ip),  # WebSockets per client address
            "closed_cache": ClosedSessionCache(),
            "proxies": proxies,
            "origins": AllowedOrigins(settings.ws_allowed_origins),  # of WebSocket handshakes
        }),
        dependencies=DEPENDENCIES,
        guards=[require_credential],
        middleware=[rest_limit] if rest_limit else [],
        cors_config=_cors(settings.cors_origins),
        exception_handlers={**dict.fromkeys(REDIS_DOWN, _Outage()), 500: internal_error},
        after_exception=[log_unexpected],
        openapi_config=OpenAPIConfig(
            title="stock-tracker", version="0.1.0", path="/schema", components=COMPONENTS,
            # Deployments may be offline: the page's assets come from our own install.
            render_plugins=[
                SwaggerRenderPlugin(
                    js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
                    css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
                    standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
                    favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>",
                ),
                JsonRenderPlugin(),
            ],
        ),
        plugins=[NumberSchemaPlugin()],  # Money (int | float) as one JSON number in the spec
        logging_config=None,  # keep the one-line-per-event logs of app.logs
    )
