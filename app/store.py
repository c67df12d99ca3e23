"""The Redis connection: the configured server, or an embedded store for demos."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ClusterError,
    NoPermissionError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.asyncio.retry import Retry  # the asyncio one: a sync Retry is converted with a warning

from app import redact
from app.config import Settings, mask_password
from app.errors import RedisUnavailable, UserError
from app.local_redis import private_redis_server

log = logging.getLogger("stock_tracker.store")

DEFAULT_URL = "redis://127.0.0.1:6379/0"


# Redis is away for a while: down, restarting, loading, or a cluster between masters
# (a failover, CLUSTERDOWN, TRYAGAIN, MOVED/ASK the client could not follow, no node to
# ask). Long-running commands retry these; the API answers 503.
REDIS_DOWN: tuple[type[Exception], ...] = (
    RedisConnectionError, RedisTimeoutError, ClusterError, TryAgainError, AskError, RedisClusterException,
)
UNAVAILABLE: tuple[type[Exception], ...] = (*REDIS_DOWN, OSError)  # and the socket underneath
# Redis refused our credentials (a wrong or missing password, an ACL user without the
# right): waiting will not fix it. redis-py makes AuthenticationError a ConnectionError,
# so an ``except REDIS_DOWN`` catches it too: test for this first.
REDIS_AUTH: tuple[type[Exception], ...] = (AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError)


def auth_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing our credentials rather than being away."""
    return isinstance(exc, REDIS_AUTH)


def outage_event(exc: BaseException) -> tuple[int, str]:
    """The log level and event name of a failed Redis call: a refused password is an
    error only fixing REDIS_URL cures, anything else an outage to wait out."""
    return (logging.ERROR, "redis_auth_refused") if auth_refused(exc) else (logging.WARNING, "redis_unavailable")


def redis_from_url(url: str, max_connections: int = 64) -> "RedisClient":
    """The client for ``url``: a single Redis until :func:`detect` finds a cluster."""
    return RedisClient(url, max_connections)


def _single_from_url(url: str, max_connections: int) -> Redis:
    """A client whose pool waits for a free connection (up to 10 s) rather than
    failing at once when every connection is busy, as a burst of requests makes them."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, health_check_interval=30, decode_responses=False
    )
    return Redis.from_pool(pool)


def _cluster_from_url(url: str, max_connections: int) -> RedisCluster:
    """redis-py's cluster client from any one node's URL (it discovers the others).

    Few, quick retries inside the client: a failover takes seconds, and waiting it out
    is the caller's choice (long-running commands retry, the API answers 503 at once).
    """
    return RedisCluster.from_url(
        url, decode_responses=False, max_connections=max_connections * 4,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        # After a failover the slot map is stale: refresh it on the first MOVED.
        reinitialize_steps=1,
        # A slot without a master (mid-failover) must not stop the others' commands.
        require_full_coverage=False,
    )


class RedisClient:
    """The project's Redis client: one Redis, or a Redis Cluster once the server says so.

    Commands go to the client underneath (``redis.asyncio.Redis`` or
    ``redis.asyncio.cluster.RedisCluster``), so the rest of the code is the same for
    both. :func:`detect` asks the server (``INFO cluster``) and switches once; it runs
    when Redis first answers (``wait_for_redis``, the API's subscriber, the projector),
    so a command may start before Redis is up.
    """

    def __init__(self, url: str, max_connections: int = 64) -> None:
        self.url = url
        self.max_connections = max_connections
        self.client: Redis | RedisCluster = _single_from_url(url, max_connections)
        self.cluster = False
        self.detected = False
        self._raw: dict[str, Redis | RedisCluster] = {}
        self._slots: dict[int, RedisClient] = {}

    @classmethod
    def around(cls, client) -> "RedisClient":
        """Wrap a client made elsewhere (an in-process fake): a single Redis, as it is."""
        if isinstance(client, cls):
            return client
        wrapper = cls.__new__(cls)
        wrapper.url, wrapper.max_connections, wrapper.client = "", 0, client
        wrapper.cluster, wrapper.detected, wrapper._raw, wrapper._slots = False, True, {}, {}
        return wrapper

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def register_script(self, source: str) -> AsyncScript:
        # Bound to this wrapper, not to the client underneath, which detection may replace.
        return AsyncScript(self, source)

    async def detect(self) -> bool:
        """Ask the server once whether it is a cluster node; True for a cluster."""
        if self.detected:
            return self.cluster
        info = await self.client.info("cluster")
        if info.get("cluster_enabled") in (1, "1", b"1"):
            cluster = _cluster_from_url(self.url, self.max_connections)
            await cluster.initialize()
            single, self.client, self.cluster = self.client, cluster, True
            await single.aclose()
            log.info("event=store kind=cluster masters=%d", len(cluster.get_primaries()))
        self.detected = True
        return self.cluster

    def raw_replies(self, command: str) -> Redis | RedisCluster:
        """A client on the same server(s) whose ``command`` replies stay unparsed."""
        raw = self._raw.get(command)
        if raw is None:
            if self.cluster:
                # A cluster client keeps its reply parsers per instance: a second one.
                raw = _cluster_from_url(self.url, self.max_connections)
            else:
                raw = Redis(connection_pool=self.client.connection_pool)
            raw.set_response_callback(command, _identity)
            self._raw[command] = raw
        return raw

    def for_slot(self, key: str) -> "RedisClient":
        """A client for the keys of ``key``'s slot only: on a cluster, straight to its
        master (:mod:`app.slot_client`); on one Redis, this one."""
        if not self.cluster:
            return self
        slot = key_slot(key.encode())
        pinned = self._slots.get(slot)
        if pinned is None:
            from app.slot_client import SlotClient  # it builds on this class

            pinned = self._slots[slot] = SlotClient(self.client, self.url, key, self.max_connections)
        return pinned

    async def aclose(self) -> None:
        for raw in self._raw.values():
            if isinstance(raw, RedisCluster):
                await raw.aclose()
        self._raw.clear()
        for pinned in self._slots.values():
            await pinned.aclose()
        self._slots.clear()
        await self.client.aclose()


def _identity(response, **options):
    return response


async def connect(url: str, max_connections: int = 64) -> RedisClient:
    """A client for ``url`` with its mode already detected (Redis must answer)."""
    client = RedisClient(url, max_connections)
    try:
        await client.detect()
    except BaseException:
        await client.aclose()
        raise
    return client


async def detect(redis) -> bool:
    """Detect cluster mode of a :class:`RedisClient` (once); False for any other client."""
    return await redis.detect() if isinstance(redis, RedisClient) else False


def is_cluster(redis) -> bool:
    return isinstance(redis, RedisClient) and redis.cluster


def for_slot(redis, key: str):
    """A client for ``key``'s slot (see :meth:`RedisClient.for_slot`); any other client as it is."""
    return redis.for_slot(key) if isinstance(redis, RedisClient) else redis


def raw_replies(redis, command: str):
    """A client sharing ``redis``'s servers whose ``command`` replies are left unparsed."""
    if isinstance(redis, RedisClient):
        return redis.raw_replies(command)
    raw = Redis(connection_pool=redis.connection_pool)
    raw.set_response_callback(command, _identity)
    return raw


async def scan_slot(redis, pattern: str, key: str, type_: str | None = None) -> AsyncIterator[bytes]:
    """Keys matching ``pattern`` in ``key``'s slot, from the one node that holds it.

    A session's keys share one hash tag, so on a cluster they all sit on one master:
    scanning the others would only cost them time.
    """
    if not is_cluster(redis) or not isinstance(redis.client, RedisCluster):  # or one slot's client
        async for name in redis.scan_iter(match=pattern, count=1000, _type=type_):
            yield name
        return
    cluster: RedisCluster = redis.client
    node = cluster.get_node_from_key(key)
    cursor = 0
    extra = ("TYPE", type_) if type_ else ()
    while True:
        cursor, names = await cluster.execute_command(
            "SCAN", cursor, "MATCH", pattern, "COUNT", 1000, *extra, target_nodes=node
        )
        cursor = next(iter(cursor.values())) if isinstance(cursor, dict) else cursor  # {node: cursor}
        for name in names:
            yield name
        if int(cursor) == 0:
            return


@asynccontextmanager
async def open_redis(settings: Settings, embedded: bool = False) -> AsyncIterator[Redis]:
    """Yield a client for REDIS_URL; without it, an embedded store when allowed.

    Embedded means a private ``redis-server`` when one is on the PATH, else an
    in-process fakeredis (single process only).
    """
    if settings.redis_url or not embedded:
        url = settings.redis_url or DEFAULT_URL
        try:
            client = redis_from_url(url)
        except ValueError as exc:
            raise UserError(f"REDIS_URL is not a Redis URL ({exc}): {mask_password(url)}") from None
        try:
            yield client
        finally:
            await client.aclose()
        return
    binary = shutil.which("redis-server")
    if binary:
        with private_redis_server(binary) as url:
            log.info("event=store kind=redis-server url=%s", url)
            client = redis_from_url(url)
            try:
                yield client
            finally:
                await client.aclose()
        return
    import fakeredis

    log.info("event=store kind=fakeredis detail=in-process")
    client = RedisClient.around(fakeredis.FakeAsyncRedis(decode_responses=False))
    try:
        yield client
    finally:
        await client.aclose()


def redis_url_shown(settings: Settings) -> str:
    """The Redis URL a command uses, password masked, for messages."""
    return mask_password(settings.redis_url or DEFAULT_URL)


def auth_failure(settings: Settings, exc: BaseException) -> UserError:
    """The one line for Redis refusing our credentials (never the password itself)."""
    reason = redact.redact(str(exc).strip().rstrip(".")) or type(exc).__name__
    return UserError(
        f"Redis at {redis_url_shown(settings)} refused our credentials: {reason} (check the password in REDIS_URL)"
    )


async def wait_for_redis(redis: Redis, settings: Settings, wait_s: float | None) -> None:
    """Return once Redis answers PING; give up after ``wait_s`` seconds (None: never).

    One-shot commands wait out a short restart but end with one clear line rather
    than hang; long-running ones wait as long as it takes.
    """
    wait_s = None if wait_s is None else max(wait_s, 0.0)
    started = time.monotonic()
    deadline = None if wait_s is None else started + wait_s
    # A short wait ends in one line of its own; only a long one is worth a log line meanwhile.
    next_log = started if wait_s is None else started + 5
    delay, attempts = 0.05, 0
    while True:
        try:
            # A host that drops packets would hold a bare PING for minutes.
            left = None if deadline is None else max(deadline - time.monotonic(), 0.2)
            await asyncio.wait_for(_ping(redis), timeout=left)
        except REDIS_AUTH as exc:  # waiting will not fix a refused password
            raise auth_failure(settings, exc) from None
        except UNAVAILABLE as exc:
            attempts += 1
            if deadline is not None and time.monotonic() + delay > deadline:
                raise RedisUnavailable(
                    f"cannot reach Redis at {redis_url_shown(settings)} after {wait_s:g} s (REDIS_URL)"
                ) from None
            if time.monotonic() >= next_log:
                next_log += 10
                log.warning(
                    "event=redis_wait url=%s error=%s waited_s=%.0f",
                    redis_url_shown(settings), type(exc).__name__, time.monotonic() - started,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        if attempts:
            log.info("event=redis_back attempts=%d", attempts + 1)
        return


async def _ping(redis) -> None:
    """Redis answers, and the client knows whether it is a cluster."""
    await detect(redis)
    await redis.ping()


async def hgetall_many(redis: Redis, keys: list[str], chunk: int = 500) -> dict[str, dict[str, str]]:
    """HGETALL of many keys, pipelined in chunks; empty or missing hashes left out."""
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        async with redis.pipeline(transaction=False) as pipe:
            for key in part:
                pipe.hgetall(key)
            for key, data in zip(part, await pipe.execute()):
                if data:
                    out[key] = {as_str(f): as_str(v) for f, v in data.items()}
    return out


def as_str(value: str | bytes) -> str:
    """Replies are bytes (the client does not decode); names and fields are text."""
    return value.decode() if isinstance(value, bytes) else value
