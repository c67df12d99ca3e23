"""Secrets out of log lines: by their shape, and the configured values themselves.

Every record that reaches the root handler (ours, uvicorn's request lines,
``websockets``' header dumps at DEBUG, httpx, tracebacks) passes :class:`RedactFilter`,
which replaces its formatted message (and exception text) with a redacted copy:

- by shape: ``token=``/``connectionToken=``/``password=``/``secret=`` values (query
  strings, ``key=value``, JSON and reprs), ``Bearer``/``Basic`` credentials, JWTs,
  the password of ``scheme://user:password@host``;
- by value: each configured secret (:func:`secrets_of`), also URL-encoded.

Most lines hold none of these, so one cheap search decides whether to rewrite.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Iterable
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
# Shorter values would mask ordinary words all over the log; no real credential is this short.
MIN_SECRET_LEN = 4

_KEY = r"[\w-]*(?:token|secret|password|passwd|pwd|api[_-]?key)"
_SHAPES = (
    # token=..., "accessToken": "...", 'consumer_secret': '...', password=... (also %22-quoted)
    (re.compile(rf"(?i)\b({_KEY}(?:[\"']|%22)?\s*[=:]\s*(?:b?[\"']|%22)?)[^\"'&\s,;)}}\]]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[\w.~+/=-]+"), rf"\1\2{MASK}"),
    # A JWT: the header is base64url of '{"...', which always starts with "eyJ".
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), MASK),
    # scheme://user:password@host, scheme://:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{MASK}@"),
)
# A line holding none of these (lower-cased) has none of the shapes: most lines. Plain
# substring tests are several times cheaper than one case-insensitive regex search.
_TRIGGERS = ("token", "secret", "passw", "pwd", "key", "bearer", "basic", "eyj", "://")


class Redactor:
    """Masks secrets in text; ``secrets`` are literal values to mask wherever they appear."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for s in secrets:
            if s and len(s) >= MIN_SECRET_LEN:
                values.update((s, quote(s, safe=""), quote(s)))
        # Longest first: a secret containing another is masked whole.
        ordered = sorted(values, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._values is not None and self._values.search(text):
            text = self._values.sub(MASK, text)
        low = text.lower()
        if not any(t in low for t in _TRIGGERS):
            return text
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def __repr__(self) -> str:
        return "Redactor()"  # never the values


def secrets_of(settings) -> list[str]:
    """The secret values in ``settings`` (a :class:`app.config.Settings`)."""
    values = [settings.ssi_consumer_secret, settings.ws_token, settings.api_jwt_secret]
    values += [t.strip() for t in settings.api_tokens.split(",")]
    values.append(redis_password(settings.redis_url))
    return [v for v in values if v]


def redis_password(url: str) -> str:
    """The password in a Redis URL (userinfo or ``?password=``), or ""."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        found = parts.password or ""
    except ValueError:
        return ""
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if key.lower() == "password" and value:
            found = found or unquote(value)
    return unquote(found)


class RedactFilter(logging.Filter):
    """Rewrites each record's message and exception text, redacted; never drops one."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it, we must not break the record
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# Until logs.setup installs one knowing the configured secrets: shapes only.
_installed = RedactFilter(Redactor())


def install(secrets: Iterable[str] = ()) -> RedactFilter:
    """The process's filter, now also masking ``secrets``; the same object each call."""
    _installed.redactor = Redactor(secrets)
    return _installed


def current() -> RedactFilter:
    return _installed


# Loggers that may have handlers of their own (uvicorn's default log config gives its
# loggers theirs, with propagate off): their records are masked where they are made.
OWN_HANDLER_LOGGERS = ("uvicorn.error", "uvicorn.access")


def guard_loggers(names: Iterable[str] = OWN_HANDLER_LOGGERS) -> None:
    """Mask records made on ``names`` before any handler sees them (idempotent)."""
    for name in names:
        logging.getLogger(name).addFilter(_installed)  # addFilter skips one already there


def excepthook(kind, value, tb) -> None:
    """``sys.excepthook`` printing the traceback of an uncaught exception masked."""
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(redact(text))


def redact(text: str) -> str:
    """``text`` with the shapes and the installed secrets masked (for lines not logged)."""
    return _installed.redactor(text)
