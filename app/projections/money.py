"""Exact money: sums kept as integers, served as the JSON numbers clients expect.

Stock prices are whole VND and volumes whole shares, so stock values are integers;
futures prices have one decimal (0.1 point), so their values are kept in tenths of a
point. Summing integers keeps every total exact however many trades it adds up
(floats drift: ``2781572.099999999``).
"""

from __future__ import annotations

from app.schemas import Money


def tenths(amount: float) -> int:
    """A price or value in tenths (prices carry at most one decimal)."""
    return round(amount * 10)


def served(total_tenths: int, futures: bool = False) -> Money:
    """A sum in tenths as served: whole VND as an int; futures (or a fractional
    amount) as a float rounded to one decimal."""
    if not futures and total_tenths % 10 == 0:
        return total_tenths // 10
    return round(total_tenths / 10, 1)


def add(total: Money, volume: int, price: float, futures: bool = False) -> Money:
    """``total`` plus ``volume`` x ``price``, exactly."""
    return served(as_tenths(total) + volume * tenths(price), futures)


def as_tenths(amount: Money) -> int:
    """A served amount back in tenths (exact: ints are whole, floats have one decimal)."""
    return amount * 10 if type(amount) is int else round(amount * 10)


def hundredths(amount: float) -> int:
    """Index points (two decimals) in hundredths."""
    return round(amount * 100)


def price(amount: float, futures: bool = False) -> Money:
    """A price as served: whole VND as an int, futures points (one decimal) as a float."""
    return served(tenths(amount), futures)
