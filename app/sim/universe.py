"""The simulated universe: which stocks are listed where, with their static data, and the indices.

``vn30`` is the VN30 basket alone (the rest of the market is only sampled into the
indices); ``hose``, ``hnx``, ``upcom`` and ``all`` list every stock of those boards:
about 400 on HOSE (the VN30 among them), 300 on HNX and 900 on UPCOM. Apart from the
VN30 the names are made up: three letters, the same for every seed and universe.
Liquidity is skewed as on the real boards: a stock's share of its board's events
falls with its rank like a Zipf law, so a few names trade most.
"""
from __future__ import annotations

import math
import random
from typing import NamedTuple, Sequence

from app.sim.exchanges import HNX, HOSE, UPCOM, Exchange
from app.sim.instrument import Instrument
from app.sim.ticks import round_to_tick

__all__ = ["VN30_SYMBOLS", "INDEX_IDS", "UNIVERSES", "VN30_DATA", "Universe", "make_stocks", "make_universe",
           "STOCK_EVENTS_PER_S", "FRONT_EVENTS_PER_S", "NEXT_EVENTS_PER_S"]

VN30_SYMBOLS: tuple[str, ...] = (
    "ACB", "BCM", "BID", "BVH", "CTG", "FPT", "GAS", "GVR", "HDB", "HPG",
    "LPB", "MBB", "MSN", "MWG", "PLX", "SAB", "SHB", "SSB", "SSI", "STB",
    "TCB", "TPB", "VCB", "VHM", "VIB", "VIC", "VJC", "VNM", "VPB", "VRE",
)
INDEX_IDS = ("VNINDEX", "VN30", "HNXIndex")  # the vn30 universe's indices
UNIVERSES = ("vn30", "hose", "hnx", "upcom", "all")

# symbol: (typical price VND, listed shares in millions, foreign ownership limit,
#          VN30 weight %, liquidity)
VN30_DATA = {
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


def make_stocks(symbols: Sequence[str], rng: random.Random) -> list[Instrument]:
    """The stocks with their static data; unknown symbols get random plausible values."""
    stocks: list[Instrument] = []
    liq_total = 0.0
    for sym in symbols:
        ins = Instrument(sym, HOSE)
        if sym in VN30_DATA:
            px, shares_m, fol, weight, liq = VN30_DATA[sym]
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
        listed = ins.shares = shares_m * 1_000_000 + rng.randint(0, 999_999)
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


# Listed stocks per board (the VN30 among HOSE's) and their events per second of continuous
# trading outside the VN30: a full-market day is about 3M frames.
LISTED = {"HOSE": 400, "HNX": 300, "UPCOM": 900}
BOARD_EVENTS_PER_S = {"HOSE": 30.0, "HNX": 14.0, "UPCOM": 14.0}
_ZIPF_S = 1.1
# The VN30's events per unit of its liquidity column: the scale the others' sizes are set on.
_PER_LIQ = STOCK_EVENTS_PER_S / sum(v[4] for v in VN30_DATA.values())
# Board -> (median price VND, median listed shares in millions, daily volatility range).
_PROFILE = {
    "HOSE": (22_000, 150, (0.010, 0.022)),
    "HNX": (14_000, 60, (0.012, 0.028)),
    "UPCOM": (11_000, 50, (0.012, 0.035)),
}
_LETTERS = "ABCDEFGHIKLMNOPQRSTUVXY"
# Words the API and SwitchChannels read as something else than a symbol.
_RESERVED = frozenset({"ALL", "HNX", "DER", "HSX"})


class Universe(NamedTuple):
    stocks: list[Instrument]
    indices: dict[str, tuple[str, list[Instrument]]]  # index id -> (its exchange, constituents)
    futures: bool  # VN30 futures trade beside it (they need the VN30)


def _names(counts: Sequence[int]) -> list[list[str]]:
    """Made-up three-letter symbols, ``counts[i]`` for board i, unique and never a VN30 name."""
    rng = random.Random("ssi-sim/universe/names")
    taken = set(VN30_SYMBOLS) | _RESERVED
    out: list[list[str]] = []
    for n in counts:
        names: list[str] = []
        while len(names) < n:
            s = "".join(rng.choice(_LETTERS) for _ in range(3))
            if s not in taken:
                taken.add(s)
                names.append(s)
        out.append(names)
    return out


def _board_stocks(board: Exchange, names: list[str], seed: int) -> list[Instrument]:
    """A board's stocks, most liquid first, with plausible prices, sizes and foreign rooms."""
    rng = random.Random(f"ssi-sim/{seed}/static/{board.name}")
    median_px, median_shares, vol_range = _PROFILE[board.name]
    zipf = [1.0 / (r + 2) ** _ZIPF_S for r in range(len(names))]
    zipf_total = sum(zipf)
    stocks = []
    for sym, z in zip(names, zipf):
        ins = Instrument(sym, board)
        px = min(250_000.0, max(1_500.0, math.exp(rng.gauss(math.log(median_px), 0.75))))
        ins.new_day(board.round(px))
        ins.beta = rng.uniform(0.4, 1.3)
        ins.daily_vol = vol_range
        ins.event_rate = BOARD_EVENTS_PER_S[board.name] * z / zipf_total
        liq = ins.event_rate / _PER_LIQ  # on the VN30's liquidity scale
        ins.level_size_mu = 3.3 + 0.35 * math.log(liq + 0.5)
        ins.trade_size_mu = 1.4 + 0.3 * math.log(liq + 0.5)
        # Thin names move their auction estimate less often and match fewer orders.
        ins.auction_p = min(1.0, math.sqrt(liq))
        ins.auction_fills = min(1.0, max(0.5, liq ** 0.4))
        ins.room_every = min(30.0, max(1.0, 1.0 / liq))
        shares = min(4_000.0, max(5.0, math.exp(rng.gauss(math.log(median_shares), 1.0))))
        ins.shares = int(shares * 1_000_000) // 100 * 100
        ins.total_room = int(ins.shares * rng.choice((0.49, 0.49, 0.49, 0.3, 0.5, 1.0)))
        ins.holding = int(ins.total_room * rng.uniform(0.0, 0.9))
        ins.p_foreign_buy = rng.uniform(0.01, 0.15)
        ins.p_foreign_sell = rng.uniform(0.01, 0.15)
        stocks.append(ins)
    return stocks


def make_universe(name: str, seed: int, rng: random.Random) -> Universe:
    """The stocks and indices of universe ``name`` (one of UNIVERSES); ``rng`` draws the VN30's data."""
    if name not in UNIVERSES:
        raise ValueError(f"universe must be one of {', '.join(UNIVERSES)}")
    vn30 = make_stocks(VN30_SYMBOLS, rng)
    if name == "vn30":
        return Universe(vn30, {}, True)
    hose_names, hnx_names, upcom_names = _names([LISTED["HOSE"] - len(vn30), LISTED["HNX"], LISTED["UPCOM"]])
    stocks: list[Instrument] = []
    indices: dict[str, tuple[str, list[Instrument]]] = {}
    if name in ("hose", "all"):
        rest = _board_stocks(HOSE, hose_names, seed)
        stocks += vn30 + rest
        indices["VNINDEX"] = ("HOSE", vn30 + rest)
        indices["VN30"] = ("HOSE", vn30)
        indices["VN100"] = ("HOSE", vn30 + rest[:70])
    if name in ("hnx", "all"):
        hnx = _board_stocks(HNX, hnx_names, seed)
        stocks += hnx
        indices["HNXIndex"] = ("HNX", hnx)
        indices["HNX30"] = ("HNX", hnx[:30])
    if name in ("upcom", "all"):
        upcom = _board_stocks(UPCOM, upcom_names, seed)
        stocks += upcom
        # SSI's id for the UPCOM index; HNX runs the UPCOM market.
        indices["HNXUpcomIndex"] = ("HNX", upcom)
    return Universe(stocks, indices, name in ("hose", "all"))
