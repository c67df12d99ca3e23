"""The simulated universe: VN30 stocks with their prices and liquidity, the indices, and Instrument."""
from __future__ import annotations

import math
import random
from typing import Sequence

from app.sim.ticks import (
    hose_tick, hose_tick_down, hose_tick_up, round_to_tick, unit_tick, unit_tick_down, unit_tick_up,
)
from app.sim.numbers import INT_TEXT, TENTHS_TEXT

__all__ = ["VN30_SYMBOLS", "INDEX_IDS", "UNIVERSE", "Instrument", "make_stocks",
           "STOCK_EVENTS_PER_S", "FRONT_EVENTS_PER_S", "NEXT_EVENTS_PER_S"]

VN30_SYMBOLS: tuple[str, ...] = (
    "ACB", "BCM", "BID", "BVH", "CTG", "FPT", "GAS", "GVR", "HDB", "HPG",
    "LPB", "MBB", "MSN", "MWG", "PLX", "SAB", "SHB", "SSB", "SSI", "STB",
    "TCB", "TPB", "VCB", "VHM", "VIB", "VIC", "VJC", "VNM", "VPB", "VRE",
)
INDEX_IDS = ("VNINDEX", "VN30", "HNXIndex")

# symbol: (typical price VND, listed shares in millions, foreign ownership limit,
#          VN30 weight %, liquidity)
UNIVERSE = {
    "ACB": (25_000, 4_467, 0.30, 4.0, 2.5),
    "BCM": (62_000, 1_035, 0.49, 1.0, 0.4),
    "BID": (38_000, 7_021, 0.30, 2.5, 1.2),
    "BVH": (50_000, 742, 0.49, 0.6, 0.5),
    "CTG": (40_000, 7_370, 0.30, 3.0, 1.6),
    "FPT": (120_000, 1_471, 0.49, 8.0, 2.2),
    "GAS": (68_000, 2_342, 0.49, 1.8, 0.7),
    "GVR": (28_000, 4_000, 0.49, 1.4, 1.0),
    "HDB": (24_000, 3_500, 0.175, 3.0, 1.5),
    "HPG": (27_000, 6_396, 0.49, 7.0, 3.5),
    "LPB": (33_000, 2_987, 0.05, 2.0, 1.0),
    "MBB": (24_000, 6_100, 0.232, 5.5, 3.0),
    "MSN": (75_000, 1_438, 0.49, 3.5, 1.6),
    "MWG": (60_000, 1_462, 0.49, 4.0, 2.0),
    "PLX": (38_000, 1_270, 0.20, 0.9, 0.6),
    "SAB": (50_000, 1_282, 1.00, 0.9, 0.4),
    "SHB": (13_000, 4_000, 0.30, 2.0, 3.0),
    "SSB": (19_000, 2_500, 0.05, 0.8, 0.6),
    "SSI": (25_000, 1_961, 1.00, 2.5, 3.0),
    "STB": (38_000, 1_885, 0.30, 3.5, 2.8),
    "TCB": (25_000, 7_065, 0.225, 6.5, 2.6),
    "TPB": (15_000, 2_640, 0.30, 1.4, 1.4),
    "VCB": (60_000, 8_355, 0.30, 4.0, 1.0),
    "VHM": (45_000, 4_350, 0.49, 5.0, 2.2),
    "VIB": (20_000, 2_980, 0.205, 1.5, 1.2),
    "VIC": (45_000, 3_824, 0.49, 4.5, 1.8),
    "VJC": (100_000, 541, 0.49, 1.4, 0.5),
    "VNM": (62_000, 2_090, 1.00, 4.0, 1.3),
    "VPB": (19_000, 7_934, 0.25, 5.0, 2.8),
    "VRE": (25_000, 2_272, 0.49, 1.5, 1.5),
}

# Events per second across the whole basket (stocks) and per contract (futures),
# tuned so a default day is about 1M frames.
STOCK_EVENTS_PER_S = 33.0
FRONT_EVENTS_PER_S = 10.0
NEXT_EVENTS_PER_S = 0.6


class Instrument:
    """One tradable instrument's static data and live book/trade state.

    Stock prices are VND; futures prices are tenths of an index point. Books are
    lists of ``[price, volume]`` levels, best first.
    """

    __slots__ = (
        # what it is and its price grid
        "symbol", "is_stock", "exchange", "market", "depth", "lot", "tick", "tick_up", "tick_down",
        "price_text",  # price -> frame text cache (integral VND or tenths)
        # the day's limits and book
        "ref", "ceiling", "floor", "bids", "asks",
        "est_price",  # the auction's estimated match price
        # the day's trading so far
        "last", "last_vol", "open", "high", "low", "total_vol", "total_val",
        "trade_text", "trade_text_stale",  # cached X-frame trade fields
        # price dynamics
        "event_rate",  # events per second in continuous trading
        "index_weight", "beta", "idio_return", "sigma", "day_drift",
        "level_size_mu", "trade_size_mu",  # log-normal means of book level and order sizes
        "basis", "basis_mean",  # futures: premium over VN30 and what it reverts to
        # foreign room
        "total_room", "holding", "foreign_buy", "foreign_sell",
        "p_foreign_buy", "p_foreign_sell",  # chance a fill has a foreign buyer / seller
        # the day's frame templates
        "quote_tpl", "trade_tpl", "snapshot_tpl", "room_tpl", "status_tpl", "bar_tpl", "ref_text",
    )

    def __init__(self, sym: str, stock: bool) -> None:
        self.symbol = sym
        self.is_stock = stock
        if stock:
            self.depth, self.lot, self.price_text = 3, 100, INT_TEXT
            self.tick, self.tick_up, self.tick_down = hose_tick, hose_tick_up, hose_tick_down
            self.exchange = self.market = "HOSE"
        else:
            self.depth, self.lot, self.price_text = 10, 1, TENTHS_TEXT
            self.tick, self.tick_up, self.tick_down = unit_tick, unit_tick_up, unit_tick_down
            self.exchange, self.market = "DERIVATIVES", "DER"
        self.event_rate = 0.0
        self.ref = self.ceiling = self.floor = 0
        self.index_weight = self.beta = self.idio_return = self.sigma = self.day_drift = 0.0
        self.level_size_mu = self.trade_size_mu = 0.0
        self.total_room = self.holding = 0
        self.p_foreign_buy = self.p_foreign_sell = 0.0
        self.basis = self.basis_mean = 0.0
        self.new_day(0)

    def new_day(self, ref: int) -> None:
        self.ref = ref
        self.bids: list[list[int]] = []
        self.asks: list[list[int]] = []
        self.last = self.last_vol = self.open = self.high = self.low = 0
        self.total_vol = self.total_val = 0
        self.est_price = ref
        self.trade_text_stale = True
        self.trade_text: tuple[str, ...] = ()
        self.foreign_buy = self.foreign_sell = 0
        self.idio_return = 0.0


def make_stocks(symbols: Sequence[str], rng: random.Random) -> list[Instrument]:
    """The stocks with their static data; unknown symbols get random plausible values."""
    stocks: list[Instrument] = []
    liq_total = 0.0
    for sym in symbols:
        ins = Instrument(sym, True)
        if sym in UNIVERSE:
            px, shares_m, fol, weight, liq = UNIVERSE[sym]
        else:
            px = rng.choice((8_000, 15_000, 25_000, 40_000, 70_000))
            shares_m, fol, weight, liq = rng.randint(500, 5_000), 0.49, 1.0, 1.0
        ref = round_to_tick(px * rng.uniform(0.85, 1.15))
        ins.new_day(ref)
        ins.index_weight = weight / ref  # share-like weight so the index is price weighted
        ins.beta = rng.uniform(0.7, 1.3)
        ins.event_rate = liq
        liq_total += liq
        ins.level_size_mu = 3.3 + 0.35 * math.log(liq + 0.5)
        ins.trade_size_mu = 1.4 + 0.3 * math.log(liq + 0.5)
        listed = shares_m * 1_000_000 + rng.randint(0, 999_999)
        ins.total_room = int(listed * fol)
        # Some names sit at (or next to) their foreign limit, as on the real board.
        if rng.random() < 0.2:
            ins.holding = ins.total_room - rng.randint(0, 200_000)
        else:
            ins.holding = int(ins.total_room * rng.uniform(0.3, 0.97))
        ins.p_foreign_buy = rng.uniform(0.04, 0.22)
        ins.p_foreign_sell = rng.uniform(0.04, 0.22)
        stocks.append(ins)
    for ins in stocks:
        ins.event_rate = STOCK_EVENTS_PER_S * ins.event_rate / liq_total
    return stocks
