"""The simulated full market: each board's grid, band, lot, depth and timetable, indices
consistent with their constituents, and the fake listing every symbol's exchange.

A full-market day at the default activity is millions of frames; these run one at a low
activity (the same boards, rules and indices, fewer events) and short stretches.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
from collections import Counter, defaultdict
from datetime import date, datetime, time

import httpx
import pytest

from app.futures import is_vn30_future
from app.ingest.writer import StreamWriter
from app.projections import worker
from app.projections.board import board_row
from app.projections.session import finish_batch, fold, new_session
from app.sim import UNIVERSES, VN30_SYMBOLS, MarketSimulator
from app.sim.fake import FakeFastConnect
from app.sim.ticks import hose_tick, price_limits
from tests.apiserver import ApiServer

DAY = date(2026, 3, 2)  # a Monday
SESSION = DAY.isoformat()
ACT = 0.02
BANDS = {"HOSE": 7, "HNX": 10, "UPCOM": 15}
DEPTH = {"HOSE": 3, "HNX": 10, "UPCOM": 10}


def _sec(text: str) -> int:
    h, m, s = map(int, text.split(":"))
    return h * 3600 + m * 60 + s


T0900, T0915, T1130, T1300 = _sec("09:00:00"), _sec("09:15:00"), _sec("11:30:00"), _sec("13:00:00")
T1430, T1445, T1500 = _sec("14:30:00"), _sec("14:45:00"), _sec("15:00:00")


def _content(frame: str) -> dict:
    return json.loads(json.loads(frame)["Content"])


@pytest.fixture(scope="module")
def market():
    sim = MarketSimulator(seed=5, start=DAY, days=1, universe="all", activity=ACT)
    events = list(sim.events())
    assert events[-1].frame is None
    return sim, [(ev, _content(ev.frame)) for ev in events[:-1]]


def _tick(exchange: str, price: int) -> int:
    return hose_tick(price) if exchange == "HOSE" else 100


def _valid(exchange: str, price: int) -> bool:
    return price > 0 and price % _tick(exchange, price) == 0


def test_universe_sizes_names_and_exchanges():
    sim = MarketSimulator(universe="all", start=DAY)
    by_exchange = Counter(sim.listing.exchanges.values())
    assert by_exchange == {"HOSE": 400, "HNX": 300, "UPCOM": 900}
    assert all(len(s) == 3 and s.isalpha() and s.isupper() for s in sim.symbols)
    assert len(set(sim.symbols)) == len(sim.symbols) and not {"ALL", "HNX", "DER"} & set(sim.symbols)
    assert sim.symbols[:30] == VN30_SYMBOLS and all(sim.listing.exchanges[s] == "HOSE" for s in VN30_SYMBOLS)
    assert len(sim.futures) == 2
    indices = sim.listing.indices
    assert {i: len(m) for i, (_, m) in indices.items()} == {
        "VNINDEX": 400, "VN30": 30, "VN100": 100, "HNXIndex": 300, "HNX30": 30, "HNXUpcomIndex": 900}
    # The same names and boards whatever the seed or the universe.
    assert MarketSimulator(universe="all", seed=99, start=DAY).listing == sim.listing
    hnx = MarketSimulator(universe="hnx", start=DAY)
    assert hnx.symbols == tuple(s for s, ex in sim.listing.exchanges.items() if ex == "HNX")
    assert hnx.futures == () and set(hnx.listing.indices) == {"HNXIndex", "HNX30"}
    assert MarketSimulator(start=DAY).symbols == VN30_SYMBOLS
    with pytest.raises(ValueError, match="universe must be one of"):
        MarketSimulator(universe="nyse")
    assert UNIVERSES == ("vn30", "hose", "hnx", "upcom", "all")


def test_every_price_on_its_boards_grid_within_its_band_in_board_lots(market):
    sim, frames = market
    exchanges = sim.listing.exchanges
    limits: dict[str, tuple[int, int, int]] = {}
    seen = Counter()
    for ev, c in frames:
        sym = ev.symbol
        if ev.data_type not in ("X-QUOTE", "X-TRADE") or is_vn30_future(sym):
            continue
        ex = exchanges[sym]
        assert c["Exchange"] == ex
        seen[ex, ev.data_type] += 1
        if ev.data_type == "X-TRADE":
            assert c["MarketId"] == ex
            ref, ceil, floor = int(c["RefPrice"]), int(c["Ceiling"]), int(c["Floor"])
            assert (ceil, floor) == price_limits(ref, BANDS[ex], lambda p: _tick(ex, p))
            assert all(_valid(ex, p) for p in (ref, ceil, floor))
            assert limits.setdefault(sym, (ref, ceil, floor)) == (ref, ceil, floor)
            price, vol = int(c["LastPrice"]), int(c["LastVol"])
            assert _valid(ex, price) and floor <= price <= ceil, (sym, price)
            assert vol > 0 and vol % 100 == 0
        else:
            depth = DEPTH[ex]
            for side in ("Bid", "Ask"):
                levels = [(int(c[f"{side}Price{i}"]), int(c[f"{side}Vol{i}"])) for i in range(1, 11)]
                assert all(p == v == 0 for p, v in levels[depth:])
                for p, v in levels[:depth]:
                    if p:
                        assert _valid(ex, p) and v > 0 and v % 100 == 0, (sym, side, p)
                        if sym in limits:
                            assert limits[sym][2] <= p <= limits[sym][1]
    assert all(seen[ex, t] > 0 for ex in BANDS for t in ("X-QUOTE", "X-TRADE")), seen


def test_each_board_keeps_its_own_timetable(market):
    sim, frames = market
    exchanges = sim.listing.exchanges
    sessions = defaultdict(set)  # (exchange, frame type) -> {(session, phase)}
    statuses = defaultdict(list)
    last_trade = {}
    for ev, c in frames:
        t = _sec(c["Time"])
        assert not T1130 < t < T1300, ev  # nothing in the lunch break
        if is_vn30_future(ev.symbol) or ev.data_type in ("MI", "R"):
            continue
        ex = exchanges[ev.symbol]
        if ev.data_type == "F":
            statuses[ev.symbol].append((t, c["TradingSession"]))
        elif ev.data_type == "X-TRADE":
            sess = c["TradingSession"]
            sessions[ex].add(sess)
            last_trade[ex] = max(last_trade.get(ex, 0), t)
            if sess == "ATO":
                assert t == T0915
            elif sess == "ATC":
                assert t == T1445 and ex != "UPCOM"
            elif sess == "PLO":
                assert ex == "HNX" and T1445 < t < T1500 and c["Side"] == "Unknow"
            else:
                assert sess == "LO" and c["Side"] in ("BU", "SD")
                start = T0915 if ex == "HOSE" else T0900
                end = T1500 if ex == "UPCOM" else T1430
                assert start <= t < T1130 or T1300 <= t < end, (ex, c["Time"])
    assert sessions["HOSE"] == {"ATO", "LO", "ATC"}
    assert sessions["HNX"] == {"LO", "ATC", "PLO"}  # no opening auction
    assert sessions["UPCOM"] == {"LO"}  # continuous only
    assert last_trade["UPCOM"] >= T1445  # trading on after HOSE and HNX stopped
    expected = {
        "HOSE": [(T0900, "ATO"), (T0915, "LO"), (T1130, "BREAK"), (T1300, "LO"), (T1430, "ATC"), (T1445, "C")],
        "HNX": [(T0900, "LO"), (T1130, "BREAK"), (T1300, "LO"), (T1430, "ATC"), (T1445, "PLO"), (T1500, "C")],
        "UPCOM": [(T0900, "LO"), (T1130, "BREAK"), (T1300, "LO"), (T1500, "C")],
    }
    for sym, ex in exchanges.items():
        assert statuses[sym] == expected[ex], sym


def test_index_breadth_adds_up_to_its_constituents_and_values_follow_them(market):
    sim, frames = market
    members = {i: set(m) for i, (_, m) in sim.listing.indices.items()}
    last: dict[str, dict] = {}
    count = Counter()
    for ev, c in frames:
        if ev.data_type != "MI":
            continue
        idx = ev.symbol
        count[idx] += 1
        assert c["Advances"] + c["NoChanges"] + c["Declines"] == len(members[idx]), (idx, c["Time"])
        assert 0 <= c["Ceilings"] <= c["Advances"] and 0 <= c["Floors"] <= c["Declines"]
        last[idx] = c
    assert set(count) == set(members)
    assert all(n > 1000 for n in count.values())  # every 5 s of its board's day
    # At the close: breadth and turnover recomputed from the constituents' own last frames.
    final = {}
    for ev, c in frames:
        if ev.data_type == "X-TRADE":
            final[ev.symbol] = c
    # Its weights: the VN30 its own, the others listed shares (capitalisation weighted).
    weights = {}
    for idx, (_, stocks) in sim.build(random.Random("ssi-sim/5/static")).indices.items():
        weights[idx] = {i.symbol: i.index_weight if idx == "VN30" else i.shares for i in stocks}
    for idx, syms in members.items():
        c = last[idx]
        traded = [final[s] for s in syms if s in final]
        adv = sum(1 for t in traded if t["LastPrice"] > t["RefPrice"])
        dec = sum(1 for t in traded if t["LastPrice"] < t["RefPrice"])
        assert (c["Advances"], c["Declines"]) == (adv, dec), idx
        assert c["TotalQtty"] == sum(t["TotalVol"] for t in traded), idx
        w = weights[idx]
        now = sum(w[s] * final[s]["LastPrice"] if s in final else 0 for s in syms)
        ref = sum(w[s] * final[s]["RefPrice"] if s in final else 0 for s in syms)
        untraded = sum(w[s] for s in syms if s not in final)
        assert untraded == 0 or idx == "HNXUpcomIndex"
        if not untraded:
            assert c["IndexValue"] == pytest.approx(c["PriorIndexValue"] * now / ref, abs=0.011), idx
        assert c["IndexValue"] != c["PriorIndexValue"]


def test_a_full_market_stretch_folds_without_dead_letters_and_boards_by_exchange():
    sim = MarketSimulator(seed=2, start=DAY, days=1, universe="all", activity=0.05)
    state = new_session(SESSION)
    n = 0
    for ev in sim.events():
        if ev.at.time() >= time(9, 20):
            break
        assert fold(state, ev.frame) is None, ev.frame[:200]
        n += 1
    finish_batch(state)
    assert n > 10_000 and state.meta.dead == 0
    rows = {s: board_row(s, state.stats.get(s), q) for s, q in state.quotes.items()}
    assert {s: r.exchange for s, r in rows.items() if s in sim.listing.exchanges} == sim.listing.exchanges
    assert {state.indices[i].advances + state.indices[i].no_changes + state.indices[i].declines
            for i in ("VNINDEX", "HNXIndex", "HNXUpcomIndex")} == {400, 300, 900}


def _digest(**kw) -> str:
    h = hashlib.sha256()
    for ev in itertools.islice(MarketSimulator(start=DAY, activity=ACT, **kw).events(), 40_000):
        h.update((ev.frame or "").encode())
    return h.hexdigest()


def test_deterministic_for_a_seed():
    assert _digest(seed=3, universe="all") == _digest(seed=3, universe="all")
    assert _digest(seed=3, universe="all") != _digest(seed=4, universe="all")


@pytest.mark.anyio
async def test_the_fake_lists_each_symbols_exchange_and_the_indices():
    fake = FakeFastConnect(universe="all", start=DAY)
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
        token = (await http.post("/api/v2/Market/AccessToken",
                                 json={"consumerID": "demo", "consumerSecret": "demo"})).json()["data"]["accessToken"]
        h = {"Authorization": f"Bearer {token}"}
        listed = {}
        for market, n in (("HOSE", 400), ("HNX", 300), ("UPCOM", 900), ("DER", 2)):
            body = (await http.get("/api/v2/Market/Securities", params={"market": market, "pageSize": 1000},
                                   headers=h)).json()
            assert body["totalRecord"] == n and {r["Market"] for r in body["data"]} == {market}
            listed.update({r["Symbol"]: r["Market"] for r in body["data"]})
        assert {s: m for s, m in listed.items() if m != "DER"} == fake.sim.listing.exchanges
        hnx30 = (await http.get("/api/v2/Market/IndexComponents", params={"indexCode": "HNX30"}, headers=h)).json()
        [index] = hnx30["data"]
        assert index["Exchange"] == "HNX" and index["TotalSymbolNo"] == "30"
        assert all(listed[c["StockSymbol"]] == "HNX" for c in index["IndexComponent"])
        vn30 = (await http.get("/api/v2/Market/IndexComponents", params={"indexCode": "VN30"}, headers=h)).json()
        assert [c["StockSymbol"] for c in vn30["data"][0]["IndexComponent"]] == list(VN30_SYMBOLS)
        indices = (await http.get("/api/v2/Market/IndexList", headers=h)).json()
        assert {(r["IndexCode"], r["Exchange"]) for r in indices["data"]} == {
            ("VNINDEX", "HOSE"), ("VN30", "HOSE"), ("VN100", "HOSE"),
            ("HNXIndex", "HNX"), ("HNX30", "HNX"), ("HNXUpcomIndex", "HNX")}


@pytest.mark.anyio
async def test_board_filters_the_simulated_market_by_exchange(redis, settings, redis_server):
    sim = MarketSimulator(seed=4, start=DAY, days=1, universe="all", activity=0.02)
    received = int(datetime(2026, 3, 2, 9, 30).timestamp() * 1000)
    frames = []
    for ev in sim.events():
        if ev.at.time() >= time(9, 16):
            break
        frames.append((ev.frame, received))
    writer = StreamWriter(redis)
    await writer.append(frames)
    await writer.flush()
    await worker.drain(redis, settings)
    with ApiServer(redis_server.url) as node:
        async with httpx.AsyncClient(base_url=node.http, timeout=10) as client:
            for exchange in ("HOSE", "HNX", "UPCOM"):
                board = (await client.get("/api/market/board", params={"symbols": exchange, "date": SESSION})).json()
                want = {s for s, ex in sim.listing.exchanges.items() if ex == exchange}
                assert set(board["rows"]) == want, exchange
                assert {r["exchange"] for r in board["rows"].values()} == {exchange}


@pytest.mark.anyio
async def test_the_live_client_takes_the_full_market_from_the_fake_with_all(redis, redis_server):
    from app import keys as K
    from app.config import Settings
    from app.ingest.live import ALL_MARKET_CHANNELS, run_live
    from tests.apiserver import until
    from tests.test_feed import RunningFake

    async with RunningFake(universe="all", start=DAY, open_at=time(9, 1), activity=0.05) as fake:
        settings = Settings(redis_url=redis_server.url, ssi_url=fake.url, ssi_stream_url=fake.url,
                            ssi_consumer_id="demo", ssi_consumer_secret="demo",
                            ssi_channels=";".join(ALL_MARKET_CHANNELS))
        stop = asyncio.Event()
        ingest = asyncio.create_task(run_live(redis, settings, stop))
        frames_key = K.SessionKeys(SESSION).frames
        exchanges: Counter = Counter()
        read_from = "-"

        async def every_board_seen() -> bool:
            nonlocal read_from
            for entry_id, fields in await redis.xrange(frames_key, min=read_from):
                read_from = "(" + entry_id.decode()
                content = _content(fields[b"f"].decode())
                if "Symbol" in content:
                    exchanges[content.get("Exchange")] += 1
            return all(exchanges[ex] >= 100 for ex in ("HOSE", "HNX", "UPCOM"))

        await until(every_board_seen, timeout=30)
        stop.set()
        await asyncio.wait_for(ingest, 20)
    # The VN30 constituents still come from IndexComponents, whatever the universe.
    assert (await redis.hget(K.VN30_COMPONENTS, "symbols")).decode().split(",") == list(VN30_SYMBOLS)
    await worker.drain(redis, settings)
    keys = K.SessionKeys(SESSION)
    assert int(await redis.hget(keys.meta, "frames")) > 300
    assert await redis.xlen(keys.dead) == 0 and int((await redis.hget(keys.meta, "dead")) or 0) == 0
