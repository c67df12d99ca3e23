import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from app.futures import (  # noqa: E402
    contract_months,
    front_and_next,
    is_vn30_future,
    krx_code,
    legacy_code,
    parse_contract,
    third_thursday,
)

YEAR_CHARS = "0123456789ABCDEFGHJKLMNPQRSTVW"
MONTH_CHARS = "123456789ABC"


def _third_thursday_by_counting(year, month):
    d, seen = date(year, month, 1), 0
    while True:
        if d.weekday() == 3:
            seen += 1
            if seen == 3:
                return d
        d += timedelta(days=1)


def _next_month(y, m):
    return (y + 1, 1) if m == 12 else (y, m + 1)


def _expected_months(d):
    """Independent oracle: first month whose last trading day is not yet past."""
    y, m = d.year, d.month
    while _third_thursday_by_counting(y, m) < d:
        y, m = _next_month(y, m)
    return (y, m), _next_month(y, m)


def _expected_legacy(y, m):
    return "VN30F" + str(y)[2:] + f"{m:02d}"


def _expected_krx(y, m):
    return "41I1" + YEAR_CHARS[y - 2010] + MONTH_CHARS[m - 1] + "000"


def _days(year):
    d = date(year, 1, 1)
    while d.year == year:
        yield d
        d += timedelta(days=1)


# ---- third Thursday ---------------------------------------------------------


@pytest.mark.parametrize("year", [2024, 2025, 2026, 2027, 2028])
def test_third_thursday_matches_counting(year):
    for month in range(1, 13):
        tt = third_thursday(year, month)
        assert tt == _third_thursday_by_counting(year, month)
        assert tt.weekday() == 3 and 15 <= tt.day <= 21


def test_third_thursday_known_2026_dates():
    assert third_thursday(2026, 1) == date(2026, 1, 15)  # earliest possible
    assert third_thursday(2026, 5) == date(2026, 5, 21)  # latest possible
    assert third_thursday(2026, 10) == date(2026, 10, 15)
    assert third_thursday(2026, 2) == date(2026, 2, 19)
    assert third_thursday(2026, 12) == date(2026, 12, 17)


# ---- a whole year of dates --------------------------------------------------


def test_every_day_of_2026_both_namings():
    for d in _days(2026):
        front, nxt = _expected_months(d)
        assert contract_months(d) == (front, nxt), d
        assert front_and_next(d) == (_expected_legacy(*front), _expected_legacy(*nxt)), d
        assert front_and_next(d, "legacy") == front_and_next(d), d
        assert front_and_next(d, "krx") == (_expected_krx(*front), _expected_krx(*nxt)), d


def test_front_is_always_current_or_next_month():
    for d in _days(2026):
        (fy, fm), _ = contract_months(d)
        if d <= third_thursday(d.year, d.month):
            assert (fy, fm) == (d.year, d.month)
        else:
            assert (fy, fm) == _next_month(d.year, d.month)


@pytest.mark.parametrize(
    "d, legacy, krx",
    [
        # January 2026: third Thursday is the 15th (earliest possible).
        (date(2026, 1, 14), ("VN30F2601", "VN30F2602"), ("41I1G1000", "41I1G2000")),
        (date(2026, 1, 15), ("VN30F2601", "VN30F2602"), ("41I1G1000", "41I1G2000")),
        (date(2026, 1, 16), ("VN30F2602", "VN30F2603"), ("41I1G2000", "41I1G3000")),
        # May 2026: third Thursday is the 21st (latest possible).
        (date(2026, 5, 15), ("VN30F2605", "VN30F2606"), ("41I1G5000", "41I1G6000")),
        (date(2026, 5, 20), ("VN30F2605", "VN30F2606"), ("41I1G5000", "41I1G6000")),
        (date(2026, 5, 21), ("VN30F2605", "VN30F2606"), ("41I1G5000", "41I1G6000")),
        (date(2026, 5, 22), ("VN30F2606", "VN30F2607"), ("41I1G6000", "41I1G7000")),
        # October 2026: 15th; next contract code uses month char A, B.
        (date(2026, 10, 15), ("VN30F2610", "VN30F2611"), ("41I1GA000", "41I1GB000")),
        (date(2026, 10, 16), ("VN30F2611", "VN30F2612"), ("41I1GB000", "41I1GC000")),
        # Year rollover: after Dec's last trading day the next contract is January.
        (date(2026, 12, 17), ("VN30F2612", "VN30F2701"), ("41I1GC000", "41I1H1000")),
        (date(2026, 12, 18), ("VN30F2701", "VN30F2702"), ("41I1H1000", "41I1H2000")),
        (date(2026, 12, 31), ("VN30F2701", "VN30F2702"), ("41I1H1000", "41I1H2000")),
        (date(2026, 11, 20), ("VN30F2612", "VN30F2701"), ("41I1GC000", "41I1H1000")),
        (date(2027, 1, 1), ("VN30F2701", "VN30F2702"), ("41I1H1000", "41I1H2000")),
    ],
)
def test_front_and_next_boundaries(d, legacy, krx):
    assert front_and_next(d) == legacy
    assert front_and_next(d, "krx") == krx


def test_unknown_naming_rejected():
    with pytest.raises(ValueError):
        front_and_next(date(2026, 2, 2), "bloomberg")


# ---- code formats -----------------------------------------------------------


@pytest.mark.parametrize(
    "year, month, legacy, krx",
    [
        (2025, 4, "VN30F2504", "41I1F4000"),
        (2026, 2, "VN30F2602", "41I1G2000"),
        (2026, 3, "VN30F2603", "41I1G3000"),
        (2025, 10, "VN30F2510", "41I1FA000"),
        (2025, 11, "VN30F2511", "41I1FB000"),
        (2025, 12, "VN30F2512", "41I1FC000"),
        (2021, 4, "VN30F2104", "41I1B4000"),
        (2010, 1, "VN30F1001", "41I101000"),
        (2030, 1, "VN30F3001", "41I1L1000"),
    ],
)
def test_documented_codes(year, month, legacy, krx):
    assert legacy_code(year, month) == legacy
    assert krx_code(year, month) == krx


def test_krx_year_alphabet_skips_i_o_u():
    chars = [krx_code(y, 1)[4] for y in range(2010, 2040)]
    assert "".join(chars) == YEAR_CHARS
    assert not {"I", "O", "U"} & set(chars)
    assert len(set(chars)) == 30


def test_krx_out_of_range_year_rejected():
    with pytest.raises(ValueError):
        krx_code(2009, 1)
    with pytest.raises(ValueError):
        krx_code(2040, 1)
    with pytest.raises(ValueError):
        legacy_code(2026, 13)


def test_round_trip_both_forms():
    for y in range(2010, 2040):
        for m in range(1, 13):
            assert parse_contract(legacy_code(y, m)) == (y, m)
            assert parse_contract(krx_code(y, m)) == (y, m)
            assert is_vn30_future(legacy_code(y, m))
            assert is_vn30_future(krx_code(y, m))


def test_round_trip_for_every_2026_code():
    for d in _days(2026):
        months = contract_months(d)
        for naming in ("legacy", "krx"):
            codes = front_and_next(d, naming)
            assert tuple(parse_contract(c) for c in codes) == months


@pytest.mark.parametrize(
    "symbol",
    [
        "VN30",
        "VN30F",
        "VN30F1M",
        "VN30F2M",
        "VN30F1Q",
        "VN30F260",
        "VN30F26021",
        "VN30F2613",
        "VN30F2600",
        "vn30f2602",
        " VN30F2602",
        "VN30F2602 ",
        "VN100F2602",
        "41I2G2000",  # VN100 futures
        "41I1G2001",
        "41I1G200",
        "41I1GD000",  # no month D
        "41I1G0000",  # no month 0
        "41I1I2000",  # I is not a year symbol
        "41I1O2000",
        "41I1U2000",
        "41I1X2000",  # beyond the 30-symbol alphabet
        "41i1G2000",
        "HPG",
        "",
        "VN30F２６０２",  # full-width digits
    ],
)
def test_negatives(symbol):
    assert not is_vn30_future(symbol)
    assert parse_contract(symbol) is None


def test_non_string_is_not_a_future():
    assert not is_vn30_future(None)  # type: ignore[arg-type]
    assert parse_contract(2602) is None  # type: ignore[arg-type]
