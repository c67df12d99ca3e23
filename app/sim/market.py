"""MarketSimulator: a deterministic, seeded SSI market, and the day loop that drives it.

A universe of stocks (the VN30 by default; HOSE, HNX, UPCOM or all of them), each on its
own board's timetable, grid and band, the two front VN30 futures and the indices,
producing the exact ``Broadcast`` strings of SSI FastConnect Data v2 (see app.sim.wire).
Every random draw comes from seeded ``random.Random``s, so a seed fixes every frame.
"""
from __future__ import annotations

import math
import random
from bisect import bisect_right
from datetime import date, datetime, time, timedelta
from typing import Iterable, Iterator, NamedTuple, Sequence

from app.futures import front_and_next, parse_contract
from app.sim.auctions import Auctions
from app.sim.foreign import ForeignFlow
from app.sim.indices import IndexBoard
from app.sim.orderflow import OrderFlow
from app.sim.exchanges import DERIVATIVES, HNX, HOSE, UPCOM
from app.sim.instrument import Instrument
from app.sim.ticks import price_limits, unit_tick
from app.sim.timetable import (
    LO_SECONDS, T_ATC, T_BREAK, T_CLOSE, T_FUT_ATO, T_LO1, T_LO2, T_MARKER, T_OPEN, VN_TZ,
    activity_profile, next_weekday,
)
from app.sim.universe import (
    FRONT_EVENTS_PER_S, NEXT_EVENTS_PER_S, UNIVERSES, VN30_SYMBOLS, Universe, make_stocks, make_universe,
)
from app.sim.wire import ALL_CHANNELS, DEFAULT_CHANNELS, FrameWriter, SimEvent, instrument_templates, js_str

__all__ = ["MarketSimulator"]


class Listing(NamedTuple):
    """What a universe lists, without any market state: for the fake's REST answers."""

    exchanges: dict[str, str]  # stock symbol -> HOSE / HNX / UPCOM
    indices: dict[str, tuple[str, tuple[str, ...]]]  # index id -> (exchange, constituents; none if sampled)


class MarketSimulator:
    """Seeded SSI market: a universe of stocks (``vn30``, ``hose``, ``hnx``, ``upcom`` or
    ``all``), the two front VN30 futures (with the VN30) and the universe's indices.

    ``symbols`` replaces the vn30 universe's basket by any HOSE names (for tests).
    """

    def __init__(
        self,
        seed: int = 1,
        start: date | None = None,
        days: int | None = 1,
        channels: Iterable[str] = DEFAULT_CHANNELS,
        futures_naming: str = "legacy",
        activity: float = 1.0,
        symbols: Sequence[str] | None = None,
        open_at: time | None = None,
        universe: str = "vn30",
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
        if universe not in UNIVERSES:
            raise ValueError(f"universe must be one of {', '.join(UNIVERSES)}")
        if symbols is not None:
            if universe != "vn30":
                raise ValueError("symbols replace the vn30 universe's basket only")
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
        self.universe = universe
        self.custom_symbols = None if symbols is None else tuple(symbols)
        self.open_at = open_at
        listed = self.build(random.Random(0))
        # The vn30 universe simulates the VN30's constituents only; its other indices are sampled.
        indices = listed.indices or {"VNINDEX": ("HOSE", []), "VN30": ("HOSE", listed.stocks), "HNXIndex": ("HNX", [])}
        self.listing = Listing(
            {i.symbol: i.exchange for i in listed.stocks},
            {idx: (ex, tuple(i.symbol for i in members)) for idx, (ex, members) in indices.items()},
        )
        self.symbols = tuple(self.listing.exchanges)
        self.has_futures = listed.futures
        self._futures = front_and_next(start, futures_naming)

    def build(self, rng: random.Random) -> Universe:
        """Fresh stocks with their static data (drawn from ``rng``) and the universe's indices
        (none for the vn30 universe: its indices sample the rest of the market)."""
        if self.custom_symbols is not None:
            return Universe(make_stocks(self.custom_symbols, rng), {}, True)
        return make_universe(self.universe, self.seed, rng)

    @property
    def futures(self) -> tuple[str, ...]:
        """Front and next contract codes for the current simulated day (none without the VN30)."""
        return self._futures if self.has_futures else ()

    def events(self) -> Iterator[SimEvent]:
        """Frames in time order, with a CLOSE marker at 15:00 ending each day."""
        return _DayRun(self).run()



class _DayRun(OrderFlow, Auctions, ForeignFlow, IndexBoard, FrameWriter):
    """One pass over the simulated days; all mutable state lives here."""

    def __init__(self, sim: MarketSimulator) -> None:
        self.sim = sim
        self.activity = sim.activity
        ch = sim.channels
        self.wants_quote = "X-QUOTE" in ch
        self.wants_trade = "X-TRADE" in ch
        self.wants_snapshot = "X" in ch
        self.wants_room = "R" in ch
        self.wants_index = "MI" in ch
        self.wants_status = "F" in ch
        self.wants_bar = "B" in ch
        self.out: list[SimEvent] = []
        self.at: datetime | None = None
        self.live = False
        self.time_text = ""
        self._init_static()

    # ---- static and cross-day state ---------------------------------------

    def _init_static(self) -> None:
        sim = self.sim
        rng = random.Random(f"ssi-sim/{sim.seed}/static")
        listed = sim.build(rng)
        self.stocks = stocks = listed.stocks
        self.has_futures = listed.futures
        self._init_indices(rng, listed)
        # The stocks by what their board does when (each list in universe order).
        self.hose = [i for i in stocks if i.board is HOSE]
        self.hnx = [i for i in stocks if i.board is HNX]
        self.upcom = [i for i in stocks if i.board is UPCOM]
        self.atc_stocks = [i for i in stocks if i.board.closing_auction]
        self.early_stocks = [i for i in stocks if not i.board.opening_auction]  # continuous from 09:00
        self.last_second = T_MARKER if self.hnx or self.upcom else T_CLOSE
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
            day = next_weekday(day)

    def _setup_day(self, day: date) -> random.Random:
        sim = self.sim
        rng = random.Random(f"ssi-sim/{sim.seed}/{day.isoformat()}")
        self.date_js = js_str(day.strftime("%d/%m/%Y"))
        act = self.activity
        n_ev = max(1.0, act * LO_SECONDS)

        # Market factor: one shared log-return path plus a day drift.
        self.market_return = 0.0
        self.market_sigma = 0.011 / math.sqrt(16_200)
        self.market_drift = rng.gauss(0.0, 0.006) / 16_200
        for ins in self.stocks:
            ins.new_day(ins.next_reference())
            board = ins.board
            ins.ceiling, ins.floor = price_limits(ins.ref, board.band_pct, board.tick)
            daily_vol = rng.uniform(*ins.daily_vol)
            ins.sigma = daily_vol / math.sqrt(max(1.0, ins.event_rate * n_ev))
            if rng.random() < 0.04:
                ins.day_drift = rng.choice((-1, 1)) * rng.uniform(0.065, 0.10)
            else:
                ins.day_drift = rng.gauss(0.0, 0.008)
            ins.est_price = ins.ref
        self._reset_indices(self.date_js)

        codes = front_and_next(day, sim.futures_naming)
        sim._futures = codes
        self.futures: list[Instrument] = []
        for k, code in enumerate(codes if self.has_futures else ()):
            ym = parse_contract(code)
            assert ym is not None
            ins = Instrument(code, DERIVATIVES)
            if ym not in self.fut_basis:
                self.fut_basis[ym] = rng.uniform(-6.0, 3.0) - 2.5 * k
            ins.basis_mean = ins.basis = self.fut_basis[ym]
            ref = self.fut_close.get(ym) or int(round((self.vn30_prior + ins.basis) * 10))
            ins.new_day(ref)
            ins.ceiling, ins.floor = price_limits(ref, 7, unit_tick)
            ins.event_rate = FRONT_EVENTS_PER_S if k == 0 else NEXT_EVENTS_PER_S
            ins.sigma = 0.4 / math.sqrt(max(1.0, ins.event_rate * n_ev))
            ins.level_size_mu = 2.0 if k == 0 else 1.2
            ins.trade_size_mu = 0.6 if k == 0 else 0.2
            self.futures.append(ins)
        self.futures_months = [parse_contract(c) for c in codes]
        for ins in self.stocks + self.futures:
            instrument_templates(ins, self.date_js)
        self._schedule_rooms(rng)
        return rng

    def _groups(self) -> dict[str, tuple[list[Instrument], list[float], float] | None]:
        """Who trades continuously: before 09:15 (futures, HNX, UPCOM), 09:15-14:30 (all),
        after 14:30 (UPCOM) and HNX's PLO, with cumulative event rates to pick one by."""
        futs = self.futures

        def group(insts: list[Instrument], scale: float = 1.0):
            rates = [i.event_rate * scale for i in insts]
            return (insts, *self._cumulative(rates)) if insts and sum(rates) > 0 else None

        return {"early": group(futs + self.early_stocks), "day": group(futs + self.stocks),
                "late": group(self.upcom), "plo": group(self.hnx, 0.05)}

    def _run_day(self, day: date, skip_before: int) -> Iterator[SimEvent]:
        rng = self._setup_day(day)
        act = self.activity
        out = self.out
        midnight = datetime.combine(day, time(0), VN_TZ)
        futs, ato_stocks, atc_stocks = self.futures, self.hose, self.atc_stocks
        groups = self._groups()
        resync = skip_before > T_FUT_ATO
        offsets: dict[int, list[timedelta]] = {}
        seconds = list(range(T_FUT_ATO, T_BREAK + 1)) + list(range(T_LO2, self.last_second + 1))
        m_sig, m_drift = self.market_sigma, self.market_drift
        gauss = rng.gauss
        for s in seconds:
            self.second = s
            self.live = s >= skip_before
            base = midnight + timedelta(seconds=s)
            self.at = base
            self.time_text = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
            if s < T_BREAK or s > T_LO2:
                self.market_return += m_sig * gauss(0.0, 1.0) + m_drift
            if self.live and resync:
                resync = False
                self._resync(s)

            self._transitions(s, rng)
            if s % 5 == 0 and s >= T_OPEN:
                self._index_tick(s, rng)
            due = self.room_due.pop(s, None)
            if due:
                self._room_tick(s, due, rng)

            fut_auction = T_FUT_ATO < s < T_OPEN or T_ATC < s < T_CLOSE
            ato = T_OPEN < s < T_LO1
            atc = T_ATC < s < T_CLOSE
            if fut_auction or ato or atc:
                p = min(1.0, 0.25 * act)
                if fut_auction:
                    for ins in futs:
                        if rng.random() < p:
                            self._auction_tick(ins, rng)
                for ins in ato_stocks if ato else atc_stocks if atc else ():
                    if rng.random() < p * ins.auction_p:
                        self._auction_tick(ins, rng)

            if T_OPEN <= s < T_BREAK or T_LO2 <= s < T_ATC:
                group = groups["early" if s < T_LO1 else "day"]
            elif T_ATC <= s < T_MARKER:
                group = groups["late"]
            else:
                group = None
            if group is not None:
                self._events_in_second(group, base, offsets, rng, self._continuous_event)
            if T_CLOSE < s < T_MARKER and groups["plo"] is not None:
                self._events_in_second(groups["plo"], base, offsets, rng, self._post_close_fill)
            if out:
                yield from out
                out.clear()

        # Day close bookkeeping for the next day.
        for k, ins in enumerate(futs):
            if ins.last:
                self.fut_close[self.futures_months[k]] = ins.last
            self.fut_basis[self.futures_months[k]] = ins.basis
        self._close_indices()
        self._settle_foreign()
        if T_MARKER >= skip_before:
            yield SimEvent(midnight + timedelta(seconds=T_MARKER), None, "CLOSE", "")

    def _events_in_second(self, group, base: datetime, offsets: dict[int, list[timedelta]],
                          rng: random.Random, event) -> None:
        """A Poisson number of events this second, spread evenly over it, each on an
        instrument picked by its event rate."""
        insts, cum, total = group
        n = self._poisson(total * self.activity * activity_profile(self.second), rng)
        if not n:
            return
        offs = offsets.get(n)
        if offs is None:
            offs = offsets[n] = [timedelta(microseconds=(i + 1) * 1_000_000 // (n + 1)) for i in range(n)]
        rnd = rng.random
        for i in range(n):
            ins = insts[bisect_right(cum, rnd() * total)]
            self.at = base + offs[i]
            event(ins, rng)

    @staticmethod
    def _cumulative(rates: list[float]) -> tuple[list[float], float]:
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

    def _resync(self, s: int) -> None:
        """Current session and book for everyone, so a late start sees the book before any trade."""
        for ins in self.futures + self.stocks:
            sess = ins.session(s)
            if sess == "C":
                continue
            self._status_frames([ins], sess)
            if ins.bids or ins.asks:
                est = ins.price_text[ins.est_price] if sess in ("ATO", "ATC") else "0.0"
                self._publish_book(ins, sess, est)

    def _transitions(self, s: int, rng: random.Random) -> None:
        """The session changes at second ``s``: status frames, auctions opening and matching."""
        stocks, futs, hose = self.stocks, self.futures, self.hose
        if s == T_FUT_ATO:
            self._status_frames(futs, "ATO")
            self._start_auction(futs, "ATO", rng)
        elif s == T_OPEN:
            for ins in futs:
                self._auction_match(ins, "ATO", rng)
            self._status_frames(futs, "LO")
            for ins in futs:
                self._open_book(ins, ins.est_price, rng)
                self._publish_book(ins, "LO")
            self._status_frames(hose, "ATO")
            self._start_auction(hose, "ATO", rng)
            # HNX and UPCOM have no opening auction: their books open at the reference price.
            self._status_frames(self.early_stocks, "LO")
            for ins in self.early_stocks:
                self._open_book(ins, ins.ref, rng)
                self._publish_book(ins, "LO")
        elif s == T_LO1:
            for ins in hose:
                self._auction_match(ins, "ATO", rng)
            self._status_frames(hose, "LO")
            for ins in hose:
                self._open_book(ins, ins.est_price, rng)
                self._publish_book(ins, "LO")
        elif s == T_BREAK:
            self._status_frames(futs + stocks, "BREAK")
        elif s == T_LO2:
            self._status_frames(futs + stocks, "LO")
        elif s == T_ATC:
            self._status_frames(futs + self.atc_stocks, "ATC")
            self._start_auction(futs + self.atc_stocks, "ATC", rng)
        elif s == T_CLOSE:
            for ins in futs + self.atc_stocks:
                self._auction_match(ins, "ATC", rng)
                ins.bids, ins.asks = [], []
            self._status_frames(futs + hose, "C")
            # The closing foreign-flow snapshot follows the closing prints.
            self._room_snapshots(hose)
            # HNX's PLO: orders at the closing price only, no book of prices.
            self._status_frames(self.hnx, "PLO")
            for ins in self.hnx:
                self._publish_book(ins, "PLO")
        elif s == T_MARKER:
            closing = self.hnx + self.upcom
            for ins in closing:
                ins.bids, ins.asks = [], []
            self._status_frames(closing, "C")
            self._room_snapshots(closing)

    def _post_close_fill(self, ins: Instrument, rng: random.Random) -> None:
        """A PLO match: at the day's closing price, no aggressor."""
        if ins.last:
            self._fill(ins, ins.last, self._order_size(ins, rng), "Unknow", "PLO", None, rng)
