"""Indices and their MI frames, every 5 s.

With a listed universe every index is computed from its constituents: its value moves
with their prices (capitalisation weighted; the VN30 with its own weights), its turnover
is theirs and its breadth counts them, so Advances + NoChanges + Declines is the number
of constituents. The ``vn30`` universe simulates only the VN30: VNINDEX and HNXIndex
then add the rest of their board, sampled around the market factor, to a listed count.
"""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Callable

from app.sim.numbers import fmt_2dp, fmt_int
from app.sim.timetable import T_BREAK, T_CLOSE, T_LO1, T_LO2, T_OPEN, activity_profile, hnx_session, stock_session
from app.sim.wire import index_template

if TYPE_CHECKING:
    from app.sim.instrument import Instrument
    from app.sim.universe import Universe

__all__ = ["IndexBoard", "IndexTally", "SAMPLED_INDICES", "breadth_of"]

# The vn30 universe's indices -> exchange, in the order MI frames come.
SAMPLED_INDICES = {"VNINDEX": "HOSE", "VN30": "HOSE", "HNXIndex": "HNX"}


class IndexTally:
    """One index's running figures: the weighted sum of its constituents' last prices
    (``basket``; ``basket_open`` at the reference prices) and their matched turnover."""

    __slots__ = ("index_id", "exchange", "members", "weights", "prior", "basket", "basket_open",
                 "qty", "val", "pt_qty", "pt_val", "tpl", "session", "closes_at", "value")

    def __init__(self, index_id: str, exchange: str, members: list[Instrument], weights: list[float],
                 prior: float) -> None:
        self.index_id, self.exchange, self.members, self.weights = index_id, exchange, members, weights
        self.prior = self.value = prior
        board = members[0].board if members else None
        self.session: Callable[[int], str] = board.session if board else stock_session
        self.closes_at = board.closes_at if board else T_CLOSE
        for ins, w in zip(members, weights):
            ins.indices.append((self, w))
        self.new_day("")

    def new_day(self, date_js: str) -> None:
        self.basket_open = self.basket = sum(w * i.ref for i, w in zip(self.members, self.weights))
        self.qty = self.val = self.pt_qty = self.pt_val = 0
        self.tpl = index_template(self.index_id, self.exchange, self.prior, date_js) if date_js else ""

    def level(self) -> float:
        return self.prior * self.basket / self.basket_open if self.basket_open else self.prior


def breadth_of(members: list[Instrument]) -> tuple[int, int, int, int, int]:
    """(advances, no change, declines, at ceiling, at floor) against the reference prices."""
    adv = nc = dec = ceil = flo = 0
    for ins in members:
        last = ins.last
        if not last or last == ins.ref:
            nc += 1
        elif last > ins.ref:
            adv += 1
            ceil += last == ins.ceiling
        else:
            dec += 1
            flo += last == ins.floor
    return adv, nc, dec, ceil, flo


class IndexBoard:
    """Mixin of the day run: the indices of its universe and their MI frames."""

    stocks: list[Instrument]
    market_return: float
    activity: float
    live: bool
    wants_index: bool
    time_text: str

    def _init_indices(self, rng: random.Random, universe: Universe | None) -> None:
        """Prior closes (and the vn30 universe's listed counts) for the first day."""
        self.vn30_prior = round(rng.uniform(1_850.0, 1_950.0), 2)
        self.vni_prior = round(self.vn30_prior * rng.uniform(0.88, 0.95), 2)
        self.hnx_prior = round(rng.uniform(220.0, 260.0), 2)
        self.vni_listed = rng.randint(392, 405)
        self.hnx_listed = rng.randint(295, 310)
        self.sampled = universe is None or not universe.indices
        self.vn30: IndexTally | None = None
        if self.sampled:
            # Only the VN30 basket is simulated; its weights make a price-weighted index.
            self.vn30 = IndexTally("VN30", "HOSE", self.stocks, [i.index_weight for i in self.stocks],
                                   self.vn30_prior)
            self.tallies = [self.vn30]
            return
        priors = {"VNINDEX": self.vni_prior, "VN30": self.vn30_prior, "HNXIndex": self.hnx_prior,
                  "VN100": round(self.vn30_prior * rng.uniform(0.9, 0.97), 2),
                  "HNX30": round(rng.uniform(450.0, 560.0), 2), "HNXUpcomIndex": round(rng.uniform(95.0, 125.0), 2)}
        self.tallies = []
        for idx, (exchange, members) in universe.indices.items():
            weights = [i.index_weight if idx == "VN30" else float(i.shares) for i in members]
            self.tallies.append(IndexTally(idx, exchange, members, weights, priors[idx]))
            if idx == "VN30":
                self.vn30 = self.tallies[-1]

    def _reset_indices(self, date_js: str) -> None:
        """The day's accumulators and MI templates; the stocks' reference prices are set."""
        for t in self.tallies:
            t.new_day(date_js)
        if not self.sampled:
            return
        self.vn30.tpl = ""
        self.vni_noise = self.hnx_noise = 0.0
        self.rest_qty = self.rest_val = 0
        self.vn30_pt_qty = self.vn30_pt_val = 0
        self.vni_pt_qty = self.vni_pt_val = 0
        self.hnx_qty = self.hnx_val = 0
        self.hnx_pt_qty = self.hnx_pt_val = 0
        self.vni_breadth = [0, self.vni_listed - len(self.stocks), 0, 0, 0]  # adv, nc, dec, ceil, floor
        self.hnx_breadth = [0, self.hnx_listed, 0, 0, 0]
        priors = {"VNINDEX": self.vni_prior, "VN30": self.vn30_prior, "HNXIndex": self.hnx_prior}
        self.index_tpl = {idx: index_template(idx, ex, priors[idx], date_js) for idx, ex in SAMPLED_INDICES.items()}

    def _close_indices(self) -> None:
        """Today's closes become tomorrow's priors."""
        if self.sampled:
            self.vn30.prior = self.vn30_prior = round(self.vn30_value(), 2)
            self.vni_prior, self.hnx_prior = self.vni_close, self.hnx_close
            return
        for t in self.tallies:
            t.prior = t.value

    def vn30_value(self) -> float:
        return self.vn30.level()

    def _index_tick(self, s: int, rng: random.Random) -> None:
        if self.sampled:
            self._sampled_tick(s, rng)
            return
        act = self.activity
        for t in self.tallies:
            if not (T_OPEN <= s <= T_BREAK or T_LO2 <= s <= t.closes_at):
                continue
            sess = t.session(s)
            if sess in ("LO", "PLO") and rng.random() < 0.05 * act:
                q = rng.randint(50, 5_000) * 100
                t.pt_qty += q
                t.pt_val += q * rng.randrange(100, 400) * 100
            t.value = round(t.level(), 2)
            if self.live and self.wants_index:
                self._index_frame(t.tpl, t.value, t.prior, t.qty, t.val, breadth_of(t.members),
                                  t.pt_qty, t.pt_val, sess, t.index_id)

    def _sampled_tick(self, s: int, rng: random.Random) -> None:
        if not (T_OPEN <= s <= T_BREAK or T_LO2 <= s <= T_CLOSE):
            return
        act = self.activity
        stock_sess, hnx_sess = stock_session(s), hnx_session(s)
        trading = stock_sess == "LO" or s in (T_LO1, T_CLOSE)
        prof = activity_profile(s)
        gauss = rng.gauss

        # VN30 straight from the constituents.
        vn30 = round(self.vn30_value(), 2)
        vn30_b = breadth_of(self.stocks)

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
        vb, hb, tpl, v30 = self.vni_breadth, self.hnx_breadth, self.index_tpl, self.vn30
        vni_b = tuple(a + b for a, b in zip(vn30_b, vb))
        self._index_frame(tpl["VNINDEX"], vni, self.vni_prior, v30.qty + self.rest_qty,
                          v30.val + self.rest_val, vni_b, self.vni_pt_qty, self.vni_pt_val, stock_sess, "VNINDEX")
        self._index_frame(tpl["VN30"], vn30, self.vn30_prior, v30.qty, v30.val, vn30_b,
                          self.vn30_pt_qty, self.vn30_pt_val, stock_sess, "VN30")
        self._index_frame(tpl["HNXIndex"], hnx, self.hnx_prior, self.hnx_qty, self.hnx_val, tuple(hb),
                          self.hnx_pt_qty, self.hnx_pt_val, hnx_sess, "HNXIndex")

    def _index_frame(self, tpl: str, value: float, prior: float, qty: int, val: int,
                     breadth: tuple[int, ...], pt_qty: int, pt_val: int, session: str, idx: str) -> None:
        ch = round(value - prior, 2)
        adv, nc, dec, ceil, flo = breadth
        self._emit("MI", idx, tpl % (
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
