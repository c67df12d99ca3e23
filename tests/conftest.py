"""Shared fixtures: a private redis-server for the whole run, a clean DB per test."""

from __future__ import annotations

import pytest

from app.store import private_redis_server, redis_from_url
from harness.redis_binary import NoRedisServer, redis_server_binary


@pytest.fixture(scope="session")
def redis_binary() -> str:
    try:
        return redis_server_binary()
    except NoRedisServer as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def redis_server(redis_binary):
    server = private_redis_server(redis_binary)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def redis(redis_server):
    client = redis_from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def settings(redis_server):
    from app.config import Settings

    return Settings(redis_url=redis_server.url, projector_block_ms=50, projector_lease_ms=5000)
