"""Failures the user can act on: the command line shows their message, not a traceback."""

from __future__ import annotations


class UserError(Exception):
    """An expected failure (bad input, a missing file, a service away, a busy port).

    ``stock-tracker`` prints ``stock-tracker: <message>`` on stderr and exits with
    ``code``; the message must be one line, safe to show (no secrets).
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RedisUnavailable(UserError):
    """Redis could not be reached within the time a command waits for it."""
