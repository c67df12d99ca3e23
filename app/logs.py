"""Structured logs: one line per event, ``key=value`` (default) or JSON (LOG_FORMAT=json).

Every record passes :mod:`app.redact` on its way out, whichever library logged it.
"""

from __future__ import annotations

import logging
import sys
from typing import Iterable

import orjson

from app import redact


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": self.formatTime(record), "level": record.levelname, "logger": record.name}
        for part in record.getMessage().split():
            key, sep, value = part.partition("=")
            if sep:
                fields[key] = value
            else:
                fields.setdefault("msg", []).append(part)
        if record.exc_info or record.exc_text:
            # exc_text: the redacted traceback the handler's filter left on the record.
            fields["exc"] = record.exc_text or self.formatException(record.exc_info)
        return orjson.dumps(fields).decode()


def setup(fmt: str = "kv", level: str = "INFO", *, settings=None, secrets: Iterable[str] = ()) -> None:
    """Log to stderr at ``level``; the secrets of ``settings`` (and ``secrets``) are masked."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    values = [*secrets, *(redact.secrets_of(settings) if settings is not None else ())]
    handler.addFilter(redact.install(values))
    redact.guard_loggers()
    sys.excepthook = redact.excepthook  # a bug's traceback may quote a URL or a header
    root = logging.getLogger()
    root.setLevel(level.upper())  # first: an unknown level raises before anything changes
    root.handlers[:] = [handler]
    # httpx logs every request URL at INFO, SignalR connection tokens included (masked, but noisy).
    logging.getLogger("httpx").setLevel(logging.WARNING)
