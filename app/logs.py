"""Structured logs: one line per event, ``key=value`` (default) or JSON (LOG_FORMAT=json)."""

from __future__ import annotations

import logging
import sys

import orjson


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": self.formatTime(record), "level": record.levelname, "logger": record.name}
        for part in record.getMessage().split():
            key, sep, value = part.partition("=")
            if sep:
                fields[key] = value
            else:
                fields.setdefault("msg", []).append(part)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(fields).decode()


def setup(fmt: str = "kv", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, SignalR connection tokens included.
    logging.getLogger("httpx").setLevel(logging.WARNING)
