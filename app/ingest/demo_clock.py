"""The demo's market clock: which simulated day and time to show, and how that time runs.

The demo plays one simulated trading day. :func:`plan` picks it from the wall clock so
the page trades at once whenever it is started; :class:`SimClock` tells the time on
that simulated market, so the 15:00 session close follows the simulation, not the wall.
"""

from __future__ import annotations

import asyncio
import time as time_
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from app.clock import VN_TZ, latest_weekday

# Continuous trading (HOSE), morning and afternoon: the opening auction prints at 09:15,
# the closing auction starts at 14:30.
CONTINUOUS = ((time(9, 15), time(11, 30)), (time(13, 0), time(14, 30)))
# Outside continuous trading the demo shows this time instead: 90 minutes of trading
# before lunch, and a catch-up of only the day's first hour.
FALLBACK = time(10, 0)
# Joining less than this before lunch or the closing auction would show trading for a
# moment and then a quiet market: take the fallback time instead.
RUNWAY = timedelta(minutes=5)


class DemoPlan(NamedTuple):
    """The simulated day (never after the real date), the time its live part starts
    from, and why that time (``real_time`` or why not)."""

    date: date
    start: time
    reason: str

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.date, self.start, VN_TZ)

    @property
    def real_time(self) -> bool:
        return self.reason == "real_time"


def plan(now: datetime) -> DemoPlan:
    """The day and time to simulate when the demo starts at ``now``.

    A weekday inside continuous trading (with some runway left) shows the real time;
    any other moment shows :data:`FALLBACK` of the latest weekday: a date after the real
    one would be refused by the session routing, and the simulator moves a weekend to
    Monday.
    """
    local = now.astimezone(VN_TZ)
    day = local.date()
    if day.weekday() >= 5:
        return DemoPlan(latest_weekday(day), FALLBACK, "weekend")
    clock = local.time().replace(microsecond=0, tzinfo=None)
    for opens, closes in CONTINUOUS:
        if opens <= clock < closes:
            left = datetime.combine(day, closes) - datetime.combine(day, clock)
            if left >= RUNWAY:
                return DemoPlan(day, clock, "real_time")
            return DemoPlan(day, FALLBACK, "lunch_soon" if closes == CONTINUOUS[0][1] else "close_soon")
    if clock < CONTINUOUS[0][0]:
        reason = "before_open"
    elif clock < CONTINUOUS[1][0]:
        reason = "lunch"
    else:
        reason = "after_hours"
    return DemoPlan(day, FALLBACK, reason)


class SimClock:
    """Time on the simulated market: frozen at the plan's start until the live part runs,
    then as the fake FastConnect paces its frames (``read`` gives its simulated now), on
    at ``speed`` by itself while the fake paces nothing, and never past ``end`` (the
    simulated day is over then: nothing is to happen after it, no next day's close)."""

    def __init__(self, start: datetime, speed: float, read: Callable[[], datetime | None] = lambda: None,
                 end: datetime | None = None, monotonic: Callable[[], float] = time_.monotonic) -> None:
        self.start = start
        self.speed = speed if speed > 0 else 1000.0
        self.read = read
        self.end = end
        self.monotonic = monotonic
        self._seen: tuple[datetime, float] | None = None  # the last reading and when
        self._last = start

    def now(self) -> datetime:
        current, mono = self.read(), self.monotonic()
        if current is not None:
            self._seen = (current, mono)
        elif self._seen is not None:  # the fake forgets its pacing when the day ends
            seen, at = self._seen
            current = seen + timedelta(seconds=(mono - at) * self.speed)
        if current is not None:
            if self.end is not None:
                current = min(current, self.end)
            self._last = max(self._last, current)  # never backwards
        return self._last

    async def sleep(self, seconds: float) -> None:
        """Until ``seconds`` of simulated time have passed (rechecked, as the pace may change)."""
        until = self.now() + timedelta(seconds=seconds)
        while (left := (until - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(left / self.speed, 1.0))
