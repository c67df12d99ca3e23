"""Auctions: the opening (ATO) and closing (ATC) call auctions and their match."""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from app.sim.timetable import T_ATC, T_LO1

if TYPE_CHECKING:
    from app.sim.instrument import Instrument


class Auctions:
    """Mixin of the day run: an auction's book shows one level at the estimated match price
    (``est_price``), which walks toward the fair value until the match prints it."""

    second: int
    market_return: float
    activity: float

    def _auction_book(self, ins: Instrument, rng: random.Random) -> None:
        p = ins.est_price
        ins.bids = [[p, self._level_size(ins, rng)]]
        ins.asks = [[ins.tick_up(p), self._level_size(ins, rng)]] if p < ins.ceiling else []
        self._refill_book(ins, rng)

    def _auction_target(self, ins: Instrument) -> int:
        if ins.is_stock:
            prog = max(0.0, (self.second - T_LO1) / (T_ATC - T_LO1))
            fv = ins.ref * math.exp(ins.beta * self.market_return + ins.idio_return + ins.day_drift * prog)
            p = ins.round(fv)
        else:
            ins.basis += 0.01 * (ins.basis_mean - ins.basis)
            p = int(round((self.vn30_value() + ins.basis) * 10))
        return min(ins.ceiling, max(ins.floor, p))

    def _auction_tick(self, ins: Instrument, rng: random.Random) -> None:
        target = self._auction_target(ins)
        if target != ins.est_price:
            step = ins.tick_up if target > ins.est_price else ins.tick_down
            ins.est_price = step(ins.est_price) if rng.random() < 0.7 else target
        self._auction_book(ins, rng)
        self._publish_book(ins, ins.session(self.second), ins.price_text[ins.est_price])

    def _start_auction(self, insts: list[Instrument], session: str, rng: random.Random) -> None:
        for ins in insts:
            if session == "ATO":
                ins.est_price = ins.ref
            else:
                ins.est_price = ins.last or ins.ref
            self._auction_book(ins, rng)
            self._publish_book(ins, session, ins.price_text[ins.est_price])

    def _auction_match(self, ins: Instrument, session: str, rng: random.Random) -> None:
        """Auction match: many fills at one price, all stamped with the auction time."""
        price = ins.est_price = min(ins.ceiling, max(ins.floor, ins.est_price))
        k = rng.randint(15, 60) if ins.is_stock else rng.randint(5, 25)
        n = max(1, int(k * self.activity * ins.auction_fills + rng.random()))
        est = ins.price_text[price]
        bump = 1.2 if session == "ATC" else 0.8
        for _ in range(n):
            lots = min(int(math.exp(rng.gauss(ins.trade_size_mu + bump, 1.3))) + 1, 20_000)
            self._fill(ins, price, lots * ins.lot, "Unknow", session, est, rng)
            # The snapshot shows the match; the book itself is rebuilt afterwards.
            self._publish_book(ins, session, est, quote=False)
