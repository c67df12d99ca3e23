"""VN30 index futures contract codes: legacy ``VN30FYYMM`` and post-KRX ``41I1YM000``."""
from __future__ import annotations

import re
from datetime import date, timedelta

__all__ = [
    "third_thursday",
    "contract_months",
    "legacy_code",
    "krx_code",
    "front_and_next",
    "is_vn30_future",
    "parse_contract",
]

# KRX year alphabet: 30 symbols (0-9, then A-W skipping I, O and U), base year 2010.
_KRX_YEARS = "0123456789ABCDEFGHJKLMNPQRSTVW"
_KRX_BASE = 2010
_KRX_MONTHS = "123456789ABC"

_LEGACY_RE = re.compile(r"VN30F([0-9]{2})([0-9]{2})")
_KRX_RE = re.compile(rf"41I1([{_KRX_YEARS}])([{_KRX_MONTHS}])000")


def third_thursday(year: int, month: int) -> date:
    """Third Thursday of the month: the contract's last trading day."""
    first = date(year, month, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 14)


def _add_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def contract_months(d: date) -> tuple[tuple[int, int], tuple[int, int]]:
    """(year, month) of the front and next contracts trading on ``d``."""
    front = (d.year, d.month)
    # The current month's contract still trades on its last trading day.
    if d > third_thursday(d.year, d.month):
        front = _add_month(*front)
    return front, _add_month(*front)


def legacy_code(year: int, month: int) -> str:
    """``VN30F`` + yymm, e.g. ``VN30F2602``."""
    if not 2000 <= year <= 2099 or not 1 <= month <= 12:
        raise ValueError(f"no legacy code for {year}-{month}")
    return f"VN30F{year % 100:02d}{month:02d}"


def krx_code(year: int, month: int) -> str:
    """Post-KRX code, e.g. ``41I1G2000`` for Feb 2026."""
    idx = year - _KRX_BASE
    # The 30-symbol year cycle repeats; refuse years it cannot tell apart.
    if not 0 <= idx < len(_KRX_YEARS) or not 1 <= month <= 12:
        raise ValueError(f"no KRX code for {year}-{month}")
    return f"41I1{_KRX_YEARS[idx]}{_KRX_MONTHS[month - 1]}000"


_NAMINGS = {"legacy": legacy_code, "krx": krx_code}


def front_and_next(d: date, naming: str = "legacy") -> tuple[str, str]:
    """Codes of the front and next month contracts on ``d``."""
    try:
        code = _NAMINGS[naming]
    except KeyError:
        raise ValueError(f"naming must be 'legacy' or 'krx', not {naming!r}") from None
    front, nxt = contract_months(d)
    return code(*front), code(*nxt)


def parse_contract(symbol: str) -> tuple[int, int] | None:
    """(year, month) of a VN30 futures code in either form, else None."""
    if not isinstance(symbol, str):
        return None
    m = _LEGACY_RE.fullmatch(symbol)
    if m:
        month = int(m.group(2))
        return (2000 + int(m.group(1)), month) if 1 <= month <= 12 else None
    m = _KRX_RE.fullmatch(symbol)
    if m:
        return (_KRX_BASE + _KRX_YEARS.index(m.group(1)), _KRX_MONTHS.index(m.group(2)) + 1)
    return None


def is_vn30_future(symbol: str) -> bool:
    """True for a VN30 index futures contract code (legacy or KRX form)."""
    return parse_contract(symbol) is not None
