"""Local processes and ports: a free port, a check that one can be listened on, and a
throw-away ``redis-server`` (the embedded default, the tests and the benches)."""

from __future__ import annotations

import errno
import shutil
import socket
import subprocess
import tempfile
import time

from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from app.errors import UserError


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


def stop_process(proc: subprocess.Popen | None, grace_s: float) -> None:
    """Terminate ``proc`` (if it still runs) and wait; killed if it outlasts ``grace_s``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        stop_process(self.proc, 5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
