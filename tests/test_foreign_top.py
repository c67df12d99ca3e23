"""The incremental foreign summary equals the rule's full recomputation after every batch."""

from __future__ import annotations

from hypothesis import given, settings as hsettings, strategies as st

from app.projections import money
from app.projections.foreign import ForeignState, summarize
from app.projections.foreign_top import ForeignTop

SYMBOLS = [f"S{i:02d}" for i in range(12)]
# Few distinct values so ties (equal net values, ordered by symbol) and zeros are common.
VALUES = st.sampled_from([0, 10, 20, 35, 1_000, 7_000_000])


def _state(sym: str, buy_tenths: int, sell_tenths: int, buy_vol: int, sell_vol: int) -> ForeignState:
    s = ForeignState(symbol=sym)
    s.buy_volume, s.sell_volume = buy_vol, sell_vol
    s.net_volume = buy_vol - sell_vol
    s.buy_value, s.sell_value = money.served(buy_tenths), money.served(sell_tenths)
    s.net_value = money.served(buy_tenths - sell_tenths)
    return s


UPDATE = st.tuples(st.sampled_from(SYMBOLS), VALUES, VALUES, VALUES, VALUES, st.booleans())
BATCHES = st.lists(st.lists(UPDATE, min_size=1, max_size=8), min_size=1, max_size=12)


@hsettings(max_examples=150, deadline=None)
@given(BATCHES)
def test_incremental_summary_equals_full_recomputation(batches):
    states: dict[str, ForeignState] = {}
    top = ForeignTop()
    for batch in batches:
        changed = set()
        for sym, bt, st_, bv, sv, remove in batch:
            if remove and sym in states:
                del states[sym]
            else:
                states[sym] = _state(sym, bt, st_, bv, sv)
            changed.add(sym)
        top.update(states, changed)
        expected = summarize(states) if states else None
        assert top.summary() == expected
        # Built in one go from the same states (as after a load): the same summary.
        assert ForeignTop(states).summary() == expected


def test_a_top_buyer_falling_out_is_replaced_by_the_next_best():
    states = {s: _state(s, 100 * (i + 1), 0, 1, 0) for i, s in enumerate(SYMBOLS)}
    top = ForeignTop(states)
    assert top.summary().top_buy == ["S11", "S10", "S09", "S08", "S07"]
    states["S11"] = _state("S11", 0, 50, 1, 1)  # now a seller
    top.update(states, ["S11"])
    summary = top.summary()
    assert summary.top_buy == ["S10", "S09", "S08", "S07", "S06"]
    assert summary.top_sell == ["S11"]
    assert summary == summarize(states)
