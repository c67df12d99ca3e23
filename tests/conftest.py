"""Shared fixtures: a private redis-server (and a Redis Cluster) for the whole run, a
clean store per test.

Tests that must hold on one Redis and on a cluster alike take ``redis_server`` through
``@stores`` (``tests.stores``): each then runs twice, ``[single]`` and ``[cluster]``.
"""

from __future__ import annotations

import pytest

from app.local_redis import private_redis_server
from app.store import connect
from harness.redis_binary import NoRedisServer, redis_server_binary
from harness.redis_cluster import private_redis_cluster


@pytest.fixture(scope="session")
def redis_binary() -> str:
    try:
        return redis_server_binary()
    except NoRedisServer as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def single_redis(redis_binary):
    server = private_redis_server(redis_binary)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster(redis_binary):
    """3 masters, 3 replicas; a short node timeout so a failover takes ~2 s. Shared by
    every test of the run: a test that kills a node starts it again (as a replica)."""
    cluster = private_redis_cluster(redis_binary, masters=3, replicas=1, node_timeout_ms=1000)
    cluster.start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def redis_server(request):
    """The store a test runs on: one Redis unless parametrized with ``cluster``."""
    kind = getattr(request, "param", "single")
    return request.getfixturevalue("redis_cluster" if kind == "cluster" else "single_redis")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def redis(redis_server):
    client = await connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def settings(redis_server):
    from app.config import Settings

    return Settings(redis_url=redis_server.url, projector_block_ms=50, projector_lease_ms=5000)
