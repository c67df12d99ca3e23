"""Vietnam market time: event timestamps, trading dates, the 15:00 close."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

# Vietnam has had no DST since 1975; a fixed offset avoids a tzdata dependency.
VN_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
SESSION_CLOSE = time(15, 0)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_session_date(text: str) -> str:
    """A session date as given on the command line or in ``?date=``: ``YYYY-MM-DD``,
    a real calendar day; ValueError (with a message fit to show) otherwise."""
    if _ISO_DATE.fullmatch(text):
        try:
            date.fromisoformat(text)
            return text
        except ValueError:
            pass
    raise ValueError(f"date must be a real calendar date YYYY-MM-DD: {text!r}")


def parse_trading_date(text: str) -> date:
    """SSI's ``dd/MM/yyyy`` to a date (ValueError when malformed)."""
    day, month, year = text.split("/")
    return date(int(year), int(month), int(day))


def parse_hms(text: str) -> int:
    """SSI's ``HH:mm:ss`` to seconds since midnight (ValueError when malformed)."""
    hh, mm, ss = text.split(":")
    h, m, s = int(hh), int(mm), int(ss)
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60):
        raise ValueError(f"time out of range: {text!r}")
    return h * 3600 + m * 60 + s


def iso_time(day: str, seconds: int) -> str:
    """ISO 8601 with the +07:00 offset for a session day and seconds of day."""
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{day}T{h:02d}:{m:02d}:{s:02d}+07:00"


def latest_weekday(day: date) -> date:
    """``day`` itself on a weekday, else the Friday before (markets close at weekends)."""
    return day - timedelta(days=max(0, day.weekday() - 4))


def now_vn() -> datetime:
    return datetime.now(VN_TZ)


def close_of(day: date) -> datetime:
    """15:00 Vietnam time on ``day``: when its session closes."""
    return datetime.combine(day, SESSION_CLOSE, VN_TZ)


def next_close(after: datetime) -> datetime:
    """The first 15:00 Vietnam time strictly after ``after``."""
    local = after.astimezone(VN_TZ)
    close = close_of(local.date())
    return close if close > local else close + timedelta(days=1)
