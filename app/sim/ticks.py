"""Price grids: HOSE's tick table, HNX/UPCOM's flat 100 VND tick, price bands and rounding
(docs/ssi.md, Tick sizes, price bands and lots)."""
from __future__ import annotations

from typing import Callable

__all__ = [
    "hose_tick", "hose_tick_up", "hose_tick_down", "round_to_tick", "price_limits",
    "unit_tick", "unit_tick_up", "unit_tick_down",
    "flat_tick", "flat_tick_up", "flat_tick_down", "round_to_flat_tick",
]


def hose_tick(price: int) -> int:
    """HOSE stock tick size (VND) at a price level."""
    if price < 10_000:
        return 10
    if price < 50_000:
        return 50
    return 100


def hose_tick_up(price: int) -> int:
    """Next valid HOSE price above ``price`` (a valid price)."""
    return price + hose_tick(price)


def hose_tick_down(price: int) -> int:
    """Next valid HOSE price below ``price`` (a valid price)."""
    # The step below a band boundary is the lower band's tick (50,000 -> 49,950).
    return price - hose_tick(price - 1)


def round_to_tick(price: float) -> int:
    """Nearest valid HOSE price."""
    p = int(round(price))
    t = hose_tick(p)
    return int(round(p / t)) * t


def price_limits(ref: int, band_pct: int = 7, tick: Callable[[int], int] = hose_tick) -> tuple[int, int]:
    """(ceiling, floor): ref*(1±band) rounded down/up to a valid tick."""
    hi = ref * (100 + band_pct) // 100
    hi -= hi % tick(hi)
    lo = -(-ref * (100 - band_pct) // 100)
    lo += -lo % tick(lo)
    # A band narrower than one tick still leaves one tick of room each way.
    if hi <= ref:
        hi = ref + tick(ref)
    if lo >= ref:
        lo = ref - tick(ref - 1)
    return hi, lo


# HNX and UPCOM stocks: 100 VND at every price level.

def flat_tick(_price: int) -> int:
    return 100


def flat_tick_up(price: int) -> int:
    return price + 100


def flat_tick_down(price: int) -> int:
    return price - 100


def round_to_flat_tick(price: float) -> int:
    """Nearest valid HNX / UPCOM price (never below one tick)."""
    return max(100, int(round(price / 100)) * 100)


# Futures prices are kept in tenths of an index point, so their tick is one unit.

def unit_tick(_price: int) -> int:
    return 1


def unit_tick_up(price: int) -> int:
    return price + 1


def unit_tick_down(price: int) -> int:
    return price - 1
