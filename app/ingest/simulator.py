"""Deterministic, seeded simulator of SSI FastConnect Data v2 ``Broadcast`` payloads.

Each frame is the exact string SSI's hub passes as ``A[0]``: compact outer JSON
whose ``Content`` is itself a compact JSON string, with field orders, float
formatting and timestamps as in the real feed (docs/ssi.md: Message envelope, Sample frames).
"""
from __future__ import annotations

import math
import random
from bisect import bisect_right
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence
from zoneinfo import ZoneInfo

from app.futures import front_and_next, parse_contract

__all__ = [
    "VN30_SYMBOLS",
    "INDEX_IDS",
    "DEFAULT_CHANNELS",
    "ALL_CHANNELS",
    "VN_TZ",
    "SimEvent",
    "MarketSimulator",
    "hose_tick",
    "hose_tick_up",
    "hose_tick_down",
    "price_limits",
]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

VN30_SYMBOLS: tuple[str, ...] = (
    "ACB", "BCM", "BID", "BVH", "CTG", "FPT", "GAS", "GVR", "HDB", "HPG",
    "LPB", "MBB", "MSN", "MWG", "PLX", "SAB", "SHB", "SSB", "SSI", "STB",
    "TCB", "TPB", "VCB", "VHM", "VIB", "VIC", "VJC", "VNM", "VPB", "VRE",
)
INDEX_IDS = ("VNINDEX", "VN30", "HNXIndex")
DEFAULT_CHANNELS = frozenset({"X-QUOTE", "X-TRADE", "R", "MI", "F"})
ALL_CHANNELS = frozenset({"X-QUOTE", "X-TRADE", "X", "R", "MI", "F", "B"})


class SimEvent(NamedTuple):
    at: datetime
    frame: str | None
    data_type: str
    symbol: str


# ---------------------------------------------------------------------------
# Prices: HOSE tick table and price limits (docs/ssi.md, Tick sizes, price bands and lots)
# ---------------------------------------------------------------------------


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


def _one(_p: int) -> int:
    return 1


def _inc(p: int) -> int:
    return p + 1


def _dec(p: int) -> int:
    return p - 1


# ---------------------------------------------------------------------------
# Number formatting that matches json.dumps for these values
# ---------------------------------------------------------------------------


def _fi(x: int) -> str:
    """An integral amount as Json.NET writes a double: ``22950.0``."""
    return f"{x}.0"


def _ft(x: int) -> str:
    """A count of tenths as a one-decimal double: ``19053 -> 1905.3``."""
    if x < 0:
        return f"-{-x // 10}.{-x % 10}"
    return f"{x // 10}.{x % 10}"


def _f2(x: float) -> str:
    # "+ 0.0" turns a rounded -0.0 into 0.0.
    return repr(round(x, 2) + 0.0)


class _IntFmt(dict):
    def __missing__(self, k: int) -> str:
        if len(self) > 500_000:  # bound memory on unbounded runs
            self.clear()
        s = self[k] = f"{k}.0"
        return s


class _TenthFmt(dict):
    def __missing__(self, k: int) -> str:
        if len(self) > 500_000:
            self.clear()
        s = self[k] = _ft(k)
        return s


# Book prices and volumes repeat endlessly; caching their text saves most of the formatting.
_INT_FMT = _IntFmt()
_TENTH_FMT = _TenthFmt()
_ZEROS = tuple(("0.0",) * n for n in range(11))


def _esc(s: str) -> str:
    return s.replace('"', '\\"')


def _template(data_type: str, fields: Sequence[tuple[str, object]]) -> str:
    """%-template of an outer frame.

    A field value of ``NUM`` is a raw numeric placeholder, ``STR`` a quoted
    string placeholder; anything else is a literal JSON token.
    """
    parts = []
    for key, spec in fields:
        if spec is NUM:
            parts.append(f'"{key}":%s')
        elif spec is STR:
            parts.append(f'"{key}":"%s"')
        else:
            parts.append(f'"{key}":{spec}')
    inner = "{" + ",".join(parts) + "}"
    return '{"DataType":"' + data_type + '","Content":"' + _esc(inner) + '"}'


NUM = object()
STR = object()


def _js(s: str) -> str:
    return '"' + s + '"'


# ---------------------------------------------------------------------------
# Timetable (seconds after midnight, Vietnam time)
# ---------------------------------------------------------------------------


def _hms(h: int, m: int, s: int = 0) -> int:
    return h * 3600 + m * 60 + s


T_FUT_ATO = _hms(8, 45)
T_OPEN = _hms(9, 0)
T_LO1 = _hms(9, 15)
T_BREAK = _hms(11, 30)
T_LO2 = _hms(13, 0)
T_ATC = _hms(14, 30)
T_CLOSE = _hms(14, 45)
T_MARKER = _hms(15, 0)

# Seconds of continuous stock trading, used to scale per-event volatility.
_LO_SECONDS = (T_BREAK - T_LO1) + (T_ATC - T_LO2)


def _stock_session(s: int) -> str:
    # HOSE is HNX's timetable with an opening auction before continuous trading.
    return "ATO" if T_OPEN <= s < T_LO1 else _hnx_session(s)


def _fut_session(s: int) -> str:
    if s < T_FUT_ATO:
        return "C"
    if s < T_OPEN:
        return "ATO"
    return _hnx_session(s)


def _hnx_session(s: int) -> str:
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


# Intraday activity: busy after the open and into the close, quiet before lunch.
_PROFILE_KNOTS = (
    (T_OPEN, 1.3), (T_LO1, 1.8), (_hms(9, 45), 1.15), (_hms(10, 30), 0.85),
    (T_BREAK, 0.7), (T_LO2, 0.85), (_hms(14, 0), 0.95), (T_ATC, 1.5),
)


def _profile(s: int) -> float:
    k = _PROFILE_KNOTS
    if s <= k[0][0]:
        return k[0][1]
    for (t0, v0), (t1, v1) in zip(k, k[1:]):
        if s <= t1:
            return v0 + (v1 - v0) * (s - t0) / (t1 - t0)
    return k[-1][1]


# ---------------------------------------------------------------------------
# Static universe
# ---------------------------------------------------------------------------

# symbol: (typical price VND, listed shares in millions, foreign ownership limit,
#          VN30 weight %, liquidity)
_UNIVERSE = {
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
_STOCK_EVENTS_PER_S = 33.0
_FRONT_EVENTS_PER_S = 10.0
_NEXT_EVENTS_PER_S = 0.6


class _Inst:
    """One tradable instrument's static data and live book/trade state."""

    __slots__ = (
        "sym", "stock", "depth", "lot", "pf", "tick", "up", "dn", "rate",
        "ref", "ceil", "floor", "bids", "asks", "last", "last_vol", "open",
        "high", "low", "total_vol", "total_val", "est", "dirty", "tf",
        "w", "beta", "idio", "sig", "drift", "lvl_mu", "trade_mu",
        "total_room", "holding", "fbuy", "fsell", "pfb", "pfs", "basis", "basis0",
        "t_q", "t_t", "t_x", "t_r", "t_f", "t_b", "sfx_t", "ref_s",
        "exchange", "market",
    )

    def __init__(self, sym: str, stock: bool) -> None:
        self.sym = sym
        self.stock = stock
        if stock:
            self.depth, self.lot, self.pf = 3, 100, _INT_FMT
            self.tick, self.up, self.dn = hose_tick, hose_tick_up, hose_tick_down
            self.exchange = self.market = "HOSE"
        else:
            self.depth, self.lot, self.pf = 10, 1, _TENTH_FMT
            self.tick, self.up, self.dn = _one, _inc, _dec
            self.exchange, self.market = "DERIVATIVES", "DER"
        self.rate = 0.0
        self.ref = self.ceil = self.floor = 0
        self.w = self.beta = self.idio = self.sig = self.drift = 0.0
        self.lvl_mu = self.trade_mu = 0.0
        self.total_room = self.holding = 0
        self.pfb = self.pfs = 0.0
        self.basis = self.basis0 = 0.0
        self.new_day(0)

    def new_day(self, ref: int) -> None:
        self.ref = ref
        self.bids: list[list[int]] = []
        self.asks: list[list[int]] = []
        self.last = self.last_vol = self.open = self.high = self.low = 0
        self.total_vol = self.total_val = 0
        self.est = ref
        self.dirty = True
        self.tf: tuple[str, ...] = ()
        self.fbuy = self.fsell = 0
        self.idio = 0.0


class MarketSimulator:
    """Seeded SSI market: HOSE VN30 stocks, two VN30 futures and three indices."""

    def __init__(
        self,
        seed: int = 1,
        start: date | None = None,
        days: int | None = 1,
        channels: Iterable[str] = DEFAULT_CHANNELS,
        futures_naming: str = "legacy",
        activity: float = 1.0,
        symbols: Sequence[str] = VN30_SYMBOLS,
        open_at: time | None = None,
    ) -> None:
        if start is None:
            start = datetime.now(VN_TZ).date()
        elif isinstance(start, datetime):
            start = start.date()
        while start.weekday() >= 5:
            start += timedelta(days=1)
        chans = frozenset(channels)
        unknown = chans - ALL_CHANNELS
        if unknown:
            raise ValueError(f"unknown channels: {sorted(unknown)}")
        if futures_naming not in ("legacy", "krx"):
            raise ValueError("futures_naming must be 'legacy' or 'krx'")
        if activity <= 0:
            raise ValueError("activity must be positive")
        if days is not None and days < 0:
            raise ValueError("days must be >= 0 or None")
        syms = tuple(symbols)
        if not syms or len(set(syms)) != len(syms):
            raise ValueError("symbols must be non-empty and unique")
        for s in syms:
            # Symbols are spliced into pre-escaped JSON text.
            if not s.isascii() or not s.isalnum() or parse_contract(s) is not None:
                raise ValueError(f"bad stock symbol {s!r}")
        self.seed = seed
        self.start = start
        self.days = days
        self.channels = chans
        self.futures_naming = futures_naming
        self.activity = float(activity)
        self.symbols = syms
        self.open_at = open_at
        self._futures = front_and_next(start, futures_naming)

    @property
    def futures(self) -> tuple[str, str]:
        """Front and next contract codes for the current simulated day."""
        return self._futures

    def events(self) -> Iterator[SimEvent]:
        """Frames in time order, with a CLOSE marker at 15:00 ending each day."""
        return _Run(self).run()


def _next_weekday(d: date) -> date:
    d += timedelta(days=1)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d


class _Run:
    """One pass over the simulated days; all mutable state lives here."""

    def __init__(self, sim: MarketSimulator) -> None:
        self.sim = sim
        self.act = sim.activity
        ch = sim.channels
        self.w_q = "X-QUOTE" in ch
        self.w_t = "X-TRADE" in ch
        self.w_x = "X" in ch
        self.w_r = "R" in ch
        self.w_mi = "MI" in ch
        self.w_f = "F" in ch
        self.w_b = "B" in ch
        self.out: list[SimEvent] = []
        self.at: datetime | None = None
        self.live = False
        self.tstr = ""
        self._init_static()

    # ---- static and cross-day state ---------------------------------------

    def _init_static(self) -> None:
        sim = self.sim
        rng = random.Random(f"ssi-sim/{sim.seed}/static")
        self.stocks: list[_Inst] = []
        liq_total = 0.0
        for sym in sim.symbols:
            ins = _Inst(sym, True)
            if sym in _UNIVERSE:
                px, shares_m, fol, weight, liq = _UNIVERSE[sym]
            else:
                px = rng.choice((8_000, 15_000, 25_000, 40_000, 70_000))
                shares_m, fol, weight, liq = rng.randint(500, 5_000), 0.49, 1.0, 1.0
            ref = round_to_tick(px * rng.uniform(0.85, 1.15))
            ins.new_day(ref)
            ins.w = weight / ref  # share-like weight so the index is price weighted
            ins.beta = rng.uniform(0.7, 1.3)
            ins.rate = liq
            liq_total += liq
            ins.lvl_mu = 3.3 + 0.35 * math.log(liq + 0.5)
            ins.trade_mu = 1.4 + 0.3 * math.log(liq + 0.5)
            listed = shares_m * 1_000_000 + rng.randint(0, 999_999)
            ins.total_room = int(listed * fol)
            # Some names sit at (or next to) their foreign limit, as on the real board.
            if rng.random() < 0.2:
                ins.holding = ins.total_room - rng.randint(0, 200_000)
            else:
                ins.holding = int(ins.total_room * rng.uniform(0.3, 0.97))
            ins.pfb = rng.uniform(0.04, 0.22)
            ins.pfs = rng.uniform(0.04, 0.22)
            self.stocks.append(ins)
        for ins in self.stocks:
            ins.rate = _STOCK_EVENTS_PER_S * ins.rate / liq_total
        self.vn30_prior = round(rng.uniform(1_850.0, 1_950.0), 2)
        self.vni_prior = round(self.vn30_prior * rng.uniform(0.88, 0.95), 2)
        self.hnx_prior = round(rng.uniform(220.0, 260.0), 2)
        self.vni_n = rng.randint(392, 405)
        self.hnx_n = rng.randint(295, 310)
        # Futures state by (year, month): last close in tenths of a point and basis.
        self.fut_close: dict[tuple[int, int], int] = {}
        self.fut_basis: dict[tuple[int, int], float] = {}

    # ---- main loop --------------------------------------------------------

    def run(self) -> Iterator[SimEvent]:
        sim = self.sim
        day = sim.start
        n = 0
        first = True
        while sim.days is None or n < sim.days:
            skip_before = 0
            if first and sim.open_at is not None:
                oa = sim.open_at
                skip_before = oa.hour * 3600 + oa.minute * 60 + oa.second + (oa.microsecond > 0)
            yield from self._run_day(day, skip_before)
            first = False
            n += 1
            day = _next_weekday(day)

    def _setup_day(self, day: date) -> random.Random:
        sim = self.sim
        rng = random.Random(f"ssi-sim/{sim.seed}/{day.isoformat()}")
        self.date_js = _js(day.strftime("%d/%m/%Y"))
        act = self.act
        n_ev = max(1.0, act * _LO_SECONDS)

        # Market factor: one shared log-return path plus a day drift.
        self.m = 0.0
        self.m_sig = 0.011 / math.sqrt(16_200)
        self.m_drift = rng.gauss(0.0, 0.006) / 16_200
        for ins in self.stocks:
            prev_close = ins.last or ins.ref
            ins.new_day(prev_close)
            ins.ceil, ins.floor = price_limits(ins.ref)
            daily_vol = rng.uniform(0.008, 0.016)
            ins.sig = daily_vol / math.sqrt(max(1.0, ins.rate * n_ev))
            if rng.random() < 0.04:
                ins.drift = rng.choice((-1, 1)) * rng.uniform(0.065, 0.10)
            else:
                ins.drift = rng.gauss(0.0, 0.008)
            ins.est = ins.ref
        self.S0 = sum(i.w * i.ref for i in self.stocks)
        self.S = self.S0
        self.vn30_qty = self.vn30_val = 0

        codes = front_and_next(day, sim.futures_naming)
        sim._futures = codes
        self.futs: list[_Inst] = []
        for k, code in enumerate(codes):
            ym = parse_contract(code)
            assert ym is not None
            ins = _Inst(code, False)
            if ym not in self.fut_basis:
                self.fut_basis[ym] = rng.uniform(-6.0, 3.0) - 2.5 * k
            ins.basis0 = ins.basis = self.fut_basis[ym]
            ref = self.fut_close.get(ym) or int(round((self.vn30_prior + ins.basis) * 10))
            ins.new_day(ref)
            ins.ceil, ins.floor = price_limits(ref, 7, _one)
            ins.rate = _FRONT_EVENTS_PER_S if k == 0 else _NEXT_EVENTS_PER_S
            ins.sig = 0.4 / math.sqrt(max(1.0, ins.rate * n_ev))
            ins.lvl_mu = 2.0 if k == 0 else 1.2
            ins.trade_mu = 0.6 if k == 0 else 0.2
            self.futs.append(ins)
        self.futs_ym = [parse_contract(c) for c in codes]

        self.e_vni = self.e_hnx = 0.0
        self.rest_qty = self.rest_val = 0
        self.vn30_pt_qty = self.vn30_pt_val = 0
        self.vni_pt_qty = self.vni_pt_val = 0
        self.hnx_qty = self.hnx_val = 0
        self.hnx_pt_qty = self.hnx_pt_val = 0
        self.vni_breadth = [0, self.vni_n - len(self.stocks), 0, 0, 0]  # adv, nc, dec, ceil, floor
        self.hnx_breadth = [0, self.hnx_n, 0, 0, 0]

        self._build_templates()
        self.r_due: dict[int, list[_Inst]] = {}
        for ins in self.stocks:
            self.r_due.setdefault(T_LO1 + rng.randint(1, 30), []).append(ins)
        return rng

    def _build_templates(self) -> None:
        d = self.date_js
        for ins in self.stocks + self.futs:
            pf = ins.pf
            sym = _js(ins.sym)
            ex, mk = _js(ins.exchange), _js(ins.market)
            depth = ins.depth

            def lv(prefix: str) -> list[tuple[str, object]]:
                return [(f"{prefix}{i}", NUM if i <= depth else "0.0") for i in range(1, 11)]

            ins.t_q = _template("X-QUOTE", [
                ("TradingDate", d), ("Time", STR), ("Exchange", ex), ("Symbol", sym),
                ("RType", '"X-QUOTE"'),
                *lv("AskPrice"), *lv("AskVol"), *lv("BidPrice"), *lv("BidVol"),
                ("TradingSession", STR),
            ])
            ceil, floor, ref = pf[ins.ceil], pf[ins.floor], pf[ins.ref]
            ins.ref_s = ref
            ins.t_t = _template("X-TRADE", [
                ("RType", '"X-TRADE"'), ("TradingDate", d), ("Time", STR), ("Isin", sym),
                ("Symbol", sym), ("Ceiling", ceil), ("Floor", floor), ("RefPrice", ref),
                ("AvgPrice", NUM), ("PriorVal", ref), ("LastPrice", NUM), ("LastVol", NUM),
                ("TotalVal", NUM), ("TotalVol", NUM), ("MarketId", mk), ("Exchange", ex),
                ("TradingSession", STR), ("TradingStatus", '"N"'), ("Change", NUM),
                ("RatioChange", NUM), ("EstMatchedPrice", NUM), ("Highest", NUM),
                ("Lowest", NUM), ("Side", STR),
            ])
            ins.t_x = _template("X", [
                ("RType", '"X"'), ("TradingDate", d), ("Time", STR), ("Isin", sym),
                ("Symbol", sym), ("Ceiling", ceil), ("Floor", floor), ("RefPrice", ref),
                ("Open", NUM), ("High", NUM), ("Low", NUM), ("Close", NUM),
                ("AvgPrice", NUM), ("PriorVal", ref), ("LastPrice", NUM), ("LastVol", NUM),
                ("TotalVal", NUM), ("TotalVol", NUM),
                *lv("BidPrice"), *lv("BidVol"), *lv("AskPrice"), *lv("AskVol"),
                ("MarketId", mk), ("Exchange", ex), ("TradingSession", STR),
                ("TradingStatus", '"N"'), ("Change", NUM), ("RatioChange", NUM),
                ("EstMatchedPrice", NUM),
            ])
            ins.t_f = _template("F", [
                ("RType", '"F"'), ("MarketId", mk), ("TradingDate", d), ("Time", STR),
                ("Symbol", sym), ("TradingSession", STR), ("TradingStatus", '"N"'),
                ("Exchange", ex),
            ])
            ins.t_b = _template("B", [
                ("RType", '"B"'), ("TradingDate", d), ("Time", STR), ("Symbol", sym),
                ("Open", NUM), ("High", NUM), ("Low", NUM), ("Close", NUM),
                ("Volume", NUM), ("Value", "0.0"),
            ])
            if ins.stock:
                ins.t_r = _template("R", [
                    ("RType", '"R"'), ("TradingDate", d), ("Time", STR), ("Isin", sym),
                    ("Symbol", sym), ("TotalRoom", _fi(ins.total_room)), ("CurrentRoom", NUM),
                    ("BuyVol", NUM), ("SellVol", NUM), ("BuyVal", NUM), ("SellVal", NUM),
                    ("MarketId", mk), ("Exchange", ex),
                ])
        self.t_mi = {}
        for idx, prior, name, ex in (
            ("VNINDEX", self.vni_prior, "VNINDEX", "HOSE"),
            ("VN30", self.vn30_prior, "VN30", "HOSE"),
            ("HNXIndex", self.hnx_prior, "HNXIndex", "HNX"),
        ):
            self.t_mi[idx] = _template("MI", [
                ("IndexId", _js(idx)), ("IndexValue", NUM), ("PriorIndexValue", _f2(prior)),
                ("TradingDate", d), ("Time", STR), ("TotalTrade", "0.0"),
                ("TotalQtty", NUM), ("TotalValue", NUM), ("IndexName", _js(name)),
                ("Advances", NUM), ("NoChanges", NUM), ("Declines", NUM),
                ("Ceilings", NUM), ("Floors", NUM), ("Change", NUM), ("RatioChange", NUM),
                ("TotalQttyPt", NUM), ("TotalValuePt", NUM), ("Exchange", _js(ex)),
                ("AllQty", NUM), ("AllValue", NUM), ("IndexType", '"Main"'),
                ("TradingSession", STR), ("MarketId", _js(ex)), ("RType", '"MI"'),
                ("TotalQttyOd", "0.0"), ("TotalValueOd", "0.0"),
            ])

    def _run_day(self, day: date, skip_before: int) -> Iterator[SimEvent]:
        rng = self._setup_day(day)
        act = self.act
        out = self.out
        midnight = datetime.combine(day, time(0), VN_TZ)
        stocks, futs = self.stocks, self.futs
        # Instruments in continuous trading: futures alone before 09:15, then all.
        groups = {
            "F": (futs, *self._cum([f.rate for f in futs])),
            "A": (futs + stocks, *self._cum([f.rate for f in futs + stocks])),
        }
        resync = skip_before > T_FUT_ATO
        offsets: dict[int, list[timedelta]] = {}
        seconds = list(range(T_FUT_ATO, T_BREAK + 1)) + list(range(T_LO2, T_CLOSE + 1))
        m_sig, m_drift = self.m_sig, self.m_drift
        gauss = rng.gauss
        for s in seconds:
            self.s = s
            self.live = s >= skip_before
            base = midnight + timedelta(seconds=s)
            self.at = base
            self.tstr = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
            if s < T_BREAK or s > T_LO2:
                self.m += m_sig * gauss(0.0, 1.0) + m_drift
            if self.live and resync:
                resync = False
                self._resync(s)

            self._transitions(s, rng)
            if s % 5 == 0 and s >= T_OPEN:
                self._mi(s, rng)
            due = self.r_due.pop(s, None)
            if due:
                self._r_tick(s, due, rng)

            fut_auction = T_FUT_ATO < s < T_OPEN or T_ATC < s < T_CLOSE
            stock_auction = T_OPEN < s < T_LO1 or T_ATC < s < T_CLOSE
            if fut_auction or stock_auction:
                p = min(1.0, 0.25 * act)
                if fut_auction:
                    for ins in futs:
                        if rng.random() < p:
                            self._auction_tick(ins, rng)
                if stock_auction:
                    for ins in stocks:
                        if rng.random() < p:
                            self._auction_tick(ins, rng)

            if T_OPEN <= s < T_BREAK or T_LO2 <= s < T_ATC:
                insts, cum, total = groups["F" if s < T_LO1 else "A"]
                lam = total * act * _profile(s)
                n = self._poisson(lam, rng)
                if n:
                    offs = offsets.get(n)
                    if offs is None:
                        offs = offsets[n] = [timedelta(microseconds=(i + 1) * 1_000_000 // (n + 1))
                                             for i in range(n)]
                    rnd = rng.random
                    for i in range(n):
                        ins = insts[bisect_right(cum, rnd() * total)]
                        self.at = base + offs[i]
                        self._event(ins, rng)
            if out:
                yield from out
                out.clear()

        # Day close bookkeeping for the next day.
        for k, ins in enumerate(futs):
            if ins.last:
                self.fut_close[self.futs_ym[k]] = ins.last
            self.fut_basis[self.futs_ym[k]] = ins.basis
        self.vn30_prior = round(self.vn30_value(), 2)
        self.vni_prior, self.hnx_prior = self.vni_close, self.hnx_close
        for ins in stocks:
            ins.holding += ins.fbuy - ins.fsell
        if T_MARKER >= skip_before:
            yield SimEvent(midnight + timedelta(seconds=T_MARKER), None, "CLOSE", "")

    @staticmethod
    def _cum(rates: list[float]) -> tuple[list[float], float]:
        out, t = [], 0.0
        for r in rates:
            t += r
            out.append(t)
        # An infinite last bound keeps bisect in range even if u * total rounds up to total.
        out[-1] = math.inf
        return out, t

    @staticmethod
    def _poisson(lam: float, rng: random.Random) -> int:
        if lam <= 0:
            return 0
        if lam > 50:
            return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k

    # ---- emitting ----------------------------------------------------------

    def _emit(self, data_type: str, sym: str, frame: str) -> None:
        self.out.append(SimEvent(self.at, frame, data_type, sym))

    def _book_parts(self, ins: _Inst) -> tuple[tuple[str, ...], ...]:
        """Ask prices, ask volumes, bid prices, bid volumes, padded with 0.0."""
        pf, vf, d = ins.pf, _INT_FMT, ins.depth
        a, b = ins.asks, ins.bids
        za, zb = _ZEROS[d - len(a)], _ZEROS[d - len(b)]
        ap = tuple([pf[x[0]] for x in a]) + za
        av = tuple([vf[x[1]] for x in a]) + za
        bp = tuple([pf[x[0]] for x in b]) + zb
        bv = tuple([vf[x[1]] for x in b]) + zb
        return ap, av, bp, bv

    def _publish_book(self, ins: _Inst, session: str, est: str = "0.0", quote: bool = True) -> None:
        w_q = quote and self.w_q
        if not self.live or not (w_q or self.w_x):
            return
        ap, av, bp, bv = self._book_parts(ins)
        t = self.tstr
        if w_q:
            self._emit("X-QUOTE", ins.sym, ins.t_q % ((t,) + ap + av + bp + bv + (session,)))
        if self.w_x:
            self._emit("X", ins.sym, ins.t_x % ((t,) + self._trade_fields(ins) + bp + bv + ap + av
                                                + (session,) + self._change(ins) + (est,)))

    def _trade_fields(self, ins: _Inst) -> tuple[str, ...]:
        if ins.dirty:
            pf = ins.pf
            if ins.total_vol:
                vfmt = _fi if ins.stock else _ft
                avg = self._avg(ins)
                ins.tf = (pf[ins.open], pf[ins.high], pf[ins.low], pf[ins.last],
                          _f2(avg), pf[ins.last], _fi(ins.last_vol),
                          vfmt(ins.total_val), _fi(ins.total_vol))
            else:
                ins.tf = ("0.0",) * 9
            ins.dirty = False
        return ins.tf

    @staticmethod
    def _avg(ins: _Inst) -> float:
        # Divide the TotalVal a consumer sees, so its own TotalVal/TotalVol rounds the same way.
        if ins.stock:
            return ins.total_val / ins.total_vol
        return (ins.total_val / 10) / ins.total_vol

    def _change(self, ins: _Inst) -> tuple[str, str]:
        if not ins.last:
            return "0.0", "0.0"
        ch = ins.last - ins.ref
        return (_fi(ch) if ins.stock else _ft(ch)), _f2(100.0 * ch / ins.ref)

    def _f_frames(self, insts: list[_Inst], session: str) -> None:
        if self.live and self.w_f:
            t = self.tstr
            for ins in insts:
                self._emit("F", ins.sym, ins.t_f % (t, session))

    def _resync(self, s: int) -> None:
        """Current session and book for everyone, so a late start sees the book before any trade."""
        for ins in self.futs + self.stocks:
            sess = _stock_session(s) if ins.stock else _fut_session(s)
            if sess == "C":
                continue
            self._f_frames([ins], sess)
            if ins.bids or ins.asks:
                est = ins.pf[ins.est] if sess in ("ATO", "ATC") else "0.0"
                self._publish_book(ins, sess, est)

    # ---- fills ---------------------------------------------------------------

    def _fill(self, ins: _Inst, price: int, vol: int, side: str, session: str,
              est: str | None, rng: random.Random) -> None:
        old = ins.last or ins.ref
        ins.last, ins.last_vol = price, vol
        ins.total_vol += vol
        ins.total_val += price * vol
        if not ins.open:
            ins.open = ins.high = ins.low = price
        elif price > ins.high:
            ins.high = price
        elif price < ins.low:
            ins.low = price
        ins.dirty = True
        if ins.stock:
            self.S += ins.w * (price - old)
            self.vn30_qty += vol
            self.vn30_val += price * vol
            if rng.random() < ins.pfb and ins.total_room - ins.holding - ins.fbuy + ins.fsell >= vol:
                ins.fbuy += vol
            if rng.random() < ins.pfs and ins.holding + ins.fbuy - ins.fsell >= vol:
                ins.fsell += vol
        if not self.live or not (self.w_t or self.w_b):
            return
        pf, t = ins.pf, self.tstr
        ps = pf[price]
        if self.w_t:
            ch, rc = self._change(ins)
            self._emit("X-TRADE", ins.sym, ins.t_t % (
                t, _f2(self._avg(ins)), ps, _fi(vol),
                (_fi if ins.stock else _ft)(ins.total_val), _fi(ins.total_vol), session, ch, rc,
                ins.ref_s if est is None else est, pf[ins.high], pf[ins.low], side))
        if self.w_b:
            self._emit("B", ins.sym, ins.t_b % (t, ps, ps, ps, ps, _fi(vol)))

    # ---- continuous trading ---------------------------------------------------

    def _fair(self, ins: _Inst, rng: random.Random) -> float:
        if ins.stock:
            ins.idio += ins.sig * rng.gauss(0.0, 1.0)
            prog = (self.s - T_LO1) / (T_ATC - T_LO1)
            return ins.ref * math.exp(ins.beta * self.m + ins.idio + ins.drift * prog)
        # Futures track the live VN30 value plus a slowly mean-reverting basis.
        ins.basis += 0.01 * (ins.basis0 - ins.basis) + ins.sig * rng.gauss(0.0, 1.0)
        return (self.vn30_value() + ins.basis) * 10.0

    def _lvl(self, ins: _Inst, rng: random.Random) -> int:
        return (int(math.exp(rng.gauss(ins.lvl_mu, 0.9))) + 1) * ins.lot

    def _size(self, ins: _Inst, rng: random.Random) -> int:
        return min(int(math.exp(rng.gauss(ins.trade_mu, 1.1))) + 1, 3_000) * ins.lot

    def _repair(self, ins: _Inst, rng: random.Random) -> None:
        bids, asks = ins.bids, ins.asks
        up, dn = ins.up, ins.dn
        # Fresh orders refill an emptied side unless the book is locked at a limit.
        if not asks and bids and bids[0][0] < ins.ceil:
            asks.append([up(bids[0][0]), self._lvl(ins, rng)])
        if not bids and asks and asks[0][0] > ins.floor:
            bids.append([dn(asks[0][0]), self._lvl(ins, rng)])
        d = ins.depth
        if asks:
            while len(asks) < d:
                p = up(asks[-1][0])
                if p > ins.ceil:
                    break
                asks.append([p, self._lvl(ins, rng)])
        if bids:
            while len(bids) < d:
                p = dn(bids[-1][0])
                if p < ins.floor:
                    break
                bids.append([p, self._lvl(ins, rng)])

    def _open_book(self, ins: _Inst, price: int, rng: random.Random) -> None:
        """Book right after an opening auction printed at ``price``."""
        ins.bids, ins.asks = [], []
        if price >= ins.ceil or (price > ins.floor and rng.random() < 0.5):
            ins.asks.append([price, self._lvl(ins, rng)])
        else:
            ins.bids.append([price, self._lvl(ins, rng)])
        self._repair(ins, rng)

    def _event(self, ins: _Inst, rng: random.Random) -> None:
        bids, asks = ins.bids, ins.asks
        fv = self._fair(ins, rng)
        rnd = rng.random
        p_trade = 0.4 if ins.stock else 0.36
        if not asks and bids and bids[0][0] == ins.ceil:
            self._locked(ins, bids, fv >= ins.ceil, "BU", p_trade, rng)
            return
        if not bids and asks and asks[0][0] == ins.floor:
            self._locked(ins, asks, fv <= ins.floor, "SD", p_trade, rng)
            return
        if not bids or not asks:
            self._repair(ins, rng)
            self._publish_book(ins, "LO")
            return
        b1, a1 = bids[0][0], asks[0][0]
        tk = ins.tick(b1)
        # Pressure toward the fair value decides who is aggressive.
        x = (fv - (a1 + b1) * 0.5) / tk
        pb = 0.5 + 0.2 * x
        pb = 0.1 if pb < 0.1 else 0.9 if pb > 0.9 else pb
        r = rnd()
        if r < p_trade:
            self._sweep(ins, rnd() < pb, rng)
            return
        r = rnd()
        if a1 - b1 > tk and r < 0.4:
            if rnd() < pb:
                bids.insert(0, [ins.up(b1), self._lvl(ins, rng)])
                if len(bids) > ins.depth:
                    bids.pop()
            else:
                asks.insert(0, [ins.dn(a1), self._lvl(ins, rng)])
                if len(asks) > ins.depth:
                    asks.pop()
        elif r < 0.68:
            side = bids if rnd() < 0.5 else asks
            i = 0 if rnd() < 0.5 else int(rnd() * len(side))
            side[i][1] += self._lvl(ins, rng) // 2 // ins.lot * ins.lot + ins.lot
        else:
            # Liquidity withdraws from the side the fair value is moving through.
            side = asks if rnd() < pb else bids
            i = 0 if rnd() < 0.65 else int(rnd() * len(side))
            lvl = side[i]
            if rnd() < 0.45 or lvl[1] <= ins.lot:
                side.pop(i)
            else:
                lvl[1] -= max(ins.lot, int(lvl[1] * rnd() * 0.8) // ins.lot * ins.lot)
        self._repair(ins, rng)
        self._publish_book(ins, "LO")

    def _locked(self, ins: _Inst, queue: list[list[int]], pushing: bool, side: str,
                p_trade: float, rng: random.Random) -> None:
        """Book locked at a limit: one side empty, the other queued at the limit."""
        lvl = queue[0]
        r = rng.random()
        if r < p_trade:
            q = min(self._size(ins, rng), lvl[1])
            lvl[1] -= q
            if not lvl[1]:
                queue.pop(0)
            self._fill(ins, lvl[0], q, side, "LO", None, rng)
        elif pushing and r < 0.8:
            lvl[1] += self._lvl(ins, rng)
        elif rng.random() < 0.5 or lvl[1] <= ins.lot:
            queue.pop(0)
        else:
            lvl[1] -= max(ins.lot, int(lvl[1] * rng.random() * 0.7) // ins.lot * ins.lot)
        self._repair(ins, rng)
        self._publish_book(ins, "LO")

    def _sweep(self, ins: _Inst, buy: bool, rng: random.Random) -> None:
        """An aggressive order taking up to three levels, one fill per level."""
        opp, own = (ins.asks, ins.bids) if buy else (ins.bids, ins.asks)
        side = "BU" if buy else "SD"
        v = self._size(ins, rng)
        for n in range(3):
            lvl = opp[0]
            price = lvl[0]
            q = v if v < lvl[1] else lvl[1]
            v -= q
            lvl[1] -= q
            if not lvl[1]:
                opp.pop(0)
            self._fill(ins, price, q, side, "LO", None, rng)
            if v and (not opp or n == 2):
                # The unfilled rest of a limit order now leads its own side.
                own.insert(0, [price, v])
                if len(own) > ins.depth:
                    own.pop()
                v = 0
            self._repair(ins, rng)
            self._publish_book(ins, "LO")
            if not v or not opp:
                break

    # ---- auctions and session transitions ---------------------------------

    def _auction_book(self, ins: _Inst, rng: random.Random) -> None:
        p = ins.est
        ins.bids = [[p, self._lvl(ins, rng)]]
        ins.asks = [[ins.up(p), self._lvl(ins, rng)]] if p < ins.ceil else []
        self._repair(ins, rng)

    def _target(self, ins: _Inst) -> int:
        if ins.stock:
            prog = max(0.0, (self.s - T_LO1) / (T_ATC - T_LO1))
            fv = ins.ref * math.exp(ins.beta * self.m + ins.idio + ins.drift * prog)
            p = round_to_tick(fv)
        else:
            ins.basis += 0.01 * (ins.basis0 - ins.basis)
            p = int(round((self.vn30_value() + ins.basis) * 10))
        return min(ins.ceil, max(ins.floor, p))

    def _auction_tick(self, ins: _Inst, rng: random.Random) -> None:
        target = self._target(ins)
        if target != ins.est:
            step = ins.up if target > ins.est else ins.dn
            ins.est = step(ins.est) if rng.random() < 0.7 else target
        self._auction_book(ins, rng)
        sess = _stock_session(self.s) if ins.stock else _fut_session(self.s)
        self._publish_book(ins, sess, ins.pf[ins.est])

    def _start_auction(self, insts: list[_Inst], session: str, rng: random.Random) -> None:
        for ins in insts:
            if session == "ATO":
                ins.est = ins.ref
            else:
                ins.est = ins.last or ins.ref
            self._auction_book(ins, rng)
            self._publish_book(ins, session, ins.pf[ins.est])

    def _burst(self, ins: _Inst, session: str, rng: random.Random) -> None:
        """Auction match: many fills at one price, all stamped with the auction time."""
        price = ins.est = min(ins.ceil, max(ins.floor, ins.est))
        k = rng.randint(15, 60) if ins.stock else rng.randint(5, 25)
        n = max(1, int(k * self.act + rng.random()))
        est = ins.pf[price]
        bump = 1.2 if session == "ATC" else 0.8
        for _ in range(n):
            lots = min(int(math.exp(rng.gauss(ins.trade_mu + bump, 1.3))) + 1, 20_000)
            self._fill(ins, price, lots * ins.lot, "Unknow", session, est, rng)
            # The snapshot shows the match; the book itself is rebuilt afterwards.
            self._publish_book(ins, session, est, quote=False)

    def _transitions(self, s: int, rng: random.Random) -> None:
        stocks, futs = self.stocks, self.futs
        if s == T_FUT_ATO:
            self._f_frames(futs, "ATO")
            self._start_auction(futs, "ATO", rng)
        elif s == T_OPEN:
            for ins in futs:
                self._burst(ins, "ATO", rng)
            self._f_frames(futs, "LO")
            for ins in futs:
                self._open_book(ins, ins.est, rng)
                self._publish_book(ins, "LO")
            self._f_frames(stocks, "ATO")
            self._start_auction(stocks, "ATO", rng)
        elif s == T_LO1:
            for ins in stocks:
                self._burst(ins, "ATO", rng)
            self._f_frames(stocks, "LO")
            for ins in stocks:
                self._open_book(ins, ins.est, rng)
                self._publish_book(ins, "LO")
        elif s == T_BREAK:
            self._f_frames(futs + stocks, "BREAK")
        elif s == T_LO2:
            self._f_frames(futs + stocks, "LO")
        elif s == T_ATC:
            self._f_frames(futs + stocks, "ATC")
            self._start_auction(futs + stocks, "ATC", rng)
        elif s == T_CLOSE:
            for ins in futs + stocks:
                self._burst(ins, "ATC", rng)
                ins.bids, ins.asks = [], []
            self._f_frames(futs + stocks, "C")
            # The closing foreign-flow snapshot follows the closing prints.
            self._r_tick(s, [], rng)

    # ---- foreign room (R) ---------------------------------------------------

    def _r_tick(self, s: int, due: list[_Inst], rng: random.Random) -> None:
        final = s == T_CLOSE
        insts = self.stocks if final else due
        if not final:
            for ins in due:
                nxt = s + rng.randint(3, 60)
                if T_BREAK <= nxt < T_LO2:
                    nxt += T_LO2 - T_BREAK
                if nxt < T_ATC:
                    self.r_due.setdefault(nxt, []).append(ins)
        if not (self.live and self.w_r):
            return
        t = self.tstr
        for ins in insts:
            px = ins.last or ins.ref
            room = ins.total_room - ins.holding - ins.fbuy + ins.fsell
            self._emit("R", ins.sym, ins.t_r % (
                t, _fi(room), _fi(ins.fbuy), _fi(ins.fsell), _fi(ins.fbuy * px), _fi(ins.fsell * px)))

    # ---- indices (MI) ---------------------------------------------------------

    def vn30_value(self) -> float:
        return self.vn30_prior * self.S / self.S0

    def _mi(self, s: int, rng: random.Random) -> None:
        if not (T_OPEN <= s <= T_BREAK or T_LO2 <= s <= T_CLOSE):
            return
        act = self.act
        stock_sess, hnx_sess = _stock_session(s), _hnx_session(s)
        trading = stock_sess == "LO" or s in (T_LO1, T_CLOSE)
        prof = _profile(s)
        gauss = rng.gauss

        # VN30 straight from the constituents.
        vn30 = round(self.vn30_value(), 2)
        adv = nc = dec = ceil = flo = 0
        for ins in self.stocks:
            last = ins.last
            if not last or last == ins.ref:
                nc += 1
            elif last > ins.ref:
                adv += 1
                ceil += last == ins.ceil
            else:
                dec += 1
                flo += last == ins.floor
        vn30_b = (adv, nc, dec, ceil, flo)

        # The rest of HOSE and HNX follow the market factor with their own noise.
        if s >= T_LO1 and stock_sess != "BREAK":
            self.e_vni += gauss(0.0, 0.0004)
        if hnx_sess != "BREAK":
            self.e_hnx += gauss(0.0, 0.0006)
        rest_ret = 0.75 * self.m + self.e_vni if s >= T_LO1 else 0.0
        hnx_ret = 0.5 * self.m + self.e_hnx
        vn30_ret = vn30 / self.vn30_prior - 1.0
        vni = round(self.vni_prior * (1.0 + 0.55 * vn30_ret + 0.45 * (math.exp(rest_ret) - 1.0)), 2)
        hnx = round(self.hnx_prior * math.exp(hnx_ret), 2)
        self.vni_close, self.hnx_close = vni, hnx
        if s >= T_LO1:
            self._breadth(self.vni_breadth, self.vni_n - len(self.stocks), rest_ret * 100.0)
        if s >= T_OPEN:
            self._breadth(self.hnx_breadth, self.hnx_n, hnx_ret * 100.0)

        if trading:
            burst = 12.0 if s in (T_LO1, T_CLOSE) else 1.0
            inc = int(185_000 * act * prof * burst * rng.uniform(0.4, 1.6)) // 100 * 100
            self.rest_qty += inc
            self.rest_val += inc * rng.randrange(16_000, 26_000, 10)
            if rng.random() < 0.06 * act:
                q = rng.randint(50, 5_000) * 100
                v = q * rng.randrange(12_000, 40_000, 10)
                self.vni_pt_qty += q
                self.vni_pt_val += v
                if rng.random() < 0.4:
                    self.vn30_pt_qty += q
                    self.vn30_pt_val += v
        if hnx_sess == "LO" or s == T_CLOSE:
            inc = int(30_000 * act * prof * rng.uniform(0.4, 1.6)) // 100 * 100
            self.hnx_qty += inc
            self.hnx_val += inc * rng.randrange(9_000, 24_000, 100)
            if rng.random() < 0.03 * act:
                q = rng.randint(50, 10_000) * 100
                self.hnx_pt_qty += q
                self.hnx_pt_val += q * rng.randrange(10_000, 40_000, 100)

        if not (self.live and self.w_mi):
            return
        vb, hb = self.vni_breadth, self.hnx_breadth
        vni_b = tuple(a + b for a, b in zip(vn30_b, vb))
        self._mi_frame("VNINDEX", vni, self.vni_prior, self.vn30_qty + self.rest_qty,
                       self.vn30_val + self.rest_val, vni_b, self.vni_pt_qty, self.vni_pt_val, stock_sess)
        self._mi_frame("VN30", vn30, self.vn30_prior, self.vn30_qty, self.vn30_val, vn30_b,
                       self.vn30_pt_qty, self.vn30_pt_val, stock_sess)
        self._mi_frame("HNXIndex", hnx, self.hnx_prior, self.hnx_qty, self.hnx_val, tuple(hb),
                       self.hnx_pt_qty, self.hnx_pt_val, hnx_sess)

    def _mi_frame(self, idx: str, value: float, prior: float, qty: int, val: int,
                  breadth: tuple[int, ...], pt_qty: int, pt_val: int, session: str) -> None:
        ch = round(value - prior, 2)
        adv, nc, dec, ceil, flo = breadth
        self._emit("MI", idx, self.t_mi[idx] % (
            repr(value), self.tstr, _fi(qty), _fi(val), adv, nc, dec, ceil, flo,
            _f2(ch), _f2(100.0 * ch / prior), _fi(pt_qty), _fi(pt_val),
            _fi(qty + pt_qty), _fi(val + pt_val), session))

    @staticmethod
    def _breadth(b: list[int], n: int, sentiment: float) -> None:
        """Move advance/decline counts a few names at a time toward the mood."""
        traded = 0.88 * n
        adv_t = traded / (1.0 + math.exp(-sentiment))
        dec_t = traded - adv_t
        adv, _, dec, _, _ = b
        step = max(2, n // 40)
        adv += max(-step, min(step, int(round(adv_t)) - adv))
        dec += max(-step, min(step, int(round(dec_t)) - dec))
        nc = n - adv - dec
        ceil = int(adv * min(0.3, 0.01 + 0.03 * max(0.0, sentiment)))
        flo = int(dec * min(0.3, 0.01 + 0.015 * max(0.0, -sentiment)))
        b[:] = [adv, nc, dec, ceil, flo]
