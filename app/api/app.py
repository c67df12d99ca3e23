"""The Litestar application: ``create_app()``; stateless, any number of nodes."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from pathlib import Path

from litestar import Litestar, Request, Response, get
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.datastructures import State
import swagger_ui_bundle
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from redis.asyncio import Redis

from app.api.addresses import TrustedProxies
from app.api.auth import Verifier
from app.api.cache import ClosedSessionCache
from app.api.deps import DEPENDENCIES
from app.api.feed import feed_status
from app.api.history import BoardController, HistoryController, sessions
from app.api.hub import Hub
from app.api.routes import MarketController, healthz, metrics_route, readyz, vn30_components
from app.api.views import channel_state
from app.api.live import Live
from app.api.ws import IpLimiter, ws_foreign, ws_index, ws_market
from app.api.ws_subscriptions import ws_subscriptions
from app import gctune, logs
from app.config import Settings, load_settings
from app.store import DEFAULT_URL, REDIS_DOWN, RedisClient, redis_from_url

log = logging.getLogger("stock_tracker.api")

STATIC = Path(__file__).with_name("static")
SWAGGER_ASSETS = "/schema-assets"


@get("/", include_in_schema=False)
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
            log.warning("event=store_unavailable path=%s error=%s detail=%s", request.url.path, type(exc).__name__, exc)
        self.logged_at = now
        return Response(
            {"status_code": 503, "detail": "market data store unavailable, retry shortly"},
            status_code=503, headers={"Retry-After": "1"},
        )


# Requests failing back to back are one outage: logged again only after this much quiet.
OUTAGE_LOG_S = 10.0


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

    return Litestar(
        route_handlers=[
            MarketController, BoardController, HistoryController, sessions, vn30_components, feed_status, healthz, readyz, metrics_route, ws_market, ws_foreign, ws_index,
            ws_subscriptions,
            dashboard, create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False),
            create_static_files_router(
                path=SWAGGER_ASSETS, directories=[swagger_ui_bundle.swagger_ui_path], include_in_schema=False
            ),
        ],
        lifespan=[lifespan],
        state=State({
            "settings": settings, "verifier": Verifier.from_settings(settings), "limiter": IpLimiter(settings.ws_max_per_ip), "closed_cache": ClosedSessionCache(),
            "proxies": TrustedProxies.parse(settings.forwarded_allow_ips),
        }),
        dependencies=DEPENDENCIES,
        exception_handlers=dict.fromkeys(REDIS_DOWN, _Outage()),
        openapi_config=OpenAPIConfig(
            title="stock-tracker", version="0.1.0", path="/schema",
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
        logging_config=None,  # keep the one-line-per-event logs of app.logs
    )
