"""Indices: VN30 from its constituents, VNINDEX and HNXIndex around the market factor, and MI frames."""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from app.sim.timetable import T_BREAK, T_CLOSE, T_LO1, T_LO2, T_OPEN, activity_profile, hnx_session, stock_session
from app.sim.numbers import fmt_2dp, fmt_int
from app.sim.wire import index_template

if TYPE_CHECKING:
    from app.sim.universe import Instrument

# Index id -> exchange, in the order MI frames come.
INDEX_EXCHANGES = {"VNINDEX": "HOSE", "VN30": "HOSE", "HNXIndex": "HNX"}


class IndexBoard:
    """Mixin of the day run: index values, turnover (incl. put-through, ``pt``) and breadth.

    VN30 is price weighted: ``basket`` is the weighted sum of its constituents' last
    prices, ``basket_open`` that sum at the reference prices.
    """

    stocks: list[Instrument]
    market_return: float
    activity: float
    live: bool
    wants_index: bool
    time_text: str

    def _init_indices(self, rng: random.Random) -> None:
        """Prior closes and listed-name counts for the first day."""
        self.vn30_prior = round(rng.uniform(1_850.0, 1_950.0), 2)
        self.vni_prior = round(self.vn30_prior * rng.uniform(0.88, 0.95), 2)
        self.hnx_prior = round(rng.uniform(220.0, 260.0), 2)
        self.vni_listed = rng.randint(392, 405)
        self.hnx_listed = rng.randint(295, 310)

    def _reset_indices(self, date_js: str) -> None:
        """The day's accumulators and MI templates; the stocks' reference prices are set."""
        self.basket_open = sum(i.index_weight * i.ref for i in self.stocks)
        self.basket = self.basket_open
        self.vn30_qty = self.vn30_val = 0
        self.vni_noise = self.hnx_noise = 0.0
        self.rest_qty = self.rest_val = 0
        self.vn30_pt_qty = self.vn30_pt_val = 0
        self.vni_pt_qty = self.vni_pt_val = 0
        self.hnx_qty = self.hnx_val = 0
        self.hnx_pt_qty = self.hnx_pt_val = 0
        self.vni_breadth = [0, self.vni_listed - len(self.stocks), 0, 0, 0]  # adv, nc, dec, ceil, floor
        self.hnx_breadth = [0, self.hnx_listed, 0, 0, 0]
        priors = {"VNINDEX": self.vni_prior, "VN30": self.vn30_prior, "HNXIndex": self.hnx_prior}
        self.index_tpl = {idx: index_template(idx, ex, priors[idx], date_js) for idx, ex in INDEX_EXCHANGES.items()}

    def _close_indices(self) -> None:
        """Today's closes become tomorrow's priors."""
        self.vn30_prior = round(self.vn30_value(), 2)
        self.vni_prior, self.hnx_prior = self.vni_close, self.hnx_close

    def vn30_value(self) -> float:
        return self.vn30_prior * self.basket / self.basket_open

    def _index_tick(self, s: int, rng: random.Random) -> None:
        if not (T_OPEN <= s <= T_BREAK or T_LO2 <= s <= T_CLOSE):
            return
        act = self.activity
        stock_sess, hnx_sess = stock_session(s), hnx_session(s)
        trading = stock_sess == "LO" or s in (T_LO1, T_CLOSE)
        prof = activity_profile(s)
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
                ceil += last == ins.ceiling
            else:
                dec += 1
                flo += last == ins.floor
        vn30_b = (adv, nc, dec, ceil, flo)

        # The rest of HOSE and HNX follow the market factor with their own noise.
        if s >= T_LO1 and stock_sess != "BREAK":
            self.vni_noise += gauss(0.0, 0.0004)
        if hnx_sess != "BREAK":
            self.hnx_noise += gauss(0.0, 0.0006)
        rest_ret = 0.75 * self.market_return + self.vni_noise if s >= T_LO1 else 0.0
        hnx_ret = 0.5 * self.market_return + self.hnx_noise
        vn30_ret = vn30 / self.vn30_prior - 1.0
        vni = round(self.vni_prior * (1.0 + 0.55 * vn30_ret + 0.45 * (math.exp(rest_ret) - 1.0)), 2)
        hnx = round(self.hnx_prior * math.exp(hnx_ret), 2)
        self.vni_close, self.hnx_close = vni, hnx
        if s >= T_LO1:
            self._breadth(self.vni_breadth, self.vni_listed - len(self.stocks), rest_ret * 100.0)
        if s >= T_OPEN:
            self._breadth(self.hnx_breadth, self.hnx_listed, hnx_ret * 100.0)

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

        if not (self.live and self.wants_index):
            return
        vb, hb = self.vni_breadth, self.hnx_breadth
        vni_b = tuple(a + b for a, b in zip(vn30_b, vb))
        self._index_frame("VNINDEX", vni, self.vni_prior, self.vn30_qty + self.rest_qty,
                       self.vn30_val + self.rest_val, vni_b, self.vni_pt_qty, self.vni_pt_val, stock_sess)
        self._index_frame("VN30", vn30, self.vn30_prior, self.vn30_qty, self.vn30_val, vn30_b,
                       self.vn30_pt_qty, self.vn30_pt_val, stock_sess)
        self._index_frame("HNXIndex", hnx, self.hnx_prior, self.hnx_qty, self.hnx_val, tuple(hb),
                       self.hnx_pt_qty, self.hnx_pt_val, hnx_sess)

    def _index_frame(self, idx: str, value: float, prior: float, qty: int, val: int,
                  breadth: tuple[int, ...], pt_qty: int, pt_val: int, session: str) -> None:
        ch = round(value - prior, 2)
        adv, nc, dec, ceil, flo = breadth
        self._emit("MI", idx, self.index_tpl[idx] % (
            repr(value), self.time_text, fmt_int(qty), fmt_int(val), adv, nc, dec, ceil, flo,
            fmt_2dp(ch), fmt_2dp(100.0 * ch / prior), fmt_int(pt_qty), fmt_int(pt_val),
            fmt_int(qty + pt_qty), fmt_int(val + pt_val), session))

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
