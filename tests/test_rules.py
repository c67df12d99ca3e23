"""docs/rules.md, rule by rule, on the pure fold (no Redis)."""

from __future__ import annotations

import pytest

from app.projections.session import Close, finish_batch, fold, new_session
from tests import factory as F


class Folded:
    """The folded state plus the dead-letter reasons, for assertions."""

    def __init__(self, state, refused):
        self.state, self.refused = state, refused

    def __getattr__(self, name):
        return getattr(self.state, name)


def run(*frames, date=F.SESSION):
    state = new_session(date)
    refused = []
    for frame in frames:
        dl = fold(state, frame)
        if dl is not None:
            refused.append(dl.reason)
    finish_batch(state)
    return Folded(state, refused)


# -- trades: rules 1-2 --------------------------------------------------------------


def test_x_quote_only_updates_repeating_lastvol_are_not_trades():
    s = run(
        F.snapshot_x("TAR", 21800, 100, 1000, bid=21700, ask=21800, time="10:00:00"),
        # Book changes only: LastVol 100 and TotalVol 1000 repeat.
        F.snapshot_x("TAR", 21800, 100, 1000, bid=21600, ask=21800, time="10:00:05"),
        F.snapshot_x("TAR", 21800, 100, 1000, bid=21700, ask=21900, time="10:00:09"),
    )
    assert s.stats["TAR"].total_volume == 100
    assert s.stats["TAR"].trades == 1


def test_trade_volume_is_total_vol_delta_not_last_vol():
    s = run(
        F.trade("ACB", 22950, 100, 8_797_700, time="10:00:00"),
        # One update covering several fills: LastVol shows only the last one.
        F.trade("ACB", 22950, 200, 8_798_400, time="10:00:01"),
    )
    assert s.stats["ACB"].total_volume == 100 + 700


def test_first_trade_of_the_session_counts_last_vol_not_the_cumulative_total():
    s = run(F.trade("ACB", 22950, 300, 8_797_700))
    assert s.stats["ACB"].total_volume == 300
    assert s.stats["ACB"].max_total_vol == 8_797_700


def test_repeated_frames_after_a_reconnect_are_not_trades():
    frame = F.trade("ACB", 22950, 300, 5000)
    older = F.trade("ACB", 22900, 100, 4700, time="09:59:00")
    s = run(frame, frame, older)
    assert s.stats["ACB"].total_volume == 300
    assert s.stats["ACB"].trades == 1


def test_x_trade_without_total_vol_is_one_trade_of_last_vol():
    s = run(
        F.trade("ACB", 22950, 100, None),
        F.trade("ACB", 22950, 200, 0),
    )
    assert s.stats["ACB"].total_volume == 300


def test_x_without_total_vol_is_not_a_trade():
    frame = F.snapshot_x("TAR", 21800, 100, 0, bid=21700, ask=21900)
    s = run(frame)
    assert "TAR" not in s.stats


def test_value_is_volume_times_price_in_vnd_never_times_1000():
    s = run(F.quote("ACB", 22900, 22950), F.trade("ACB", 22950, 400, 400))
    assert s.stats["ACB"].mua_chu_dong_value == 400 * 22950.0


# -- classification: rule 4 ---------------------------------------------------------


def test_classification_uses_the_book_before_the_trade():
    s = run(
        F.quote("ACB", 22900, 22950, time="10:00:00"),
        # A buyer lifts the whole ask: the next quote's best bid equals the trade price.
        F.trade("ACB", 22950, 1000, 1000, time="10:00:01"),
        F.quote("ACB", 22950, 23000, time="10:00:01"),
        F.trade("ACB", 22950, 500, 1500, time="10:00:02"),
    )
    st = s.stats["ACB"]
    assert st.mua_chu_dong_volume == 1000
    assert st.ban_chu_dong_volume == 500


def test_x_frame_is_classified_before_its_own_book_is_applied():
    s = run(
        F.snapshot_x("TAR", 21700, 100, 100, bid=21700, ask=21800, time="10:00:00"),
        # Trade at the old ask 21800; the frame's own (post-trade) book has bid 21800.
        F.snapshot_x("TAR", 21800, 300, 400, bid=21800, ask=21900, time="10:00:01"),
    )
    st = s.stats["TAR"]
    assert st.mua_chu_dong_volume == 300
    assert st.ban_chu_dong_volume == 0
    assert s.quotes["TAR"].bid_prices[0] == 21800.0


@pytest.mark.parametrize("session", ["ATO", "ATC"])
def test_auction_trades_are_neutral_even_at_the_ask(session):
    s = run(
        F.quote("HPG", 21700, 21750),
        F.trade("HPG", 21750, 27400, 27400, session=session, time="09:15:00"),
    )
    st = s.stats["HPG"]
    assert st.neutral_volume == 27400
    assert st.mua_chu_dong_volume == st.ban_chu_dong_volume == 0
    assert st.total_volume == 27400


def test_ceiling_with_no_ask_is_active_buy_and_floor_with_no_bid_is_active_sell():
    s = run(
        F.quote("ACB", 24450, 0, time="10:00:00"),
        F.trade("ACB", 24500, 100, 100, ceiling=24500, floor=21300, time="10:00:01"),
        F.quote("VCB", 0, 21350, time="10:00:00"),
        F.trade("VCB", 21300, 200, 200, ceiling=24500, floor=21300, time="10:00:01"),
    )
    assert s.stats["ACB"].mua_chu_dong_volume == 100
    assert s.stats["VCB"].ban_chu_dong_volume == 200


def test_inside_the_spread_or_no_quote_is_neutral():
    s = run(
        F.trade("FPT", 100_000, 100, 100),  # never quoted
        F.quote("MWG", 60_000, 60_200),
        F.trade("MWG", 60_100, 100, 100),
    )
    assert s.stats["FPT"].neutral_volume == 100
    assert s.stats["MWG"].neutral_volume == 100


def test_price_at_or_through_the_quotes():
    s = run(
        F.quote("SSI", 29_000, 29_100),
        F.trade("SSI", 29_150, 100, 100, time="10:00:01"),  # through the ask: buy
        F.trade("SSI", 28_950, 200, 300, time="10:00:02"),  # through the bid: sell
    )
    assert s.stats["SSI"].mua_chu_dong_volume == 100
    assert s.stats["SSI"].ban_chu_dong_volume == 200


def test_ssi_side_is_kept_for_comparison_but_not_used():
    s = run(
        F.quote("ACB", 22900, 22950),
        F.trade("ACB", 22950, 100, 100, side="SD"),
    )
    st = s.stats["ACB"]
    assert st.mua_chu_dong_volume == 100
    assert st.ssi_sd_volume == 100


def test_session_stats_totals_and_last_updated():
    s = run(
        F.quote("ACB", 22900, 22950),
        F.trade("ACB", 22950, 100, 100, time="10:00:01"),
        F.trade("ACB", 22900, 200, 300, time="10:00:02"),
        F.trade("ACB", 22920, 50, 350, time="10:00:03"),
    )
    st = s.stats["ACB"]
    assert (st.mua_chu_dong_volume, st.ban_chu_dong_volume, st.neutral_volume) == (100, 200, 50)
    assert st.total_volume == 350
    assert st.last_updated == "2026-11-25T10:00:03+07:00"


# -- foreign -----------------------------------------------------------------------


def test_foreign_first_frame_sets_the_baseline():
    s = run(F.foreign("SSI", 863_352, 825_308, "14:24:02"))
    f = s.foreign["SSI"]
    assert f.buy_volume == 863_352 and f.net_volume == 863_352 - 825_308
    assert f.buy_speed_per_min == 0 and f.sell_speed_per_min == 0


def test_foreign_negative_delta_reseeds_the_baseline():
    s = run(
        F.foreign("SSI", 10_000, 0, "10:00:00"),
        F.foreign("SSI", 12_000, 0, "10:01:00"),  # +2000
        F.foreign("SSI", 500, 0, "10:02:00"),  # upstream reset: delta 0, baseline 500
        F.foreign("SSI", 1_500, 0, "10:03:00"),  # +1000
    )
    f = s.foreign["SSI"]
    assert f.buy_speed_per_min == (2000 + 1000) / 5
    assert f.buy_volume == 1500


def test_foreign_speed_window_is_open_at_the_start_and_closed_at_the_end():
    s = run(
        F.foreign("VNM", 0, 0, "10:00:00"),
        F.foreign("VNM", 1000, 0, "10:00:00"),  # exactly t - 5 min: outside
        F.foreign("VNM", 1300, 0, "10:00:01"),  # t - 4:59: inside (+300)
        F.foreign("VNM", 1500, 0, "10:05:00"),  # t itself: inside (+200)
    )
    assert s.foreign["VNM"].buy_speed_per_min == (300 + 200) / 5


def test_foreign_acceleration_is_speed_now_minus_speed_one_minute_earlier():
    s = run(
        F.foreign("VNM", 0, 0, "10:00:00"),
        F.foreign("VNM", 600, 100, "10:01:00"),  # +600 buy, +100 sell
        F.foreign("VNM", 1800, 100, "10:02:30"),  # +1200 buy
    )
    f = s.foreign["VNM"]
    # speed at 10:02:30 covers (09:57:30, 10:02:30]: 1800; at 10:01:30: 600.
    assert f.buy_speed_per_min == 1800 / 5
    assert f.buy_acceleration == 1800 / 5 - 600 / 5
    assert f.sell_acceleration == 0.0


def test_foreign_summary_top_five_with_ties_by_symbol():
    frames = []
    nets = {"AAA": 5, "BBB": 9, "CCC": 9, "DDD": 1, "EEE": 7, "FFF": 3, "GGG": -4, "HHH": -4, "III": -10, "JJJ": 0}
    for sym, net in nets.items():
        buy, sell = (net, 0) if net >= 0 else (0, -net)
        frames.append(F.foreign(sym, buy, sell, "10:00:00", buy_val=buy * 1000.0, sell_val=sell * 1000.0))
    s = run(*frames)
    summary = s.foreign_summary
    assert summary.top_buy == ["BBB", "CCC", "EEE", "AAA", "FFF"]
    assert summary.top_sell == ["III", "GGG", "HHH"]
    assert summary.total_net_value == sum(nets.values()) * 1000.0
    assert summary.total_buy_volume == sum(v for v in nets.values() if v > 0)


# -- indices -----------------------------------------------------------------------


def test_index_takes_the_latest_frame_and_one_point_per_minute():
    s = run(
        F.index("VN30", 1000.5, "10:00:05", advances=20, declines=8, no_changes=2),
        F.index("VN30", 1001.0, "10:00:55"),
        F.index("VN30", 1002.0, "10:01:00", advances=21, declines=7, no_changes=2),
    )
    idx = s.indices["VN30"]
    assert idx.value == 1002.0 and idx.advances == 21
    assert idx.advance_ratio == 21 / 28
    assert s.intraday["VN30"] == {36000: 1001.0, 36060: 1002.0}


def test_advance_ratio_is_zero_without_advances_or_declines():
    s = run(F.index("HNXIndex", 250.0, "10:00:00", advances=0, declines=0, no_changes=5))
    assert s.indices["HNXIndex"].advance_ratio == 0.0
    assert "HNXIndex" in s.indices  # IndexId kept as SSI spells it


# -- derivatives -------------------------------------------------------------------


def test_active_contract_is_the_largest_session_volume_ties_by_symbol():
    s = run(
        F.trade("VN30F2612", 1900.0, 10, 10),
        F.trade("VN30F2611", 1899.0, 10, 10),
    )
    assert s.derivatives.symbol == "VN30F2611"  # tie: sorts first
    s2 = run(
        F.trade("VN30F2611", 1899.0, 10, 10),
        F.trade("VN30F2612", 1900.0, 25, 25),
    )
    assert s2.derivatives.symbol == "VN30F2612"
    assert s2.derivatives.volume == 25


def test_krx_futures_codes_are_derivatives_too():
    s = run(F.trade("41I1GB000", 1900.0, 5, 5))
    assert s.derivatives.symbol == "41I1GB000"


def test_basis_is_null_until_both_prices_are_known():
    s = run(F.trade("VN30F2612", 1905.5, 3, 3, Change=2.5, RatioChange=0.13))
    d = s.derivatives
    assert d.basis is None and d.basis_pct is None and d.is_premium is None
    assert d.last_price == 1905.5 and d.change == 2.5 and d.change_pct == 0.13
    s = run(
        F.trade("VN30F2612", 1905.5, 3, 3),
        F.index("VN30", 1900.0, "10:00:02"),
        F.quote("VN30F2612", 1905.4, 1905.6),
    )
    d = s.derivatives
    assert d.basis == 1905.5 - 1900.0
    assert d.basis_pct == (1905.5 - 1900.0) / 1900.0 * 100
    assert d.is_premium is True
    assert (d.bid_price, d.ask_price) == (1905.4, 1905.6)


def test_discount_is_not_premium():
    s = run(F.index("VN30", 1900.0, "10:00:00"), F.trade("VN30F2612", 1890.0, 1, 1))
    assert s.derivatives.basis == -10.0 and s.derivatives.is_premium is False


# -- sessions ----------------------------------------------------------------------


def test_frames_of_another_trading_date_are_refused_with_a_reason():
    s = run(F.trade("ACB", 22950, 100, 100, date="26/11/2026"))
    assert "ACB" not in s.stats
    assert s.refused == ["TradingDate 2026-11-26 is not session 2026-11-25"]
    assert s.meta.dead == 1


def test_close_marker_ends_the_session():
    s = run(
        F.trade("ACB", 22950, 100, 100),
        Close(),
        F.trade("ACB", 22950, 100, 200, time="15:01:00"),
    )
    assert s.meta.closed
    assert s.meta.after_close == 1
    assert s.stats["ACB"].total_volume == 100  # the day's final numbers stay


# -- decoding tolerance ------------------------------------------------------------


def test_aliases_number_strings_and_object_content():
    import json

    content = {
        "rtype": "R", "tradingdate": F.DATE, "TradingTime": "10:00:00", "symbol": "SSI",
        "FBuyVol": "1000", "FSellVol": 200, "FBuyVal": "29100000.0", "FSellVal": 5820000.0,
    }
    raw = json.dumps({"datatype": "R", "content": content})
    s = run(raw)
    f = s.foreign["SSI"]
    assert (f.buy_volume, f.sell_volume, f.buy_value) == (1000, 200, 29_100_000.0)
    mi = json.dumps({"DataType": "MI", "Content": json.dumps({
        "IndexID": "VN30", "IndexValue": "1900.5", "TradingDate": F.DATE, "Time": "10:00:00",
        "Advances": "12", "Nochanges": 3.0, "Declines": 15,
    })})
    s = run(mi)
    assert s.indices["VN30"].no_changes == 3 and s.indices["VN30"].advances == 12
