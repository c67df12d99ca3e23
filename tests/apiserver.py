"""Run ``stock-tracker serve`` as a real uvicorn process for the API tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.local_redis import free_port, stop_process


class ApiServer:
    """One API node on a free port, configured by environment like production."""

    def __init__(self, redis_url: str, *, log_to_file: bool = False, **env: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", **env}
        self.proc: subprocess.Popen | None = None
        # A file rather than a pipe for a node that logs much (DEBUG would fill a pipe).
        self.log = tempfile.NamedTemporaryFile(prefix="node-", suffix=".log", delete=False) if log_to_file else None

    def stderr(self) -> str:
        """What the node wrote to stderr (``log_to_file`` nodes)."""
        return Path(self.log.name).read_text(errors="replace") if self.log else ""

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log or subprocess.PIPE,
        )

    async def astart(self, timeout: float = 30.0) -> "ApiServer":
        """``start`` for a test whose event loop must keep running meanwhile."""
        self._spawn()

        async def healthy() -> bool:
            assert self.proc.poll() is None, self.stderr()[-2000:]
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(self.http + "/healthz", timeout=0.5)).status_code == 200
            except httpx.HTTPError:
                return False

        await until(healthy, timeout=timeout, interval=0.05)
        return self

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ApiServer":
        self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("API server exited: " + (self.stderr() or self.proc.stderr.read().decode())[-2000:])
            try:
                if httpx.get(self.http + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("API server did not come up")

    def stop(self) -> None:
        stop_process(self.proc, 10)

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def until(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll an async predicate until it returns something truthy (or fail)."""
    async with asyncio.timeout(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(interval)
