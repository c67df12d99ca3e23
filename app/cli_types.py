"""Argument types of the ``stock-tracker`` command line: each checks one kind of value
and says, in one line, what it wanted (argparse turns that into exit 2)."""

from __future__ import annotations

import argparse
import math
import re
from datetime import date, time as time_of_day

from app.clock import parse_session_date


def speed(text: str) -> float:
    if text in ("max", "0"):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0 or 'max', got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text!r}")
    return value


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
