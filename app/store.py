"""The Redis connection: the configured server, or an embedded store for demos."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from redis.asyncio import BlockingConnectionPool, Redis

from app.config import Settings

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
        client = redis_from_url(settings.redis_url or DEFAULT_URL)
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
                    out[key] = {_text(f): _text(v) for f, v in data.items()}
    return out


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self.url
            except OSError:
                time.sleep(0.02)
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
