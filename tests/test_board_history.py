"""Board rows and the day's history (docs/rules.md, "Board", "The day's history")."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from app.ingest.writer import StreamWriter
from app.projections import worker
from app.projections.board import board_row
from app.projections.read_history import merge_candles
from app.projections.session import finish_batch, fold, new_session
from app.replay import verify
from tests import factory as F
from tests.apiserver import ApiServer

pytestmark = pytest.mark.anyio

RECEIVED = 1_795_600_000_000  # 2026-11-25 in Vietnam


def folded(frames, tape_length: int = 1000):
    state = new_session(F.SESSION, tape_length)
    for frame in frames:
        assert fold(state, frame) is None, frame
    finish_batch(state)
    return state


def quote(sym, bids, asks, time="09:20:00", **extra):
    content = {"TradingDate": F.DATE, "Time": time, "Exchange": "HOSE", "Symbol": sym, "RType": "X-QUOTE",
               "TradingSession": "LO", **F.book(bids, asks), **extra}
    return F.broadcast("X-QUOTE", content)


def test_a_board_row_carries_prices_book_and_the_exchanges_own_totals():
    state = folded([
        quote("ACB", [(22900, 1000), (22850, 2000), (22800, 300), (22750, 9)], [(22950, 500)],
              RefPrice=22800.0, Ceiling=24350.0, Floor=21250.0),
        # A mid-day start: the exchange had traded 5,000,000 before we connected.
        F.trade("ACB", 22950, 100, 5_000_000, time="10:00:01", side="BU", TotalVal=114_000_000_000.0),
        F.trade("ACB", 22900, 4_400, 5_004_400, time="10:00:02", side="BU", TotalVal=114_100_760_000.0),
    ])
    row = board_row("ACB", state.stats["ACB"], state.quotes["ACB"])
    assert row.exchange == "HOSE"
    assert (row.ref_price, row.ceiling, row.floor) == (22800, 24350, 21250)
    assert (row.open, row.high, row.low, row.last_price, row.last_volume) == (22950, 22950, 22900, 22900, 4400)
    assert row.change == 100 and row.change_pct == round(100 * 100 / 22800, 2)
    assert row.market_volume == 5_004_400 and row.market_value == 114_100_760_000
    assert row.total_volume == 4_500  # only what this session saw
    assert row.bid == [[22900, 1000], [22850, 2000], [22800, 300]] and row.ask == [[22950, 500]]
    # 100 at the ask: active buy (agrees with BU); 4,400 at the bid: active sell (SSI said BU).
    assert row.buy_ratio == 100 / 4_500
    assert row.side_agreement == 100 / 4_500
    assert (row.ssi_buy_volume, row.ssi_sell_volume, row.ssi_unknown_volume) == (4_500, 0, 0)
    # 100 x 22,950 = 2,295,000 VND: small; 4,400 x 22,900 = 100,760,000: medium.
    assert row.size.small.buy == 100 and row.size.medium.sell == 4_400 and row.size.large.sell == 0


def test_change_is_null_until_both_prices_exist_and_agreement_until_compared():
    quoted = folded([quote("FPT", [(100_000, 10)], [(100_100, 10)])])
    row = board_row("FPT", None, quoted.quotes["FPT"])
    assert row.change is None and row.change_pct is None and row.last_price == 0
    traded = folded([F.trade("FPT", 100_000, 10, 10, side="Unknow")])
    row = board_row("FPT", traded.stats["FPT"], None)
    assert row.change is None and row.side_agreement is None and row.buy_ratio is None


def test_a_trade_of_exactly_100_million_vnd_is_medium():
    state = folded([F.trade("VNM", 50_000, 2_000, 2_000), F.trade("VNM", 50_000, 1_999, 3_999)])
    size = board_row("VNM", state.stats["VNM"], None).size
    assert size.medium.neutral == 2_000 and size.small.neutral == 1_999


def test_candles_keep_the_auction_prints_in_their_own_minutes_and_no_lunch_bars():
    state = folded([
        F.trade("ACB", 22900, 1000, 1000, time="09:15:00", session="ATO"),
        F.trade("ACB", 22950, 100, 1100, time="09:15:40"),
        F.trade("ACB", 23000, 100, 1200, time="11:29:59"),
        F.trade("ACB", 22850, 200, 1400, time="13:00:05"),
        F.trade("ACB", 22800, 300, 1700, time="14:29:00"),
        F.trade("ACB", 22900, 5000, 6700, time="14:45:00", session="ATC"),
    ])
    bars = state.candles["ACB"].points
    assert sorted(bars) == [9 * 3600 + 15 * 60, 11 * 3600 + 29 * 60, 13 * 3600, 14 * 3600 + 29 * 60, 14 * 3600 + 45 * 60]
    assert bars[9 * 3600 + 15 * 60] == [22900, 22950, 22900, 22950, 1100, 22900 * 1000 + 22950 * 100, 0, 0, 1100]
    five = dict(merge_candles(bars, 300))
    assert 13 * 3600 in five and all(not (11 * 3600 + 30 * 60 <= t < 13 * 3600) for t in five)
    hourly = dict(merge_candles(bars, 3600))
    assert sorted(hourly) == [9 * 3600, 11 * 3600, 13 * 3600, 14 * 3600]
    assert hourly[14 * 3600][:5] == [22800, 22900, 22800, 22900, 5300]  # first open, last close, sums
    (day,) = merge_candles(bars, 86_400)
    assert day[1][4] == 6700 and day[1][0] == 22900 and day[1][3] == 22900


def test_the_tape_keeps_the_newest_trades_only():
    frames = [F.trade("ACB", 22900 + i * 50, 100, 100 * (i + 1), time=f"10:00:{i:02d}") for i in range(6)]
    tape = folded(frames, tape_length=4).tape["ACB"]
    assert [e[0] for e in tape.trades] == [3, 4, 5, 6]
    assert tape.trades[-1] == (6, 36005, 23150, 100, "neutral", "Unknow")


def test_foreign_minutes_sum_flow_deltas_and_re_seed_on_a_reset():
    state = folded([
        F.foreign("ACB", 1000, 200, "10:00:00", buy_val=1_000_000, sell_val=200_000),  # baseline
        F.foreign("ACB", 1500, 200, "10:00:30", buy_val=1_500_000, sell_val=200_000),
        F.foreign("ACB", 1800, 500, "10:01:10", buy_val=1_800_000, sell_val=500_000),
        F.foreign("ACB", 100, 50, "10:02:00", buy_val=100_000, sell_val=50_000),  # upstream reset
        F.foreign("ACB", 300, 50, "10:03:00", buy_val=300_000, sell_val=50_000),
        F.foreign("FPT", 10, 0, "10:00:00"),
        F.foreign("FPT", 30, 0, "10:00:40"),
    ])
    acb = state.foreign_minutes["ACB"].points
    # Values are kept in tenths of a VND.
    assert acb == {36000: [500, 0, 5_000_000, 0], 36060: [300, 300, 3_000_000, 3_000_000], 36180: [200, 0, 2_000_000, 0]}
    assert state.market_foreign.points[36000] == [520, 0, 5_200_000, 0]


def test_index_candles_and_the_basis_line():
    state = folded([
        F.index("VN30", 1900.0, "09:20:05", total=100.0),
        F.index("VN30", 1902.5, "09:20:35", total=150.0),
        F.trade("VN30F2612", 1905.0, 4, 4, time="09:20:40"),
        F.index("VN30", 1901.0, "09:20:55", total=180.0),
        F.trade("VN30F2612", 1906.3, 2, 6, time="09:21:10"),
    ])
    assert state.index_bars["VN30"].points == {33600: [1900.0, 1902.5, 1900.0, 1901.0, 180]}
    assert state.basis_line.points == {33600: [4.0], 33660: [5.3]}
    assert state.derivatives.basis == 5.3


async def test_history_folds_live_exactly_as_replay_with_a_short_tape(redis, settings):
    frames = [F.trade("ACB", 22900 + i * 50, 100, 100 * (i + 1), time=f"10:00:{i:02d}") for i in range(6)]
    frames += [F.foreign("ACB", 1000 + i, 0, f"10:0{i}:00") for i in range(3)]
    settings = msgspec.structs.replace(settings, tape_length=4, projector_batch=2)
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED) for f in frames])
    await writer.flush()
    await worker.drain(redis, settings)
    tape = await redis.hgetall(f"st:{{{F.SESSION}}}:tape:ACB")
    assert sorted(int(k) for k in tape) == [3, 4, 5, 6]
    assert not await verify(redis, F.SESSION, tape_length=4)


async def test_board_and_history_routes(redis, settings, redis_server):
    writer = StreamWriter(redis)
    frames = [
        quote("ACB", [(22900, 1000)], [(22950, 500)], RefPrice=22800.0),
        F.trade("ACB", 22950, 100, 100, time="09:20:01"),
        quote("HPG", [(27000, 10)], [(27050, 10)], Exchange="HNX"),
        F.foreign("ACB", 1000, 0, "09:20:05"),
        F.foreign("ACB", 1500, 0, "09:21:05"),
        F.index("VN30", 1900.0, "09:20:05"),
        F.trade("VN30F2612", 1905.0, 4, 4, time="09:21:11"),
    ]
    await writer.append([(f, RECEIVED) for f in frames])
    await writer.close_session(F.SESSION, RECEIVED + 1000)
    await worker.drain(redis, settings)
    with ApiServer(redis_server.url) as node:
        async with httpx.AsyncClient(base_url=node.http, timeout=5) as client:
            board = (await client.get("/api/market/board")).json()
            assert board["session"] == {"date": F.SESSION, "closed": True}
            assert sorted(board["rows"]) == ["ACB", "HPG", "VN30F2612"]
            assert board["rows"]["ACB"]["change"] == 150 and board["rows"]["VN30F2612"]["exchange"] == "DER"
            hnx = (await client.get("/api/market/board?symbols=HNX")).json()
            assert list(hnx["rows"]) == ["HPG"]
            picked = (await client.get("/api/market/board", params={"symbols": "acb,FPT", "date": F.SESSION})).json()
            assert list(picked["rows"]) == ["ACB"]
            candles = (await client.get("/api/history/candles/ACB?interval=5m")).json()
            assert candles["interval"] == "5m" and candles["candles"][0]["time"] == "2026-11-25T09:20:00+07:00"
            assert candles["candles"][0]["buy_volume"] == 100
            trades = (await client.get("/api/market/trades/ACB?limit=5")).json()
            assert trades["trades"] == [{"time": "2026-11-25T09:20:01+07:00", "price": 22950, "volume": 100,
                                         "side": "mua_chu_dong", "ssi_side": "Unknow"}]
            foreign = (await client.get("/api/history/foreign?symbol=ACB")).json()
            assert foreign["minutes"][0]["buy_volume"] == 500 and foreign["minutes"][0]["buy_value"] == 500_000
            market = (await client.get("/api/history/foreign")).json()
            assert market["symbol"] is None and market["minutes"] == foreign["minutes"]
            index = (await client.get("/api/history/index/VN30")).json()
            assert index["candles"][0]["close"] == 1900.0
            basis = (await client.get("/api/history/basis")).json()
            assert basis["points"] == [{"time": "2026-11-25T09:21:00+07:00", "basis": 5.0}]
            sessions = (await client.get("/api/sessions")).json()
            assert sessions["current"] == F.SESSION
            assert sessions["sessions"][0] == {"date": F.SESSION, "closed": True, "frames": 7, "dead": 0, "entries": 8}
            for bad in ("/api/history/candles/ACB?interval=2m", "/api/market/trades/ACB?limit=0",
                        "/api/market/trades/ACB?limit=1001", "/api/market/board?date=2026-02-30",
                        "/api/history/basis?date=yesterday", "/api/market/board?symbols=A%20B"):
                response = await client.get(bad)
                assert response.status_code == 400 and "detail" in response.json(), bad
            # A closed session never changes: the second answer comes from the cache.
            assert (await client.get("/api/market/board")).json() == board
            schema = (await client.get("/schema/openapi.json")).json()
            assert "400" in schema["paths"]["/api/history/candles/{symbol}"]["get"]["responses"]


def test_the_swagger_page_needs_nothing_from_the_internet():
    import re

    import fakeredis
    from litestar.testing import TestClient

    from app.api.app import create_app
    from app.config import Settings

    with TestClient(create_app(Settings(), redis=fakeredis.FakeAsyncRedis())) as client:
        page = client.get("/schema/swagger")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        assert assets and not any(a.startswith(("http:", "https:", "//")) for a in assets), assets
        assert "unpkg" not in page.text and "cdn" not in page.text.lower()
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
