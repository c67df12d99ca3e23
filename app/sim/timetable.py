"""The trading day by second after midnight (Vietnam time): each board's session phases and intraday activity.

HOSE: ATO 09:00-09:15, LO to 11:30, break, LO 13:00-14:30, ATC to 14:45, closed.
HNX: LO from 09:00 (no ATO), the same break and ATC, then PLO at the closing price to 15:00.
UPCOM: LO 09:00-11:30 and 13:00-15:00, no auctions. Futures: ATO 08:45-09:00, then as HNX
without the PLO.
"""
from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "VN_TZ", "T_FUT_ATO", "T_OPEN", "T_LO1", "T_BREAK", "T_LO2", "T_ATC", "T_CLOSE", "T_MARKER",
    "LO_SECONDS", "stock_session", "futures_session", "hnx_session", "hnx_board_session", "upcom_session",
    "activity_profile", "next_weekday",
]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def _hms(h: int, m: int, s: int = 0) -> int:
    return h * 3600 + m * 60 + s


T_FUT_ATO = _hms(8, 45)  # futures opening auction
T_OPEN = _hms(9, 0)  # futures continuous, stocks' opening auction
T_LO1 = _hms(9, 15)  # stocks continuous
T_BREAK = _hms(11, 30)
T_LO2 = _hms(13, 0)
T_ATC = _hms(14, 30)  # closing auction
T_CLOSE = _hms(14, 45)
T_MARKER = _hms(15, 0)  # HNX's PLO and UPCOM end; the CLOSE marker event

# Seconds of continuous stock trading, used to scale per-event volatility.
LO_SECONDS = (T_BREAK - T_LO1) + (T_ATC - T_LO2)


def stock_session(s: int) -> str:
    # HOSE is HNX's timetable with an opening auction before continuous trading.
    return "ATO" if T_OPEN <= s < T_LO1 else hnx_session(s)


def futures_session(s: int) -> str:
    if s < T_FUT_ATO:
        return "C"
    if s < T_OPEN:
        return "ATO"
    return hnx_session(s)


def hnx_session(s: int) -> str:
    """Continuous from 09:00, ATC 14:30-14:45 (HNX without its PLO, and the futures after 09:00)."""
    if s < T_OPEN:
        return "C"
    if s < T_BREAK:
        return "LO"
    if s < T_LO2:
        return "BREAK"
    if s < T_ATC:
        return "LO"
    if s < T_CLOSE:
        return "ATC"
    return "C"


def hnx_board_session(s: int) -> str:
    """An HNX stock's session: after the ATC, PLO (orders at the closing price) until 15:00."""
    if T_CLOSE <= s < T_MARKER:
        return "PLO"
    return hnx_session(s)


def upcom_session(s: int) -> str:
    """UPCOM: continuous trading only, 09:00-11:30 and 13:00-15:00."""
    if s < T_OPEN or s >= T_MARKER:
        return "C"
    if T_BREAK <= s < T_LO2:
        return "BREAK"
    return "LO"


# Intraday activity: busy after the open and into the close, quiet before lunch.
_PROFILE_KNOTS = (
    (T_OPEN, 1.3), (T_LO1, 1.8), (_hms(9, 45), 1.15), (_hms(10, 30), 0.85),
    (T_BREAK, 0.7), (T_LO2, 0.85), (_hms(14, 0), 0.95), (T_ATC, 1.5),
)


def activity_profile(s: int) -> float:
    """Event-rate multiplier at second ``s`` (piecewise linear through the knots)."""
    k = _PROFILE_KNOTS
    if s <= k[0][0]:
        return k[0][1]
    for (t0, v0), (t1, v1) in zip(k, k[1:]):
        if s <= t1:
            return v0 + (v1 - v0) * (s - t0) / (t1 - t0)
    return k[-1][1]


def next_weekday(d: date) -> date:
    d += timedelta(days=1)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d
