"""Foreign investors: their buying and selling within each stock's foreign room, and R frames."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from app.sim.timetable import T_ATC, T_BREAK, T_LO1, T_LO2
from app.sim.numbers import fmt_int

if TYPE_CHECKING:
    from app.sim.instrument import Instrument


class ForeignFlow:
    """Mixin of the day run: foreign share of fills, and room snapshots at random intervals."""

    stocks: list[Instrument]
    room_due: dict[int, list[Instrument]]  # second -> stocks whose R frame is due then
    live: bool
    wants_room: bool
    time_text: str

    def _schedule_rooms(self, rng: random.Random) -> None:
        """First R snapshot of each stock, within 30 s of continuous trading."""
        self.room_due = {}
        for ins in self.stocks:
            self.room_due.setdefault(T_LO1 + rng.randint(1, 30), []).append(ins)

    def _foreign_fill(self, ins: Instrument, vol: int, rng: random.Random) -> None:
        """Maybe a foreign buyer and/or seller in this fill, if the room and holding allow."""
        if rng.random() < ins.p_foreign_buy and ins.total_room - ins.holding - ins.foreign_buy + ins.foreign_sell >= vol:
            ins.foreign_buy += vol
        if rng.random() < ins.p_foreign_sell and ins.holding + ins.foreign_buy - ins.foreign_sell >= vol:
            ins.foreign_sell += vol

    def _settle_foreign(self) -> None:
        """At the day's end the foreign trades become holdings."""
        for ins in self.stocks:
            ins.holding += ins.foreign_buy - ins.foreign_sell

    def _room_tick(self, s: int, due: list[Instrument], rng: random.Random) -> None:
        """R snapshots of the stocks due at ``s``, and when each is due next."""
        for ins in due:
            nxt = s + int(rng.randint(3, 60) * ins.room_every)
            if T_BREAK <= nxt < T_LO2:
                nxt += T_LO2 - T_BREAK
            # Snapshots stop with continuous trading; the closing one comes from _room_snapshots.
            if nxt < (T_ATC if ins.board.closing_auction else ins.board.closes_at):
                self.room_due.setdefault(nxt, []).append(ins)
        self._room_snapshots(due)

    def _room_snapshots(self, insts: list[Instrument]) -> None:
        if not (self.live and self.wants_room):
            return
        t = self.time_text
        for ins in insts:
            px = ins.last or ins.ref
            room = ins.total_room - ins.holding - ins.foreign_buy + ins.foreign_sell
            self._emit("R", ins.symbol, ins.room_tpl % (
                t, fmt_int(room), fmt_int(ins.foreign_buy), fmt_int(ins.foreign_sell), fmt_int(ins.foreign_buy * px), fmt_int(ins.foreign_sell * px)))
