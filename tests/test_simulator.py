import json
import sys
from collections import defaultdict
from datetime import date, datetime, time
from pathlib import Path

import pytest

try:  # several times faster than json on a day of frames; same values
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from app.futures import front_and_next, is_vn30_future  # noqa: E402
from app.sim import (  # noqa: E402
    ALL_CHANNELS,
    DEFAULT_CHANNELS,
    INDEX_IDS,
    VN30_SYMBOLS,
    MarketSimulator,
    SimEvent,
    hose_tick,
    hose_tick_down,
    hose_tick_up,
    price_limits,
)

VN_TZ_NAME = "Asia/Ho_Chi_Minh"
DAY = date(2026, 3, 2)  # a Monday
SEED = 7  # this seed/day/activity includes fills on both a ceiling and a floor lock
ACT = 0.03


def _lv(prefix):
    return [f"{prefix}{i}" for i in range(1, 11)]


XQ_KEYS = (["TradingDate", "Time", "Exchange", "Symbol", "RType"]
           + _lv("AskPrice") + _lv("AskVol") + _lv("BidPrice") + _lv("BidVol") + ["TradingSession"])
XT_KEYS = ["RType", "TradingDate", "Time", "Isin", "Symbol", "Ceiling", "Floor", "RefPrice",
           "AvgPrice", "PriorVal", "LastPrice", "LastVol", "TotalVal", "TotalVol", "MarketId",
           "Exchange", "TradingSession", "TradingStatus", "Change", "RatioChange",
           "EstMatchedPrice", "Highest", "Lowest", "Side"]
X_KEYS = (["RType", "TradingDate", "Time", "Isin", "Symbol", "Ceiling", "Floor", "RefPrice",
           "Open", "High", "Low", "Close", "AvgPrice", "PriorVal", "LastPrice", "LastVol",
           "TotalVal", "TotalVol"]
          + _lv("BidPrice") + _lv("BidVol") + _lv("AskPrice") + _lv("AskVol")
          + ["MarketId", "Exchange", "TradingSession", "TradingStatus", "Change", "RatioChange",
             "EstMatchedPrice"])
R_KEYS = ["RType", "TradingDate", "Time", "Isin", "Symbol", "TotalRoom", "CurrentRoom", "BuyVol",
          "SellVol", "BuyVal", "SellVal", "MarketId", "Exchange"]
MI_KEYS = ["IndexId", "IndexValue", "PriorIndexValue", "TradingDate", "Time", "TotalTrade",
           "TotalQtty", "TotalValue", "IndexName", "Advances", "NoChanges", "Declines", "Ceilings",
           "Floors", "Change", "RatioChange", "TotalQttyPt", "TotalValuePt", "Exchange", "AllQty",
           "AllValue", "IndexType", "TradingSession", "MarketId", "RType", "TotalQttyOd",
           "TotalValueOd"]
F_KEYS = ["RType", "MarketId", "TradingDate", "Time", "Symbol", "TradingSession", "TradingStatus",
          "Exchange"]
B_KEYS = ["RType", "TradingDate", "Time", "Symbol", "Open", "High", "Low", "Close", "Volume", "Value"]
KEYS = {"X-QUOTE": XQ_KEYS, "X-TRADE": XT_KEYS, "X": X_KEYS, "R": R_KEYS, "MI": MI_KEYS,
        "F": F_KEYS, "B": B_KEYS}
INT_FIELDS = {"Advances", "NoChanges", "Declines", "Ceilings", "Floors"}


def _sec(hhmmss):
    h, m, s = map(int, hhmmss.split(":"))
    return h * 3600 + m * 60 + s


T_0845, T_0900, T_0915 = _sec("08:45:00"), _sec("09:00:00"), _sec("09:15:00")
T_1130, T_1300, T_1430 = _sec("11:30:00"), _sec("13:00:00"), _sec("14:30:00")
T_1445, T_1500 = _sec("14:45:00"), _sec("15:00:00")


def _continuous(t, future):
    start = T_0900 if future else T_0915
    return start <= t < T_1130 or T_1300 <= t < T_1430


def _parse(events, types=None):
    """[(event, content dict)]; content is None for the marker and for unparsed types."""
    out = []
    for ev in events:
        if ev.frame is None or (types is not None and ev.data_type not in types):
            out.append((ev, None))
        else:
            out.append((ev, _loads(_loads(ev.frame)["Content"])))
    return out


def _run(**kw):
    kw.setdefault("seed", SEED)
    kw.setdefault("start", DAY)
    kw.setdefault("activity", ACT)
    return list(MarketSimulator(**kw).events())


@pytest.fixture(scope="module")
def day_all():
    return _parse(_run(channels=ALL_CHANNELS))


@pytest.fixture(scope="module")
def day_default():
    return _run()


def _of(parsed, dtype):
    return [(ev, c) for ev, c in parsed if ev.data_type == dtype]


def _book(c, side, depth=10):
    return [(c[f"{side}Price{i}"], c[f"{side}Vol{i}"]) for i in range(1, depth + 1)]


# ---- tick and limit helpers (docs/ssi.md, Tick sizes, price bands and lots) -------


@pytest.mark.parametrize("ref, ceiling, floor", [
    (22_900, 24_500, 21_300),   # ACB
    (22_650, 24_200, 21_100),   # MBB
    (20_150, 21_550, 18_750),   # HUB
])
def test_price_limits_protocol_examples(ref, ceiling, floor):
    assert price_limits(ref) == (ceiling, floor)


def test_price_limits_hnx_band_with_flat_tick():
    # TAR on HNX: ±10 %, 100 VND tick.
    assert price_limits(21_300, 10, lambda p: 100) == (23_400, 19_200)


def test_hose_tick_table():
    assert hose_tick(9_990) == 10 and hose_tick(10_000) == 50
    assert hose_tick(49_950) == 50 and hose_tick(50_000) == 100
    assert hose_tick_up(9_990) == 10_000 and hose_tick_up(10_000) == 10_050
    assert hose_tick_down(10_000) == 9_990 and hose_tick_down(50_000) == 49_950
    assert hose_tick_up(49_950) == 50_000 and hose_tick_up(50_000) == 50_100


def _valid(p):
    return p % hose_tick(p) == 0


def test_price_limits_rule_across_price_levels():
    refs = [*range(1_000, 10_000, 10), *range(10_000, 50_000, 50), *range(50_000, 200_001, 100)]
    for ref in refs:
        hi, lo = price_limits(ref)
        assert _valid(hi) and _valid(lo), ref
        assert lo < ref < hi
        # Rounded down / up: no valid price between the limit and the exact band edge.
        assert hi <= ref * 1.07 < hi + hose_tick(hi) or hi == ref + hose_tick(ref)
        assert lo >= ref * 0.93 > lo - hose_tick(lo - 1) or lo == ref - hose_tick(ref - 1)


# ---- frame format -----------------------------------------------------------------


def test_every_frame_is_exact_compact_double_encoded_json(day_all):
    for ev, c in day_all:
        assert isinstance(ev, SimEvent)
        if ev.frame is None:
            continue
        outer = _loads(ev.frame)
        assert list(outer) == ["DataType", "Content"]
        assert outer["DataType"] == ev.data_type
        assert isinstance(outer["Content"], str)
        assert json.dumps(outer, separators=(",", ":")) == ev.frame
        assert json.dumps(c, separators=(",", ":")) == outer["Content"]
        assert c["RType"] == ev.data_type
        assert list(c) == KEYS[ev.data_type], ev.data_type
        sym = c.get("Symbol", c.get("IndexId"))
        assert sym == ev.symbol


REAL = Path(__file__).resolve().parent / "fixtures" / "ssi-real"


@pytest.mark.parametrize("name, dtype", [("ssi_mi_messages.jsonl", "MI"), ("ssi_b_messages.jsonl", "B")])
def test_same_shape_as_real_captured_frames(day_all, name, dtype):
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    real = [json.loads(json.loads(line)["Content"]) for line in path.read_text().splitlines() if line.strip()]
    ours = [c for ev, c in _of(day_all, dtype)]
    for r in real[:50]:
        for o in ours[:50]:
            assert list(o) == list(r)
            assert [type(v) for v in o.values()] == [type(v) for v in r.values()]


def test_numbers_are_doubles_and_counters_ints(day_all):
    seen = set()
    for ev, c in day_all:
        if c is None:
            continue
        for k, v in c.items():
            if isinstance(v, str):
                continue
            if k in INT_FIELDS:
                assert type(v) is int, (k, v)
            else:
                assert type(v) is float, (ev.data_type, k, v)
        if ev.data_type not in seen:
            seen.add(ev.data_type)
            # Prices and volumes print as doubles: "22950.0", never "22950".
            assert '\\"TradingDate\\":\\"02/03/2026\\"' in ev.frame
    assert seen == ALL_CHANNELS


def test_dates_times_and_timezone(day_all):
    prev = None
    for ev, c in day_all:
        assert ev.at.tzinfo is not None and str(ev.at.tzinfo) == VN_TZ_NAME
        assert ev.at.utcoffset().total_seconds() == 7 * 3600
        assert ev.at.date() == DAY
        if prev is not None:
            assert ev.at >= prev
        prev = ev.at
        if c is not None:
            assert c["TradingDate"] == "02/03/2026"
            assert c["Time"] == ev.at.strftime("%H:%M:%S")


# ---- timetable ----------------------------------------------------------------------


def test_session_timetable(day_all):
    *frames, (marker, _) = day_all
    assert marker.frame is None and marker.data_type == "CLOSE" and marker.symbol == ""
    assert marker.at == datetime(2026, 3, 2, 15, 0, tzinfo=marker.at.tzinfo)
    for ev, c in frames:
        t = _sec(c["Time"])
        assert T_0845 <= t <= T_1445
        assert not (T_1130 < t < T_1300)
        fut = is_vn30_future(ev.symbol)
        if ev.data_type == "X-TRADE":
            if c["Side"] == "Unknow":
                assert (c["TradingSession"], t) in {
                    ("ATO", T_0900 if fut else T_0915), ("ATC", T_1445)}
            else:
                assert c["Side"] in ("BU", "SD")
                assert c["TradingSession"] == "LO" and _continuous(t, fut)
        elif ev.data_type in ("X-QUOTE", "X"):
            assert t >= (T_0845 if fut else T_0900)
            auction_end = T_0900 if fut else T_0915
            expected = "ATO" if t < auction_end else "LO" if t < T_1430 else "ATC"
            if ev.data_type == "X" and t == auction_end and c["LastVol"] and c["TradingSession"] == "ATO":
                expected = "ATO"  # snapshots of the opening match itself
            assert c["TradingSession"] == expected
        elif ev.data_type == "F":
            assert t in {T_0845, T_0900, T_0915, T_1130, T_1300, T_1430, T_1445}
        elif ev.data_type == "MI":
            assert T_0900 <= t <= T_1130 or T_1300 <= t <= T_1445


def test_f_frames_at_session_transitions(day_all):
    seq = defaultdict(list)
    for ev, c in _of(day_all, "F"):
        seq[ev.symbol].append((c["Time"], c["TradingSession"]))
    assert set(seq) == set(VN30_SYMBOLS) | set(front_and_next(DAY))
    for sym, s in seq.items():
        if is_vn30_future(sym):
            assert s == [("08:45:00", "ATO"), ("09:00:00", "LO"), ("11:30:00", "BREAK"),
                         ("13:00:00", "LO"), ("14:30:00", "ATC"), ("14:45:00", "C")]
        else:
            assert s == [("09:00:00", "ATO"), ("09:15:00", "LO"), ("11:30:00", "BREAK"),
                         ("13:00:00", "LO"), ("14:30:00", "ATC"), ("14:45:00", "C")]


# ---- prices and lots -----------------------------------------------------------------


def test_stock_prices_tick_aligned_within_limits_and_board_lots(day_all):
    limits = {}
    for ev, c in _of(day_all, "X-TRADE"):
        if is_vn30_future(ev.symbol):
            continue
        ref, hi, lo = int(c["RefPrice"]), int(c["Ceiling"]), int(c["Floor"])
        assert (hi, lo) == price_limits(ref)
        assert c["PriorVal"] == c["RefPrice"] and _valid(ref)
        limits[ev.symbol] = (hi, lo)
        for k in ("LastPrice", "Highest", "Lowest", "AvgPrice"):
            assert lo <= c[k] <= hi, k
        for k in ("LastPrice", "Highest", "Lowest"):
            assert _valid(int(c[k])) and c[k] == int(c[k])
        assert c["LastVol"] % 100 == 0 and c["TotalVol"] % 100 == 0 and c["LastVol"] > 0
    assert set(limits) == set(VN30_SYMBOLS)
    for dtype in ("X-QUOTE", "X"):
        for ev, c in _of(day_all, dtype):
            if is_vn30_future(ev.symbol):
                continue
            hi, lo = limits[ev.symbol]
            for side in ("Bid", "Ask"):
                lvls = _book(c, side)
                assert all(p == 0.0 and v == 0.0 for p, v in lvls[3:])  # HOSE shows 3 levels
                for p, v in lvls[:3]:
                    if p:
                        assert lo <= p <= hi and _valid(int(p)) and p == int(p)
                        assert v > 0 and v % 100 == 0
                    else:
                        assert v == 0.0
            bids = [p for p, _ in _book(c, "Bid") if p]
            asks = [p for p, _ in _book(c, "Ask") if p]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            if bids and asks and c["TradingSession"] == "LO":
                assert bids[0] < asks[0]


def test_futures_contracts_ticks_and_book(day_all):
    codes = front_and_next(DAY)
    vn30 = None
    seen = set()
    for ev, c in day_all:
        if ev.data_type == "MI" and ev.symbol == "VN30":
            vn30 = c["IndexValue"]
        if c is None or not is_vn30_future(ev.symbol):
            continue
        assert ev.symbol in codes
        seen.add(ev.symbol)
        assert c.get("Exchange", "DERIVATIVES") == "DERIVATIVES"
        assert c.get("MarketId", "DER") == "DER"
        if ev.data_type == "X-TRADE":
            hi, lo = c["Ceiling"], c["Floor"]
            for k in ("LastPrice", "RefPrice", "Ceiling", "Floor", "Highest", "Lowest"):
                assert abs(c[k] * 10 - round(c[k] * 10)) < 1e-6, (k, c[k])  # 0.1-point tick
            assert lo <= c["LastPrice"] <= hi
            assert c["LastVol"] == int(c["LastVol"]) >= 1
            if vn30 is not None:
                assert abs(c["LastPrice"] - vn30) < 0.02 * vn30  # basis stays small
        if ev.data_type == "X-QUOTE" and c["TradingSession"] == "LO":
            bids = [p for p, _ in _book(c, "Bid") if p]
            asks = [p for p, _ in _book(c, "Ask") if p]
            assert len(bids) == 10 and len(asks) == 10  # derivatives show 10 levels
            assert bids == sorted(set(bids), reverse=True) and asks == sorted(set(asks))
            assert bids[0] < asks[0]
            for p in bids + asks:
                assert abs(p * 10 - round(p * 10)) < 1e-6
    assert seen == set(codes)


# ---- auctions ---------------------------------------------------------------------


def test_auction_bursts(day_all):
    est = {}
    auctions = defaultdict(list)
    for ev, c in day_all:
        if ev.data_type == "X" and c["TradingSession"] in ("ATO", "ATC") and c["LastVol"] == 0.0:
            est[ev.symbol] = c["EstMatchedPrice"]
        if ev.data_type == "X-TRADE" and c["Side"] == "Unknow":
            auctions[(ev.symbol, c["TradingSession"])].append(c)
    for sym in VN30_SYMBOLS + front_and_next(DAY):
        for sess, stamp in (("ATO", "09:00:00" if is_vn30_future(sym) else "09:15:00"),
                            ("ATC", "14:45:00")):
            fills = auctions[(sym, sess)]
            assert fills, (sym, sess)
            assert {f["Time"] for f in fills} == {stamp}
            assert len({f["LastPrice"] for f in fills}) == 1
            assert all(f["EstMatchedPrice"] == f["LastPrice"] for f in fills)
    # No stock trades during the opening call: only the indicative price moves.
    for ev, c in _of(day_all, "X"):
        if c["TradingSession"] == "ATO":
            assert c["EstMatchedPrice"] > 0
    assert est


def test_auction_price_is_last_published_estimate(day_all):
    last_est = {}
    checked = 0
    for ev, c in day_all:
        if ev.data_type == "X" and c["TradingSession"] == "ATO" and c["LastVol"] == 0.0:
            last_est[ev.symbol] = c["EstMatchedPrice"]
        elif ev.data_type == "X-TRADE" and c["TradingSession"] == "ATO" and ev.symbol in last_est:
            assert c["LastPrice"] == last_est.pop(ev.symbol)
            checked += 1
    assert checked == len(VN30_SYMBOLS) + 2


# ---- trades against the book --------------------------------------------------------


def test_continuous_trades_hit_the_last_published_quote(day_all):
    last_q, last_x = {}, {}
    locked = defaultdict(int)
    n = 0
    for ev, c in day_all:
        if ev.data_type == "X-QUOTE":
            last_q[ev.symbol] = c
        elif ev.data_type == "X":
            if ev.symbol in last_x and c["TotalVol"] == last_x[ev.symbol]["TotalVol"]:
                last_x[ev.symbol] = c  # quote-only snapshot: the book before the next trade
            elif ev.symbol not in last_x:
                last_x[ev.symbol] = c
        elif ev.data_type == "X-TRADE" and c["Side"] in ("BU", "SD"):
            n += 1
            p = c["LastPrice"]
            for q in (last_q[ev.symbol], last_x[ev.symbol]):
                bid, ask = q["BidPrice1"], q["AskPrice1"]
                if c["Side"] == "BU":
                    if ask == 0.0:  # limit-up lock: buyers queued at the ceiling
                        assert p == c["Ceiling"] == bid
                        locked["ceiling"] += q is last_q[ev.symbol]
                    else:
                        assert p == ask
                else:
                    if bid == 0.0:
                        assert p == c["Floor"] == ask
                        locked["floor"] += q is last_q[ev.symbol]
                    else:
                        assert p == bid
        if ev.data_type == "X" and ev.symbol in last_x and c["TotalVol"] != last_x[ev.symbol]["TotalVol"]:
            last_x[ev.symbol] = c  # post-trade snapshot
    assert n > 1000
    assert locked["ceiling"] > 0 and locked["floor"] > 0


def test_several_fills_in_one_second(day_all):
    per_sec = defaultdict(int)
    for ev, c in _of(day_all, "X-TRADE"):
        if c["Side"] != "Unknow":
            per_sec[(ev.symbol, c["Time"])] += 1
    assert max(per_sec.values()) >= 2


def test_x_trade_arithmetic(day_all):
    acc = defaultdict(lambda: [0, 0.0, None, None, None])
    for ev, c in _of(day_all, "X-TRADE"):
        a = acc[ev.symbol]
        fut = is_vn30_future(ev.symbol)
        a[0] += c["LastVol"]
        a[1] += c["LastPrice"] * c["LastVol"]
        a[2] = c["LastPrice"] if a[2] is None else max(a[2], c["LastPrice"])
        a[3] = c["LastPrice"] if a[3] is None else min(a[3], c["LastPrice"])
        assert c["TotalVol"] == a[0]
        assert c["TotalVal"] == pytest.approx(a[1], rel=1e-12)
        assert c["AvgPrice"] == round(c["TotalVal"] / c["TotalVol"], 2)
        assert (c["Highest"], c["Lowest"]) == (a[2], a[3])
        change = c["LastPrice"] - c["RefPrice"]
        assert c["Change"] == pytest.approx(change, abs=1e-9)
        assert c["RatioChange"] == round(100 * c["Change"] / c["RefPrice"], 2)
        assert c["TradingStatus"] == "N"
        if c["TradingSession"] == "LO":
            assert c["EstMatchedPrice"] == c["RefPrice"]
        if not fut:
            assert c["TotalVal"] == int(c["TotalVal"])


def test_x_snapshots_repeat_last_trade_on_quote_changes(day_all):
    prev = {}
    trades = defaultdict(list)
    for ev, c in _of(day_all, "X-TRADE"):
        trades[ev.symbol].append(c)
    quote_only = with_trade = 0
    for ev, c in _of(day_all, "X"):
        p = prev.get(ev.symbol)
        if p is not None:
            if c["TotalVol"] == p["TotalVol"]:
                quote_only += 1
                for k in ("LastPrice", "LastVol", "TotalVal"):
                    assert c[k] == p[k]
            else:
                with_trade += 1
                assert c["TotalVol"] == p["TotalVol"] + c["LastVol"]
        prev[ev.symbol] = c
    assert quote_only > 1000 and with_trade > 1000
    for sym, c in prev.items():
        last = trades[sym][-1]
        assert c["TotalVol"] == last["TotalVol"]
        assert c["LastPrice"] == c["Close"] == last["LastPrice"]


def test_every_quote_has_a_matching_x_snapshot(day_all):
    pending = {}
    for ev, c in day_all:
        if ev.data_type == "X-QUOTE":
            pending[ev.symbol] = (ev.at, _book(c, "Bid") + _book(c, "Ask"))
        elif ev.data_type == "X" and ev.symbol in pending:
            at, book = pending.pop(ev.symbol)
            assert at == ev.at and book == _book(c, "Bid") + _book(c, "Ask")
    assert not pending


def test_b_one_bar_per_fill(day_all):
    fills = [(ev.symbol, c["Time"], c["LastPrice"], c["LastVol"]) for ev, c in _of(day_all, "X-TRADE")]
    bars = []
    for ev, c in _of(day_all, "B"):
        assert c["Open"] == c["High"] == c["Low"] == c["Close"]
        assert c["Value"] == 0.0
        bars.append((ev.symbol, c["Time"], c["Close"], c["Volume"]))
    assert bars == fills


# ---- foreign room (R) -----------------------------------------------------------------


def test_foreign_flow_cumulative_and_consistent(day_all):
    last_px, tot_vol, prev, base = {}, {}, {}, {}
    times = defaultdict(list)
    for ev, c in day_all:
        if ev.data_type == "X-TRADE":
            last_px[ev.symbol] = c["LastPrice"]
            tot_vol[ev.symbol] = c["TotalVol"]
        elif ev.data_type == "X-QUOTE" and ev.symbol not in last_px:
            pass
        elif ev.data_type == "R":
            s = ev.symbol
            assert s in VN30_SYMBOLS
            assert (c["MarketId"], c["Exchange"], c["Isin"]) == ("HOSE", "HOSE", s)
            px = last_px[s]
            assert c["BuyVal"] == c["BuyVol"] * px and c["SellVal"] == c["SellVol"] * px
            assert c["BuyVol"] <= tot_vol[s] and c["SellVol"] <= tot_vol[s]
            assert 0 <= c["CurrentRoom"] <= c["TotalRoom"]
            # Room moves only with net foreign buying.
            key = c["CurrentRoom"] + c["BuyVol"] - c["SellVol"]
            assert base.setdefault(s, key) == key
            if s in prev:
                assert c["BuyVol"] >= prev[s]["BuyVol"] and c["SellVol"] >= prev[s]["SellVol"]
                assert c["TotalRoom"] == prev[s]["TotalRoom"]
            prev[s] = c
            times[s].append(_sec(c["Time"]))
    assert set(prev) == set(VN30_SYMBOLS)
    assert any(c["BuyVol"] > 0 for c in prev.values()) and any(c["SellVol"] > 0 for c in prev.values())
    for s, ts in times.items():
        assert ts[-1] == T_1445
        morning = [t for t in ts if t < T_1130]
        assert len(morning) > 50
        assert max(b - a for a, b in zip(morning, morning[1:])) <= 60


# ---- indices (MI) --------------------------------------------------------------------


def test_mi_cadence_and_identities(day_all):
    times = defaultdict(list)
    prev = {}
    for ev, c in _of(day_all, "MI"):
        assert ev.symbol in INDEX_IDS
        times[ev.symbol].append(_sec(c["Time"]))
        assert c["AllQty"] == c["TotalQtty"] + c["TotalQttyPt"]
        assert c["AllValue"] == c["TotalValue"] + c["TotalValuePt"]
        assert c["Change"] == round(c["IndexValue"] - c["PriorIndexValue"], 2)
        assert c["RatioChange"] == round(100 * c["Change"] / c["PriorIndexValue"], 2)
        assert c["TotalTrade"] == 0.0 and c["TotalQttyOd"] == 0.0 and c["IndexType"] == "Main"
        assert c["Ceilings"] <= c["Advances"] and c["Floors"] <= c["Declines"]
        p = prev.get(ev.symbol)
        if p:
            assert c["PriorIndexValue"] == p["PriorIndexValue"]
            for k in ("TotalQtty", "TotalValue", "TotalQttyPt", "TotalValuePt"):
                assert c[k] >= p[k]
            n = c["Advances"] + c["NoChanges"] + c["Declines"]
            assert n == p["Advances"] + p["NoChanges"] + p["Declines"]
        prev[ev.symbol] = c
    assert set(times) == set(INDEX_IDS)
    for idx, ts in times.items():
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        assert ts[0] == T_0900 and ts[-1] == T_1445
        assert set(gaps) == {5, T_1300 - T_1130}
        assert gaps.count(T_1300 - T_1130) == 1
    assert 1_700 < prev["VN30"]["PriorIndexValue"] < 2_100
    assert prev["VNINDEX"]["Advances"] + prev["VNINDEX"]["NoChanges"] + prev["VNINDEX"]["Declines"] > 350
    assert prev["HNXIndex"]["Advances"] + prev["HNXIndex"]["NoChanges"] + prev["HNXIndex"]["Declines"] > 250


def test_vn30_mi_from_constituents(day_all):
    last, ref, vols, vals = {}, {}, {}, {}
    ceil, floor = {}, {}
    checked = 0
    vni = None
    for ev, c in day_all:
        if ev.data_type == "X-TRADE" and not is_vn30_future(ev.symbol):
            s = ev.symbol
            last[s], ref[s], vols[s], vals[s] = c["LastPrice"], c["RefPrice"], c["TotalVol"], c["TotalVal"]
            ceil[s], floor[s] = c["Ceiling"], c["Floor"]
        elif ev.data_type == "MI" and ev.symbol == "VNINDEX":
            vni = c
        elif ev.data_type == "MI" and ev.symbol == "VN30":
            adv = sum(last[s] > ref[s] for s in last)
            dec = sum(last[s] < ref[s] for s in last)
            assert (c["Advances"], c["Declines"]) == (adv, dec)
            assert c["NoChanges"] == len(VN30_SYMBOLS) - adv - dec
            assert c["Ceilings"] == sum(last[s] == ceil[s] for s in last)
            assert c["Floors"] == sum(last[s] == floor[s] for s in last)
            assert c["TotalQtty"] == sum(vols.values())
            assert c["TotalValue"] == sum(vals.values())
            if not last:
                assert c["IndexValue"] == c["PriorIndexValue"]
            # VNINDEX (same second, just before) contains the VN30 basket.
            assert vni["Time"] == c["Time"]
            assert vni["TotalQtty"] >= c["TotalQtty"] and vni["TotalQttyPt"] >= c["TotalQttyPt"]
            assert vni["Advances"] >= c["Advances"] and vni["Declines"] >= c["Declines"]
            checked += 1
    assert checked > 3_000


# ---- determinism, channels, days ------------------------------------------------------


def test_deterministic_for_a_seed(day_default):
    again = _run()
    assert [(e.at, e.frame) for e in again] == [(e.at, e.frame) for e in day_default]
    other = _run(seed=SEED + 1, channels={"X-TRADE"})
    assert [e.frame for e in other] != [e.frame for e in day_default if e.data_type == "X-TRADE"]


def test_channel_filter_keeps_the_same_market(day_all, day_default):
    assert {e.data_type for e in day_default} == DEFAULT_CHANNELS | {"CLOSE"}
    full = [(e.at, e.frame) for e, _ in day_all if e.data_type in DEFAULT_CHANNELS]
    assert [(e.at, e.frame) for e in day_default if e.frame is not None] == full
    only_mi = _run(channels={"MI"})
    assert {e.data_type for e in only_mi} == {"MI", "CLOSE"}
    assert [e.frame for e in only_mi if e.frame] == [e.frame for e in day_default if e.data_type == "MI"]
    with pytest.raises(ValueError):
        MarketSimulator(channels={"X-TRADE", "OL"})


def test_open_at_starts_mid_session(day_default):
    late = _run(open_at=time(10, 30))
    t0 = datetime(2026, 3, 2, 10, 30, tzinfo=late[0].at.tzinfo)
    assert late[0].at == t0 and all(e.at >= t0 for e in late)
    # Same market: the trades after the start are the full run's trades.
    full_trades = [e.frame for e in day_default if e.data_type == "X-TRADE" and e.at >= t0]
    assert [e.frame for e in late if e.data_type == "X-TRADE"] == full_trades
    quoted = set()
    for ev in late:
        if ev.data_type == "X-QUOTE":
            quoted.add(ev.symbol)
        elif ev.data_type == "X-TRADE":
            assert ev.symbol in quoted
    assert late[-1].data_type == "CLOSE"


def test_close_marker_then_next_trading_day_skipping_weekend():
    fri = date(2026, 3, 6)
    sim = MarketSimulator(seed=3, start=fri, days=2, activity=0.02, channels={"X-TRADE", "MI"})
    evs = _parse(sim.events(), {"X-TRADE", "MI"})
    markers = [ev for ev, _ in evs if ev.frame is None]
    expected = [datetime(2026, 3, 6, 15), datetime(2026, 3, 9, 15)]
    assert [m.at.replace(tzinfo=None) for m in markers] == expected
    assert evs[-1][0] is markers[-1]
    days = [ev.at.date() for ev, _ in evs]
    assert days == sorted(days) and set(days) == {fri, date(2026, 3, 9)}
    split = next(i for i, (ev, _) in enumerate(evs) if ev.frame is None)
    assert all(ev.at.date() == fri for ev, _ in evs[:split])
    # Day 2 references are day 1 closes.
    closes, refs, mi_close, mi_prior = {}, {}, {}, {}
    for i, (ev, c) in enumerate(evs):
        if ev.data_type == "X-TRADE":
            (closes if i < split else refs).setdefault(ev.symbol, []).append(c)
        if ev.data_type == "MI":
            if i < split:
                mi_close[ev.symbol] = c["IndexValue"]
            else:
                mi_prior.setdefault(ev.symbol, c["PriorIndexValue"])
    for s in VN30_SYMBOLS:
        assert refs[s][0]["RefPrice"] == closes[s][-1]["LastPrice"]
    assert mi_prior == mi_close


def test_weekend_start_moves_to_monday():
    sim = MarketSimulator(seed=1, start=date(2026, 3, 7), days=1, channels={"F"}, activity=0.01)
    evs = list(sim.events())
    assert {e.at.date() for e in evs} == {date(2026, 3, 9)}


def test_unbounded_days_keep_going():
    it = MarketSimulator(seed=1, start=date(2026, 3, 6), days=None, channels={"F"}, activity=0.01).events()
    markers = []
    for ev in it:
        if ev.frame is None:
            markers.append(ev.at.date())
            if len(markers) == 3:
                break
    assert markers == [date(2026, 3, 6), date(2026, 3, 9), date(2026, 3, 10)]


@pytest.mark.parametrize("naming", ["legacy", "krx"])
def test_futures_codes_roll_after_third_thursday(naming):
    thu = date(2026, 3, 19)  # last trading day of the March contract
    sim = MarketSimulator(seed=2, start=thu, days=2, channels={"F", "X-TRADE"},
                          futures_naming=naming, activity=0.02)
    assert sim.futures == front_and_next(thu, naming)
    by_day = defaultdict(set)
    seen_at_close = []
    for ev in sim.events():
        if ev.frame is None:
            seen_at_close.append(sim.futures)
        elif is_vn30_future(ev.symbol):
            by_day[ev.at.date()].add(ev.symbol)
    fri = date(2026, 3, 20)
    assert by_day[thu] == set(front_and_next(thu, naming))
    assert by_day[fri] == set(front_and_next(fri, naming))
    assert seen_at_close == [front_and_next(thu, naming), front_and_next(fri, naming)]
    if naming == "krx":
        assert by_day[thu] == {"41I1G3000", "41I1G4000"} and by_day[fri] == {"41I1G4000", "41I1G5000"}
    else:
        assert by_day[fri] == {"VN30F2604", "VN30F2605"}


def test_activity_scales_the_flow():
    def trades(act):
        return sum(1 for e in MarketSimulator(seed=5, start=DAY, channels={"X-TRADE"}, activity=act,
                                              open_at=time(13, 0)).events() if e.frame)
    low, high = trades(0.02), trades(0.08)
    assert 2.5 < high / low < 6


def test_bad_arguments():
    with pytest.raises(ValueError):
        MarketSimulator(futures_naming="bloomberg")
    with pytest.raises(ValueError):
        MarketSimulator(activity=0)
    with pytest.raises(ValueError):
        MarketSimulator(symbols=("HPG", "HPG"))
