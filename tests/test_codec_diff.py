"""The diff of a batch: what it writes, applied to what was written, is the state's hashes
(by value for the kinds that can, by encoded hash for the rest), and the quote's book
stored one field a side."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings as hsettings, strategies as st

from app.keys import SessionKeys
from app.projections import codec, quotes
from app.projections.session import finish_batch, fold, new_session
from app.sim import MarketSimulator

SESSION = date(2026, 11, 25)


def _frames(universe: str, n: int) -> list[str]:
    out = []
    for event in MarketSimulator(universe=universe, seed=5, start=SESSION, days=1).events():
        if event.frame is not None:
            out.append(event.frame)
            if len(out) == n:
                break
    return out


FRAMES = {"vn30": _frames("vn30", 3000), "all": _frames("all", 3000)}


def _apply(mirror: dict[str, dict[str, str]], changes: codec.Changes) -> None:
    for key in changes.delete:
        mirror.pop(key, None)
    for key, flat in changes.hset:
        mirror.setdefault(key, {}).update(zip(flat[0::2], flat[1::2]))
    for key, names in changes.hdel:
        for name in names:
            mirror.get(key, {}).pop(name, None)


@hsettings(max_examples=12, deadline=None)
@given(universe=st.sampled_from(["vn30", "all"]), cuts=st.lists(st.integers(1, 400), min_size=1, max_size=12))
def test_the_writes_of_every_batch_add_up_to_the_state(universe, cuts):
    keys = SessionKeys(SESSION.isoformat())
    state = new_session(SESSION.isoformat())
    written: dict = {}
    members: dict = {}
    snapshots: dict = {}
    mirror: dict[str, dict[str, str]] = {}
    frames = FRAMES[universe]
    at = 0
    for cut in cuts + [len(frames)]:
        for f in frames[at : at + cut]:
            fold(state, f)
        at += cut
        finish_batch(state)
        _apply(mirror, codec.diff(state, keys, written, members, snapshots))
        assert {k: v for k, v in mirror.items() if v} == codec.encode_all(state, keys)
        if at >= len(frames):
            break
    # By value, only what changed was sent: the kinds that can were diffed without a hash.
    assert snapshots


def test_a_quote_is_stored_one_field_a_side_and_read_back_the_same():
    empty = (0.0,) * 10
    q = quotes.QuoteState(symbol="VNM", ceiling=66.5, bid_prices=(62.1, 0.0, 61.9) + empty[3:],
                          bid_vols=(1500.0, 0.0, 20.0) + empty[3:], trading_session="LO")
    fields = quotes.to_hash(q)
    assert fields["bid"] == "[[62.1,1500.0],[0.0,0.0],[61.9,20.0]]"
    assert "ask" not in fields
    assert quotes.from_hash(fields) == q
    # As earlier versions wrote it (two fields a level, empty ones left out): the same quote.
    legacy = {k: v for k, v in fields.items() if k != "bid"}
    legacy.update({"bid_price_1": "62.1", "bid_vol_1": "1500.0", "bid_price_3": "61.9", "bid_vol_3": "20.0"})
    assert quotes.from_hash(legacy) == q
    # Only the side that changed is encoded again.
    before = quotes.snapshot(q)
    q.ask_prices, q.ask_vols = (62.2,) + empty[1:], (300.0,) + empty[1:]
    assert quotes.changed_fields(q, quotes.snapshot(q), before) == (["ask", "[[62.2,300.0]]"], [])
