"""Continuous trading: order-book events, sweeps, limit locks and fills."""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from app.sim.timetable import T_ATC, T_LO1

if TYPE_CHECKING:
    from app.sim.instrument import Instrument


class OrderFlow:
    """Mixin of the day run: one random event at a time moves an instrument's book.

    Uses the run's market factor (``market_return``, ``second``, ``vn30_value``), the
    stocks' index tallies, foreign flow and the frame writer.
    """

    second: int
    market_return: float

    # ---- fills ---------------------------------------------------------------

    def _fill(self, ins: Instrument, price: int, vol: int, side: str, session: str,
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
        ins.trade_text_stale = True
        if ins.is_stock:
            # Its indices' baskets and turnover move with every stock print.
            move = price - old
            for tally, weight in ins.indices:
                tally.basket += weight * move
                tally.qty += vol
                tally.val += price * vol
            self._foreign_fill(ins, vol, rng)
        self._print_trade(ins, price, vol, side, session, est)

    # ---- continuous trading ---------------------------------------------------

    def _fair_value(self, ins: Instrument, rng: random.Random) -> float:
        if ins.is_stock:
            ins.idio_return += ins.sigma * rng.gauss(0.0, 1.0)
            # HNX and UPCOM trade before 09:15: the day's drift starts from there.
            prog = max(0.0, (self.second - T_LO1) / (T_ATC - T_LO1))
            return ins.ref * math.exp(ins.beta * self.market_return + ins.idio_return + ins.day_drift * prog)
        # Futures track the live VN30 value plus a slowly mean-reverting basis.
        ins.basis += 0.01 * (ins.basis_mean - ins.basis) + ins.sigma * rng.gauss(0.0, 1.0)
        return (self.vn30_value() + ins.basis) * 10.0

    def _level_size(self, ins: Instrument, rng: random.Random) -> int:
        return (int(math.exp(rng.gauss(ins.level_size_mu, 0.9))) + 1) * ins.lot

    def _order_size(self, ins: Instrument, rng: random.Random) -> int:
        return min(int(math.exp(rng.gauss(ins.trade_size_mu, 1.1))) + 1, 3_000) * ins.lot

    def _refill_book(self, ins: Instrument, rng: random.Random) -> None:
        bids, asks = ins.bids, ins.asks
        up, dn = ins.tick_up, ins.tick_down
        # Fresh orders refill an emptied side unless the book is locked at a limit.
        if not asks and bids and bids[0][0] < ins.ceiling:
            asks.append([up(bids[0][0]), self._level_size(ins, rng)])
        if not bids and asks and asks[0][0] > ins.floor:
            bids.append([dn(asks[0][0]), self._level_size(ins, rng)])
        d = ins.depth
        if asks:
            while len(asks) < d:
                p = up(asks[-1][0])
                if p > ins.ceiling:
                    break
                asks.append([p, self._level_size(ins, rng)])
        if bids:
            while len(bids) < d:
                p = dn(bids[-1][0])
                if p < ins.floor:
                    break
                bids.append([p, self._level_size(ins, rng)])

    def _open_book(self, ins: Instrument, price: int, rng: random.Random) -> None:
        """Book right after an opening auction printed at ``price``."""
        ins.bids, ins.asks = [], []
        if price >= ins.ceiling or (price > ins.floor and rng.random() < 0.5):
            ins.asks.append([price, self._level_size(ins, rng)])
        else:
            ins.bids.append([price, self._level_size(ins, rng)])
        self._refill_book(ins, rng)

    def _continuous_event(self, ins: Instrument, rng: random.Random) -> None:
        bids, asks = ins.bids, ins.asks
        fv = self._fair_value(ins, rng)
        rnd = rng.random
        p_trade = 0.4 if ins.is_stock else 0.36
        if not asks and bids and bids[0][0] == ins.ceiling:
            self._locked_event(ins, bids, fv >= ins.ceiling, "BU", p_trade, rng)
            return
        if not bids and asks and asks[0][0] == ins.floor:
            self._locked_event(ins, asks, fv <= ins.floor, "SD", p_trade, rng)
            return
        if not bids or not asks:
            self._refill_book(ins, rng)
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
                bids.insert(0, [ins.tick_up(b1), self._level_size(ins, rng)])
                if len(bids) > ins.depth:
                    bids.pop()
            else:
                asks.insert(0, [ins.tick_down(a1), self._level_size(ins, rng)])
                if len(asks) > ins.depth:
                    asks.pop()
        elif r < 0.68:
            side = bids if rnd() < 0.5 else asks
            i = 0 if rnd() < 0.5 else int(rnd() * len(side))
            side[i][1] += self._level_size(ins, rng) // 2 // ins.lot * ins.lot + ins.lot
        else:
            # Liquidity withdraws from the side the fair value is moving through.
            side = asks if rnd() < pb else bids
            i = 0 if rnd() < 0.65 else int(rnd() * len(side))
            lvl = side[i]
            if rnd() < 0.45 or lvl[1] <= ins.lot:
                side.pop(i)
            else:
                lvl[1] -= max(ins.lot, int(lvl[1] * rnd() * 0.8) // ins.lot * ins.lot)
        self._refill_book(ins, rng)
        self._publish_book(ins, "LO")

    def _locked_event(self, ins: Instrument, queue: list[list[int]], pushing: bool, side: str,
                p_trade: float, rng: random.Random) -> None:
        """Book locked at a limit: one side empty, the other queued at the limit."""
        lvl = queue[0]
        r = rng.random()
        if r < p_trade:
            q = min(self._order_size(ins, rng), lvl[1])
            lvl[1] -= q
            if not lvl[1]:
                queue.pop(0)
            self._fill(ins, lvl[0], q, side, "LO", None, rng)
        elif pushing and r < 0.8:
            lvl[1] += self._level_size(ins, rng)
        elif rng.random() < 0.5 or lvl[1] <= ins.lot:
            queue.pop(0)
        else:
            lvl[1] -= max(ins.lot, int(lvl[1] * rng.random() * 0.7) // ins.lot * ins.lot)
        self._refill_book(ins, rng)
        self._publish_book(ins, "LO")

    def _sweep(self, ins: Instrument, buy: bool, rng: random.Random) -> None:
        """An aggressive order taking up to three levels, one fill per level."""
        opp, own = (ins.asks, ins.bids) if buy else (ins.bids, ins.asks)
        side = "BU" if buy else "SD"
        v = self._order_size(ins, rng)
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
            self._refill_book(ins, rng)
            self._publish_book(ins, "LO")
            if not v or not opp:
                break
