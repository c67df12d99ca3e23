"""The hardened edge: REST credentials, listed static files, logged 500s, the per-address
rate limit, CORS, the request-head deadline and the closed-session cache of the seed routes."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import httpx
import jwt
import pytest
import uvicorn
from contextlib import asynccontextmanager

from app.api import app as api_app
from app.api.app import create_app
from app.api.http_protocol import HeadTimeoutProtocol, uvicorn_options
from app.config import Settings
from app.ingest.writer import StreamWriter
from app.projections import read, worker
from app.local_redis import free_port
from tests import factory as F
from tests.apiserver import until

pytestmark = pytest.mark.anyio

TOKEN = "edge-static-token-3f9a"
SECRET = "edge-jwt-secret-0c1d77-" + "5e" * 12
RECEIVED = 1_795_600_000_000


def edge_settings(redis_server, **overrides) -> Settings:
    return Settings(redis_url=redis_server.url, projector_block_ms=50, **overrides)


def _async(condition):
    async def check():
        return condition()
    return check


@asynccontextmanager
async def node(settings: Settings):
    """The app on a real uvicorn in this event loop (as ``serve`` runs it); an httpx client."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", **uvicorn_options(settings)))
    task = asyncio.create_task(server.serve())
    await until(_async(lambda: server.started or task.done()))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            client.app, client.port = app, port
            yield client
    finally:
        server.should_exit = True
        await task


async def load_session(redis, settings, close: bool = False) -> str:
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED) for f in (
        F.quote("ACB", 22900, 22950, time="09:20:00"), F.trade("ACB", 22950, 100, 1000, time="09:20:01"),
        F.foreign("ACB", 1000, 200, "09:20:05"), F.index("VN30", 1900.0, "09:20:05"),
    )])
    await writer.flush()
    if close:
        await writer.close_session(F.SESSION)
    await worker.drain(redis, settings)
    return F.SESSION


async def test_every_api_route_metrics_and_the_schema_need_a_credential(redis, redis_server):
    settings = edge_settings(redis_server, api_tokens=f"other,{TOKEN}", api_jwt_secret=SECRET)
    browser_jwt = jwt.encode({"sub": "trader", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    expired = jwt.encode({"sub": "trader", "exp": int(time.time()) - 60}, SECRET, algorithm="HS256")
    async with node(settings) as client:
        for path in ("/api/market/snapshot", "/api/market/board", "/api/sessions", "/metrics", "/schema/openapi.json"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["status_code"] == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            for bad in ("nope", expired, f"{TOKEN}x", "a.b.c"):
                assert (await client.get(path, headers={"Authorization": f"Bearer {bad}"})).status_code == 401
            assert (await client.get(path, headers={"Authorization": f"Basic {TOKEN}"})).status_code == 401
            for good in (TOKEN, browser_jwt):
                assert (await client.get(path, headers={"Authorization": f"Bearer {good}"})).status_code == 200, path
        # The page, its files and the probes stay open: the page has no token until it runs.
        for path in ("/", "/static/app.js", "/healthz", "/readyz", "/schema-assets/swagger-ui.css"):
            assert (await client.get(path)).status_code in (200, 503), path


async def test_ws_token_alone_guards_rest_too(redis, redis_server):
    async with node(edge_settings(redis_server, ws_token=TOKEN)) as client:
        assert (await client.get("/api/market/snapshot")).status_code == 401
        assert (await client.get("/api/market/snapshot", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200


async def test_static_files_are_a_fixed_list_and_their_404s_name_no_path(redis, redis_server):
    async with node(edge_settings(redis_server)) as client:
        ok = await client.get("/static/app.js")
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/javascript")
        for path in ("/static/app.js%00", "/static/.", "/static/..%2fapp.py", "/static/%2e%2e/app.py",
                     "/static/", "/schema-assets/.", "/static/app.js%2500"):
            answer = await client.get(path)
            assert answer.status_code == 404, path
            assert str(api_app.STATIC.parent) not in answer.text and "/" not in answer.json()["detail"], path


async def test_an_unexpected_error_is_a_500_with_a_request_id_and_a_logged_traceback(
    redis, redis_server, monkeypatch, caplog
):
    async def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(read, "read_derivatives", broken)
    await load_session(redis, edge_settings(redis_server))
    async with node(edge_settings(redis_server)) as client:
        with caplog.at_level(logging.ERROR, logger="stock_tracker.api"):
            answer = await client.get("/api/market/derivatives")
    assert answer.status_code == 500
    request_id = answer.json()["request_id"]
    assert len(request_id) == 16 and answer.headers["x-request-id"] == request_id
    assert "disk on fire" not in answer.text  # the detail stays in the log
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info and "disk on fire" in str(logged[0].exc_info[1])


async def test_rest_rate_limit_is_per_client_address_with_retry_after(redis, redis_server):
    settings = edge_settings(redis_server, api_rate_limit=5, forwarded_allow_ips="127.0.0.1, 10.0.0.0/8")
    # The client's peer is 127.0.0.1: a trusted proxy here, so X-Forwarded-For picks the bucket.
    async with node(settings) as client:
        one = {"X-Forwarded-For": "203.0.113.1"}
        # 12 quick requests span at most two one-second windows of 5: two or more refused.
        answers = [await client.get("/api/sessions", headers=one) for _ in range(12)]
        limited = [a for a in answers if a.status_code == 429]
        assert len(limited) >= 2 and {a.status_code for a in answers} == {200, 429}
        assert limited[0].headers["retry-after"] == "1" and limited[0].json()["status_code"] == 429
        # Another client behind the same proxy has its own budget; probes are not counted.
        assert (await client.get("/api/sessions", headers={"X-Forwarded-For": "203.0.113.2"})).status_code == 200
        probes = [(await client.get("/healthz", headers=one)).status_code for _ in range(10)]
        assert probes == [200] * 10


async def test_a_spoofed_forwarded_for_does_not_escape_the_limit(redis, redis_server):
    # No proxy is trusted: the header is the client's own word, and ignored.
    async with node(edge_settings(redis_server, api_rate_limit=3)) as client:
        codes = [
            (await client.get("/api/sessions", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
            for i in range(12)
        ]
    assert codes.count(429) >= 6  # at most two one-second windows of 3 fit in 12 quick requests


async def test_cors_origins_answers_only_the_listed_origins(redis, redis_server):
    settings = edge_settings(redis_server, cors_origins="https://dash.example")
    async with node(settings) as client:
        preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        ok = await client.options("/api/sessions", headers={"Origin": "https://dash.example", **preflight})
        assert ok.headers.get("access-control-allow-origin") == "https://dash.example"
        assert "authorization" in ok.headers.get("access-control-allow-headers", "").lower()
        other = await client.get("/api/sessions", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    async with node(edge_settings(redis_server)) as client:
        none = await client.get("/api/sessions", headers={"Origin": "https://dash.example"})
        assert "access-control-allow-origin" not in none.headers  # not set: same origin only


async def test_a_client_that_never_finishes_its_request_head_is_dropped(redis, redis_server, monkeypatch):
    monkeypatch.setattr("app.api.http_protocol._head_timeout_s", lambda: 0.5)
    settings = edge_settings(redis_server, http_keepalive_s=30)
    port = free_port()
    options = uvicorn_options(settings)
    assert options["http"] == "app.api.http_protocol:HeadTimeoutProtocol" and options["proxy_headers"] is False
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, lifespan="on", **options))
    task = asyncio.create_task(server.serve())
    await until(_async(lambda: server.started))
    try:
        assert server.config.http_protocol_class is HeadTimeoutProtocol
        loop = asyncio.get_running_loop()

        async def closed_after(prefix: bytes) -> float:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setblocking(False)
            started = time.monotonic()
            await loop.sock_sendall(sock, prefix)
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            sock.close()
            assert data == b""  # closed, no answer
            return time.monotonic() - started

        assert await closed_after(b"") < 3  # connected and silent
        assert await closed_after(b"GET /healthz HTTP/1.1\r\nHost: x\r\n") < 3  # a head never finished
        # A complete request is answered, and the kept-alive connection serves another one
        # after the first head deadline has passed.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/healthz")).status_code == 200
    finally:
        server.should_exit = True
        await task


async def test_dated_seed_routes_of_a_closed_session_are_cached_and_of_the_live_one_served_live(
    redis, redis_server, monkeypatch
):
    settings = edge_settings(redis_server)
    session = await load_session(redis, settings, close=True)
    async with node(settings) as client:
        cache = client.app.state.closed_cache
        for path in ("/api/market/snapshot", "/api/market/foreign", "/api/market/indices", "/api/market/derivatives",
                     "/api/market/board", "/api/market/trades/ACB", "/api/history/candles/ACB",
                     "/api/history/foreign", "/api/history/index/VN30", "/api/history/basis"):
            first = await client.get(path, params={"date": session})
            hits = cache.hits
            again = await client.get(path, params={"date": session})
            assert first.status_code == again.status_code == 200 and first.content == again.content, path
            assert cache.hits == hits + 1, path

        async def no_redis(*args, **kwargs):
            raise AssertionError("a closed session's cached answer looked at Redis")

        # Once kept, a closed session's answer needs no look at Redis at all.
        monkeypatch.setattr(read, "resolve_session", no_redis)
        for path in ("/api/market/snapshot", "/api/market/foreign", "/api/history/candles/ACB", "/api/history/basis"):
            assert (await client.get(path, params={"date": session})).status_code == 200, path
        monkeypatch.undo()
        assert (await client.get("/api/market/snapshot", params={"date": "2026-13-45"})).status_code == 400


async def test_a_date_naming_the_live_session_is_served_from_the_live_text(redis, redis_server, monkeypatch):
    settings = edge_settings(redis_server)
    session = await load_session(redis, settings)

    async def rebuilt(*args, **kwargs):
        raise AssertionError("the live session's snapshot was rebuilt for a ?date= request")

    monkeypatch.setattr(read, "market_snapshot", rebuilt)
    async with node(settings) as client:
        live = await client.get("/api/market/snapshot")
        dated = await client.get("/api/market/snapshot", params={"date": session})
    assert live.status_code == dated.status_code == 200 and dated.content == live.content
