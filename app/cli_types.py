"""Argument types of the ``stock-tracker`` command line: each checks one kind of value
and says, in one line, what it wanted (argparse turns that into exit 2)."""

from __future__ import annotations

import argparse
import math
import re
from datetime import date, time as time_of_day

from app.clock import parse_session_date


def _number(text: str, cast, ok, wanted: str):
    """``cast(text)`` when ``ok`` says it is acceptable, else the one-line complaint."""
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def speed(text: str) -> float:
    """Simulated seconds per real second; 'max' (or 0) = as fast as possible."""
    if text in ("max", "0"):
        return 0.0
    return _number(text, float, _positive, "a number > 0 or 'max'")


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a whole number >= 1")


def positive_float(text: str) -> float:
    return _number(text, float, _positive, "a number > 0")


def port(text: str) -> int:
    return _number(text, int, lambda v: 1 <= v <= 65535, "a port number 1-65535")


def session_date(text: str) -> str:
    try:
        return parse_session_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def sim_date(text: str) -> date:
    day = date.fromisoformat(session_date(text))
    if day.weekday() >= 5:
        # The simulator would move it to Monday: a session the user did not ask for.
        raise argparse.ArgumentTypeError(f"{text} is a {day.strftime('%A')}: the market does not trade; give a weekday")
    return day


_HMS = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def start_time(text: str) -> time_of_day:
    m = _HMS.fullmatch(text)
    try:
        if m is None:
            raise ValueError
        h, mi, s = (int(g) if g else 0 for g in m.groups())
        return time_of_day(h, mi, s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a time of day HH:MM or HH:MM:SS, got {text!r}") from None


def channels(text: str) -> str:
    from app.sim import ALL_CHANNELS

    channels = [c.strip().upper() for c in text.split(",") if c.strip()]
    unknown = sorted(set(channels) - ALL_CHANNELS)
    if not channels or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown channels {', '.join(unknown) or '(none given)'}; choose from {','.join(sorted(ALL_CHANNELS))}"
        )
    return ",".join(channels)


def universe(text: str) -> str:
    from app.sim.universe import UNIVERSES

    name = text.strip().lower()
    if name not in UNIVERSES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(UNIVERSES)}, got {text!r}")
    return name
