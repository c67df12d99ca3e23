"""Which session (trading date) a raw frame is appended to.

The rule (docs/rules.md, "Routing a frame to its session"): a frame's session is its own
``TradingDate`` when that is a real calendar date no later than the day the frame was
received in Vietnam. Any other frame (no date, an impossible one such as 31/02, or one
after the receive date) joins the writer's current session: the session of the last
frame it routed by its own date, or the receive date before any. So a recorded file of
an earlier day with a few broken lines stays one session, and one hostile date cannot
open a session of its own. The frame is stored unchanged either way; the projector
dead-letters what it cannot fold.
"""

from __future__ import annotations

import functools
import re
from datetime import date

from app.clock import VN_TZ

_DAY_MS = 86_400_000
_VN_OFFSET_MS = int(VN_TZ.utcoffset(None).total_seconds() * 1000)

# TradingDate in a double-encoded Content (\"TradingDate\":\"20/07/2026\") or an object
# Content; the closing quote is required so "20/07/2026x" is not taken for a date.
_DATE_AT = re.compile(rb'TradingDate\\*"\s*:\s*\\*"([0-9]{2})/([0-9]{2})/([0-9]{4})\\*"')
_DATE_ANY_CASE = re.compile(rb'(?i)tradingdate\\*"\s*:\s*\\*"([0-9]{2})/([0-9]{2})/([0-9]{4})\\*"')


def trading_date_of(frame: bytes) -> str | None:
    """The frame's own TradingDate as YYYY-MM-DD when it is a real date, else None."""
    at = frame.find(b"TradingDate")
    # The feed's own spelling is found by a plain search; other casings by regex.
    m = _DATE_AT.match(frame, at) if at >= 0 else None
    if m is None:
        m = _DATE_ANY_CASE.search(frame)
        if m is None:
            return None
    return _real_date(*m.groups())


@functools.lru_cache(maxsize=256)
def _real_date(day: bytes, month: bytes, year: bytes) -> str | None:
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


@functools.lru_cache(maxsize=64)
def _vn_day(day_index: int) -> str:
    return date.fromordinal(date(1970, 1, 1).toordinal() + day_index).isoformat()


def receive_date(received_ms: int) -> str:
    """The Vietnam calendar date of a receive time (epoch ms)."""
    return _vn_day((received_ms + _VN_OFFSET_MS) // _DAY_MS)


class SessionRouter:
    """Routes one writer's frames; remembers the writer's current session."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: str | None = None

    def route(self, frame: bytes, received_ms: int) -> str:
        """The session date (YYYY-MM-DD) ``frame`` belongs to."""
        received = receive_date(received_ms)
        own = trading_date_of(frame)
        # ISO dates compare as text.
        if own is not None and own <= received:
            self.current = own
            return own
        return self.current or received
