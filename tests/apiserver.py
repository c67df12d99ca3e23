"""Run ``stock-tracker serve`` as a real uvicorn process for the API tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx

from app.store import free_port


class ApiServer:
    """One API node on a free port, configured by environment like production."""

    def __init__(self, redis_url: str, **env: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", **env}
        self.proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ApiServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("API server exited: " + self.proc.stderr.read().decode()[-2000:])
            try:
                if httpx.get(self.http + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("API server did not come up")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

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
