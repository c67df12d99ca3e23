"""The boards' rules: price grid, band, board lot, book depth and timetable of HOSE, HNX,
UPCOM and the derivatives market (docs/ssi.md, Market hours and Tick sizes, price bands and lots)."""
from __future__ import annotations

from typing import Callable, NamedTuple

from app.sim.numbers import INT_TEXT, TENTHS_TEXT
from app.sim.ticks import (
    flat_tick, flat_tick_down, flat_tick_up, hose_tick, hose_tick_down, hose_tick_up, round_to_flat_tick,
    round_to_tick, unit_tick, unit_tick_down, unit_tick_up,
)
from app.sim.timetable import T_CLOSE, T_MARKER, futures_session, hnx_board_session, stock_session, upcom_session

__all__ = ["Exchange", "HOSE", "HNX", "UPCOM", "DERIVATIVES", "STOCK_EXCHANGES"]


class Exchange(NamedTuple):
    """One board. ``name`` and ``market`` are what its frames carry in Exchange and MarketId."""

    name: str
    market: str
    band_pct: int  # ceiling/floor around the reference price
    lot: int  # board lot (shares, or contracts)
    depth: int  # book levels SSI sends
    tick: Callable[[int], int]
    tick_up: Callable[[int], int]
    tick_down: Callable[[int], int]
    round: Callable[[float], int]  # nearest valid price
    session: Callable[[int], str]  # TradingSession at a second of the day
    opening_auction: bool  # ATO 09:00-09:15
    closing_auction: bool  # ATC 14:30-14:45
    post_close: bool  # PLO 14:45-15:00 at the closing price
    closes_at: int  # second of the day it shows C and sends its last foreign snapshot
    price_text: dict  # price -> frame text (VND, or tenths of a point)
    vwap_reference: bool  # the next day's reference is today's average price, not the close


HOSE = Exchange("HOSE", "HOSE", 7, 100, 3, hose_tick, hose_tick_up, hose_tick_down, round_to_tick,
                stock_session, True, True, False, T_CLOSE, INT_TEXT, False)
HNX = Exchange("HNX", "HNX", 10, 100, 10, flat_tick, flat_tick_up, flat_tick_down, round_to_flat_tick,
               hnx_board_session, False, True, True, T_MARKER, INT_TEXT, True)
UPCOM = Exchange("UPCOM", "UPCOM", 15, 100, 10, flat_tick, flat_tick_up, flat_tick_down, round_to_flat_tick,
                 upcom_session, False, False, False, T_MARKER, INT_TEXT, True)
DERIVATIVES = Exchange("DERIVATIVES", "DER", 7, 1, 10, unit_tick, unit_tick_up, unit_tick_down, round,
                       futures_session, True, True, False, T_CLOSE, TENTHS_TEXT, False)

STOCK_EXCHANGES = {ex.name: ex for ex in (HOSE, HNX, UPCOM)}
