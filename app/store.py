"""The Redis connection: the configured server, or an embedded store for demos."""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from redis import Redis as SyncRedis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings, mask_password
from app.errors import RedisUnavailable, UserError

log = logging.getLogger("stock_tracker.store")

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_from_url(url: str, max_connections: int = 64) -> Redis:
    """A client whose pool waits for a free connection (up to 10 s) rather than
    failing at once when every connection is busy, as a burst of requests makes them."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, health_check_interval=30, decode_responses=False
    )
    return Redis.from_pool(pool)


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
    client = fakeredis.FakeAsyncRedis(decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()


def redis_url_shown(settings: Settings) -> str:
    """The Redis URL a command uses, password masked, for messages."""
    return mask_password(settings.redis_url or DEFAULT_URL)


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
            await asyncio.wait_for(redis.ping(), timeout=left)
        except AuthenticationError as exc:  # waiting will not fix a refused password
            raise UserError(f"Redis at {redis_url_shown(settings)} refused us: {exc} (REDIS_URL)") from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(host: str, port: int, option: str = "--port") -> None:
    """Raise a UserError unless ``host:port`` can be listened on (as uvicorn would)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is already in use (choose another with {option})") from None
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class private_redis_server:
    """A throw-away ``redis-server`` on a free port with its files in a temp dir."""

    def __init__(self, binary: str = "redis-server", port: int | None = None, appendonly: bool = False):
        self.binary = binary
        self.port = port or free_port()
        self.appendonly = appendonly
        self.dir = tempfile.mkdtemp(prefix="stock-tracker-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        """Start the server and return its URL; on any failure nothing is left behind."""
        try:
            return self._start()
        except BaseException:
            self.cleanup()
            raise

    def _start(self) -> str:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
            "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
        ]
        # Its own session: a Ctrl-C meant for us must not kill the store under us.
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with SyncRedis(host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.2) as probe:
                    pid = probe.info("server").get("process_id")
            except (RedisError, OSError):
                time.sleep(0.02)
                continue
            if pid != self.proc.pid:
                # Someone else's server answers on the port; ours could not bind it.
                raise RuntimeError(f"port {self.port} is taken by another redis-server (pid {pid})")
            return self.url
        raise RuntimeError("redis-server did not answer within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
