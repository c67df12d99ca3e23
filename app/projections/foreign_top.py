"""The foreign summary kept up to date by what changed, not recomputed over the market.

:func:`app.projections.foreign.summarize` is the rule: exact totals over every symbol and
the top 5 net buyers and sellers (ties by symbol). Recomputing it each batch costs the
whole market (~1,600 symbols) per batch; this index keeps each symbol's contribution to
the totals and two ordered lists of net values, so a batch costs only the symbols whose
foreign state it changed. It holds nothing of its own: it is rebuilt from the foreign
states whenever a session is loaded, and equals ``summarize`` after every update (the
tests check it against the full recomputation).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from app.projections import money
from app.projections.foreign import TOP_N, ForeignState, ForeignSummaryState

# A symbol's part of the totals: buy value, sell value (tenths), buy volume, sell volume.
_Part = tuple[int, int, int, int]


class ForeignTop:
    """Totals and ordered net values of a session's foreign states."""

    __slots__ = ("_parts", "_net", "_buyers", "_sellers", "_buy_val", "_sell_val", "_buy_vol", "_sell_vol")

    def __init__(self, states: dict[str, ForeignState] | None = None):
        self._parts: dict[str, _Part] = {}
        self._net: dict[str, float] = {}
        # Ascending lists: buyers by (-net, symbol), sellers by (net, symbol), so the
        # first entries are the top ones and equal values order by symbol, as the rule's
        # stable sort over symbols does.
        self._buyers: list[tuple[float, str]] = []
        self._sellers: list[tuple[float, str]] = []
        self._buy_val = self._sell_val = self._buy_vol = self._sell_vol = 0
        if states:
            self.update(states, states)

    def update(self, states: dict[str, ForeignState], symbols: Iterable[str]) -> None:
        """Take the current state of ``symbols`` (changed since the last update)."""
        for sym in symbols:
            self._remove(sym)
            s = states.get(sym)
            if s is not None:
                self._add(s)

    def _remove(self, sym: str) -> None:
        part = self._parts.pop(sym, None)
        if part is None:
            return
        self._buy_val -= part[0]
        self._sell_val -= part[1]
        self._buy_vol -= part[2]
        self._sell_vol -= part[3]
        net = self._net.pop(sym)
        if net > 0:
            _discard(self._buyers, (-net, sym))
        elif net < 0:
            _discard(self._sellers, (net, sym))

    def _add(self, s: ForeignState) -> None:
        sym = s.symbol
        part = (money.as_tenths(s.buy_value), money.as_tenths(s.sell_value), s.buy_volume, s.sell_volume)
        self._parts[sym] = part
        self._buy_val += part[0]
        self._sell_val += part[1]
        self._buy_vol += part[2]
        self._sell_vol += part[3]
        net = self._net[sym] = s.net_value
        if net > 0:
            insort(self._buyers, (-net, sym))
        elif net < 0:
            insort(self._sellers, (net, sym))

    def summary(self) -> ForeignSummaryState | None:
        """What ``summarize`` gives for the states taken so far (None for none)."""
        if not self._parts:
            return None
        out = ForeignSummaryState()
        out.total_buy_volume, out.total_sell_volume = self._buy_vol, self._sell_vol
        out.total_buy_value, out.total_sell_value = money.served(self._buy_val), money.served(self._sell_val)
        out.total_net_value = money.served(self._buy_val - self._sell_val)
        out.total_net_volume = self._buy_vol - self._sell_vol
        out.top_buy = [sym for _, sym in self._buyers[:TOP_N]]
        out.top_sell = [sym for _, sym in self._sellers[:TOP_N]]
        return out


def _discard(ordered: list[tuple[float, str]], item: tuple[float, str]) -> None:
    i = bisect_left(ordered, item)
    if i < len(ordered) and ordered[i] == item:
        del ordered[i]
