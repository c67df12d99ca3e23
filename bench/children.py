"""The processes a bench starts: servers (`python -m app ...`) and client processes
(bench/api.py's `_ws`, `_http` and `_subs` entries), stopped in reverse order whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from rawws import HOST

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ENTRY = Path(__file__).resolve().parent / "api.py"


def raise_nofile() -> int:
    """Soft descriptor limit up to the hard one (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Children:
    """Every process the bench starts, stopped in reverse order whatever happens."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.servers: list[tuple[str, subprocess.Popen]] = []
        self.clients: list[asyncio.subprocess.Process] = []

    def server(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(os.path.join(self.logdir, f"{name}.log"), "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args], env=env, cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the bench, which stops them in order
        )
        log.close()
        self.servers.append((name, proc))
        return proc

    async def client(self, *args: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(CLIENT_ENTRY), *args, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 28, start_new_session=True,
        )
        self.clients.append(proc)
        return proc

    def check(self) -> None:
        for name, proc in self.servers:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str) -> str:
        try:
            return Path(self.logdir, f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def stop(self) -> None:
        for proc in self.clients:
            if proc.returncode is None:
                proc.kill()
        for proc in self.clients:
            await proc.wait()
        for _, proc in reversed(self.servers):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for _, proc in reversed(self.servers):
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class ClientProcess:
    """The bench's side of one client process: its hello line, then `dump` and `stop`
    (bench/rawws.py's `obey` on the other side)."""

    dump_timeout = 60.0

    def __init__(self, proc: asyncio.subprocess.Process, hello: dict) -> None:
        self.proc = proc
        self.ready = hello["ready"]
        self.failures = hello["failures"]

    @classmethod
    async def spawn(cls, children: Children, what: str, timeout: float, *args: str):
        """Start ``args`` (see `Children.client`) and wait for its hello line."""
        proc = await children.client(*args)
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{what} died while connecting")
        return cls(proc, json.loads(line))

    async def dump(self) -> dict:
        self.proc.stdin.write(b"dump\n")
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self.proc.stdout.readline(), self.dump_timeout))

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.stdin.write(b"stop\n")
            await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def wait_http(port: int, children: Children, timeout: float = 30.0) -> None:
    """Until the node on ``port`` answers /healthz (or one of ``children`` died)."""
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            children.check()
            try:
                if (await http.get(f"http://{HOST}:{port}/healthz", timeout=0.5)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the API node did not come up")
