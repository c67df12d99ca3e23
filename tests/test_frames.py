"""Decoding: real captured frames, the documented samples, and hostile input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.ingest.routing import trading_date_of
from app.frames import BarMsg, FrameError, IndexMsg, SecurityMsg, UnknownMsg, decode_frame
from app.projections.session import fold, finish_batch, new_session

FIXTURES = Path(__file__).parent / "fixtures" / "ssi-real"


def lines(name: str) -> list[str]:
    return [line for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def test_every_captured_frame_decodes():
    mi, b = lines("ssi_mi_messages.jsonl"), lines("ssi_b_messages.jsonl")
    assert len(mi) == 26 and len(b) == 1813
    assert all(isinstance(decode_frame(x).msg, IndexMsg) for x in mi)
    assert all(isinstance(decode_frame(x).msg, BarMsg) for x in b)


def test_captured_mi_frames_project_to_the_last_value_and_a_minute_line():
    state = new_session("2026-07-20")
    for frame in lines("ssi_mi_messages.jsonl"):
        assert fold(state, frame) is None
    finish_batch(state)
    vnindex = state.indices["VNINDEX"]
    assert vnindex.value == 1746.55
    assert vnindex.prior_value == 1787.45
    assert vnindex.change == -40.9 and vnindex.ratio_change == -2.29
    assert vnindex.total_volume == 475_358_288
    assert (vnindex.advances, vnindex.declines, vnindex.no_changes) == (37, 274, 30)
    assert vnindex.advance_ratio == 37 / (37 + 274)
    assert vnindex.last_updated == "2026-07-20T13:37:35+07:00"
    # 13:35:25 .. 13:37:35: three minutes, each holding the last value seen in it.
    last_by_minute: dict[int, float] = {}
    for frame in lines("ssi_mi_messages.jsonl"):
        content = json.loads(json.loads(frame)["Content"])
        h, m, _ = map(int, content["Time"].split(":"))
        last_by_minute[h * 3600 + m * 60] = content["IndexValue"]
    assert state.intraday["VNINDEX"] == last_by_minute
    assert len(last_by_minute) == 3


def test_captured_b_frames_route_to_their_own_session_and_are_not_projected():
    frames = lines("ssi_b_messages.jsonl")
    sessions = [trading_date_of(f.encode()) for f in frames]
    # Three closing-auction fills of 17/07, then the 20/07 session.
    assert sessions[:3] == ["2026-07-17"] * 3
    assert set(sessions[3:]) == {"2026-07-20"}
    state = new_session("2026-07-20")
    assert all(fold(state, frame) is None for frame in frames[3:])
    assert state.meta.skipped == 1810 and state.meta.frames == 0


def _dewrap(sample: str) -> str:
    """The guide wraps its samples across lines inside JSON strings; join them back."""
    return "".join(line.strip() for line in sample.strip().splitlines())


X_QUOTE_SAMPLE = r'''{"DataType":"X-QUOTE",
"Content":"{
\"TradingDate\":\"14/08/2023\",\"Time\":\"14:00:28\",\"Exchange\":\"HOSE\",\"Symbol\":\"ACB\",\"RType\":\"X-QUOTE\",
\"AskPrice1\":22950.0,\"AskPrice2\":23000.0,\"AskPrice3\":23050.0,\"AskPrice4\":0.0,\"AskPrice5\":0.0,\"AskPrice6\":0.0,
\"AskPrice7\":0.0,\"AskPrice8\":0.0,\"AskPrice9\":0.0,\"AskPrice10\":0.0,\"AskVol1\":109100.0,\"AskVol2\":208600.0,
\"AskVol3\":207200.0,\"AskVol4\":0.0,\"AskVol5\":0.0,\"AskVol6\":0.0,\"AskVol7\":0.0,\"AskVol8\":0.0,\"AskVol9\":0.0,
\"AskVol10\":0.0,\"BidPrice1\":22900.0,\"BidPrice2\":22850.0,\"BidPrice3\":22800.0,\"BidPrice4\":0.0,\"BidPrice5\":0.0,
\"BidPrice6\":0.0,\"BidPrice7\":0.0,\"BidPrice8\":0.0,\"BidPrice9\":0.0,\"BidPrice10\":0.0,\"BidVol1\":290900.0,
\"BidVol2\":454200.0,\"BidVol3\":678800.0,\"BidVol4\":0.0,\"BidVol5\":0.0,\"BidVol6\":0.0,\"BidVol7\":0.0,\"BidVol8\":0.0,
\"BidVol9\":0.0,\"BidVol10\":0.0,\"TradingSession\":\"LO\"}"}'''

X_TRADE_SAMPLE = r'''{"DataType":"X-TRADE",
"Content":"{
\"RType\":\"X-TRADE\",\"TradingDate\":\"14/08/2023\",\"Time\":\"14:07:53\",\"Isin\":\"ACB\",\"Symbol\":\"ACB\",
\"Ceiling\":24500.0,\"Floor\":21300.0,\"RefPrice\":22900.0,\"AvgPrice\":22927.93,\"PriorVal\":22900.0,
\"LastPrice\":22950.0,\"LastVol\":100.0,\"TotalVal\":201713015000.0,\"TotalVol\":8797700.0,\"MarketId\":\"HOSE\",
\"Exchange\":\"HOSE\",\"TradingSession\":\"LO\",\"TradingStatus\":\"N\",\"Change\":50.0,\"RatioChange\":0.22,
\"EstMatchedPrice\":22900.0,\"Highest\":23050,\"Lowest\":22800,\"Side\":\"SD\",
}"}'''

X_SAMPLE = r'''{"DataType":"X",
"Content":"{
\"RType\":\"X\",\"TradingDate\":\"15/08/2023\",\"Time\":\"10:28:41\",\"Isin\":\"TAR\",\"Symbol\":\"TAR\",
\"Ceiling\":23400.0,\"Floor\":19200.0,\"RefPrice\":21300.0,\"Open\":21300.0,\"High\":22300.0,\"Low\":21300.0,
\"Close\":21800.0,\"AvgPrice\":21784.0,\"PriorVal\":21300.0,\"LastPrice\":21800.0,\"LastVol\":100.0,
\"TotalVal\":27946100000.0,\"TotalVol\":1282900.0,\"BidPrice1\":21800.0,\"BidPrice2\":21700.0,\"BidPrice3\":21600.0,
\"BidPrice4\":21500.0,\"BidPrice5\":21400.0,\"BidPrice6\":21300.0,\"BidPrice7\":21200.0,\"BidPrice8\":21100.0,
\"BidPrice9\":21000.0,\"BidPrice10\":20900.0,\"BidVol1\":18800.0,\"BidVol2\":35300.0,\"BidVol3\":93600.0,
\"BidVol4\":60000.0,\"BidVol5\":45800.0,\"BidVol6\":94500.0,\"BidVol7\":42900.0,\"BidVol8\":48400.0,
\"BidVol9\":165900.0,\"BidVol10\":26100.0,\"AskPrice1\":21900.0,\"AskPrice2\":22000.0,\"AskPrice3\":22100.0,
\"AskPrice4\":22200.0,\"AskPrice5\":22300.0,\"AskPrice6\":22400.0,\"AskPrice7\":22500.0,\"AskPrice8\":22600.0,
\"AskPrice9\":22700.0,\"AskPrice10\":22800.0,\"AskVol1\":50300.0,\"AskVol2\":109800.0,\"AskVol3\":58500.0,
\"AskVol4\":152600.0,\"AskVol5\":92200.0,\"AskVol6\":129800.0,\"AskVol7\":178700.0,\"AskVol8\":60100.0,
\"AskVol9\":29400.0,\"AskVol10\":17000.0,\"MarketId\":\"HNX\",\"Exchange\":\"HNX\",\"TradingSession\":\"LO\",
\"TradingStatus\":\"N\",\"Change\":500.0,\"RatioChange\":2.35,\"EstMatchedPrice\":0.0}"}'''

R_SAMPLE = r'''{"DataType":"R",
"Content":"{
\"RType\":\"R\",\"TradingDate\":\"14/08/2023\",\"Time\":\"14:24:02\",\"Isin\":\"SSI\",\"Symbol\":\"SSI\",
\"TotalRoom\":1501130137.0,\"CurrentRoom\":806887173.0,\"BuyVol\":863352.0,\"SellVol\":825308.0,
\"BuyVal\":25123543200.0,\"SellVal\":24016462800.0,\"MarketId\":\"HOSE\",\"Exchange\":\"HOSE\"}"
}'''

F_SAMPLE = r'''{"DataType":"F",
"Content":"{
\"RType\":\"F\",\"MarketId\":\"HOSE\",\"TradingDate\":\"14/08/2023\",\"Time\":\"13:00:00\",\"Symbol\":\"SSI\",
\"TradingSession\":\"LO\",\"TradingStatus\":\"N\",\"Exchange\":\"HOSE\"}"
}'''

OL_SAMPLE = '''{"DataType": "OL", "Content": {"RType": "OL", "TradingDate": "18/02/2025", "Time": "13:55:03",
"StockNo": 2027, "Symbol": "MBB", "Ceiling": 24200, "Floor": 21100, "RefPrice": 22650, "Open": 22650,
"High": 22950, "Low": 22600, "LastPrice": 22750, "LastVol": 9193, "TotalVal": 185028289999.99728,
"TotalVol": 8135000, "BidPrice1": 22700, "BidPrice2": 22650, "BidPrice3": 22600, "BidVol1": 1108,
"BidVol2": 1630, "BidVol3": 2016, "AskPrice1": 22750, "AskPrice2": 22800, "AskPrice3": 22850, "AskVol1": 132,
"AskVol2": 548, "AskVol3": 297, "Exchange": "HOSE", "TradingSession": "LO", "TradingStatus": "H",
"Change": 100, "RatioChange": 0.44, "StockType": "Stock"}}'''

# The guide's MI and B samples use Python-style and typographic quotes; these are the
# same payloads with real JSON quotes.
MI_SAMPLE = r'''{"DataType":"MI","Content":{"IndexId":"VN30","IndexValEst":1200.03,"IndexValue":1238.76,
"PriorIndexValue":1226.16,"TradingDate":"02/04/2021","Time":"11:28:13","TotalTrade":0.0,"TotalQtty":191838100.0,
"TotalValue":7289093000000.0,"IndexName":"VN30","Advances":25,"NoChanges":2,"Declines":3,"Ceilings":0,"Floors":0,
"Change":12.6,"RatioChange":1.03,"TotalQttyPt":2064000.0,"TotalValuePt":244251000000.0,"Exchange":"HOSE",
"AllQty":193902100.0,"AllValue":7533344000000.0,"IndexType":"Main","TradingSession":null,"MarketId":null,
"RType":"MI","TotalQttyOd":0.0,"TotalValueOd":0.0}}'''

B_SAMPLE = r'''{"Datatype":"B","Content":"{\"RType\":\"B\",\"Symbol\":\"X26\",\"TradingTime\":\"14:28:33\",
\"Open\":16000,\"High\":16000,\"Low\":16000,\"Close\":16000,\"Volume\":5000,\"Value\":0}"}'''


def test_documented_samples_decode():
    q = decode_frame(_dewrap(X_QUOTE_SAMPLE))
    assert q.data_type == "X-QUOTE" and q.msg.ask_price1 == 22950.0 and q.msg.bid_vol3 == 678800.0
    x = decode_frame(_dewrap(X_SAMPLE))
    assert x.msg.total_vol == 1_282_900 and x.msg.ask_price10 == 22800.0
    r = decode_frame(_dewrap(R_SAMPLE))
    assert r.msg.buy_val == 25_123_543_200.0 and r.msg.current_room == 806_887_173
    f = decode_frame(_dewrap(F_SAMPLE))
    assert f.msg.trading_session == "LO"
    ol = decode_frame(_dewrap(OL_SAMPLE))
    assert ol.data_type == "OL" and isinstance(ol.msg, SecurityMsg) and ol.msg.last_vol == 9193
    mi = decode_frame(_dewrap(MI_SAMPLE))
    assert mi.msg.index_value == 1238.76 and mi.msg.trading_session is None
    b = decode_frame(_dewrap(B_SAMPLE))
    assert b.data_type == "B" and b.msg.time == "14:28:33" and b.msg.volume == 5000


def test_the_guides_x_trade_sample_is_invalid_json_and_gets_a_clear_reason():
    raw = _dewrap(X_TRADE_SAMPLE)
    with pytest.raises(FrameError, match="invalid JSON in Content"):
        decode_frame(raw)
    fixed = decode_frame(raw.replace(',}"}', '}"}'))
    assert fixed.msg.side == "SD" and fixed.msg.highest == 23050.0


def test_legacy_quote_and_trade_data_types_map_to_today_s_names():
    frame = json.dumps({"DataType": "Trade", "Content": json.dumps({"Symbol": "SSI", "LastPrice": 12700})})
    assert decode_frame(frame).data_type == "X-TRADE"
    frame = json.dumps({"DataType": "Quote", "Content": {"Symbol": "VN30F2104", "BidVol10": "4"}})
    decoded = decode_frame(frame)
    assert decoded.data_type == "X-QUOTE" and decoded.msg.bid_vol10 == 4.0


def test_unknown_data_types_are_kept_and_skipped():
    frame = json.dumps({"DataType": "MDM", "Content": "{}"})
    assert decode_frame(frame).msg == UnknownMsg("MDM")
    state = new_session("2026-11-25")
    assert fold(state, frame) is None and state.meta.skipped == 1


def _trade_content(**override) -> dict:
    content = {"RType": "X-TRADE", "TradingDate": "25/11/2026", "Time": "10:00:00", "Symbol": "ACB",
               "LastPrice": 22950.0, "LastVol": 100.0, "TotalVol": 100.0}
    content.update(override)
    return content


def _frame(content, data_type="X-TRADE") -> str:
    return json.dumps({"DataType": data_type, "Content": json.dumps(content)})


HOSTILE = {
    "not json": ("{nope", "invalid JSON"),
    "json array": ("[1,2]", "envelope is list"),
    "no content": ('{"DataType":"X"}', "Content is missing"),
    "content not json": ('{"DataType":"X","Content":"{{"}', "invalid JSON in Content"),
    "content a number": ('{"DataType":"X","Content":"5"}', "Content is missing or not an object"),
    "no data type": ('{"Content":"{}"}', "DataType is missing"),
    "data type not a string": ('{"DataType":7,"Content":"{}"}', "DataType is missing"),
    "wrong type": (_frame(_trade_content(LastPrice=[1])), "Expected `float | null`"),
    "text where a number goes": (_frame(_trade_content(TotalVol="lots")), "Expected `float | null`"),
    "huge number": (_frame(_trade_content(TotalVol=1e300)), "Expected `float` <= 1e+16"),
    "out of range number": ('{"DataType":"X","Content":"{\\"Symbol\\":\\"A\\",\\"LastPrice\\":1e999}"}', "invalid JSON"),
    "negative price": (_frame(_trade_content(LastPrice=-5.0)), "Expected `float` >= 0"),
    "missing symbol": (_frame({"RType": "X-TRADE", "LastPrice": 1.0}), "missing required field `Symbol`"),
    "1 MB symbol": (_frame(_trade_content(Symbol="A" * 1_000_000)), "frame too large"),
    "long symbol": (_frame(_trade_content(Symbol="A" * 100)), "Expected `str` of length <= 32"),
    "deep nesting": ('{"DataType":"X","Content":' + "[" * 100_000 + "]" * 100_000 + "}", "invalid JSON"),
    "deep nesting in content": (json.dumps({"DataType": "X", "Content": "[" * 50_000 + "]" * 50_000}), "invalid JSON"),
    "bad date": (_frame(_trade_content(TradingDate="2026-11-25")), "TradingDate"),
    "bad time": (_frame(_trade_content(Time="25:61:00")), "bad Time"),
    "no time on R": (_frame({"RType": "R", "TradingDate": "25/11/2026", "Symbol": "SSI", "BuyVol": 1, "SellVol": 0}, "R"), "missing Time"),
    "R without totals": (_frame({"RType": "R", "Time": "10:00:00", "Symbol": "SSI", "BuyVol": 1}, "R"), "R without BuyVol/SellVol"),
    "MI without value": (_frame({"IndexId": "VN30", "Time": "10:00:00"}, "MI"), "MI without IndexValue"),
    "trade without price": (_frame(_trade_content(LastPrice=None, TotalVol=500.0)), "trade without LastPrice"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_frames_are_refused_with_a_reason_and_counted(name):
    raw, reason = HOSTILE[name]
    state = new_session("2026-11-25")
    good = _frame(_trade_content())
    assert fold(state, good) is None
    refused = fold(state, raw)
    assert refused is not None, name
    assert reason in refused.reason
    assert fold(state, _frame(_trade_content(TotalVol=300.0, LastVol=200.0))) is None
    assert state.stats["ACB"].total_volume == 300  # good frames around it, unchanged
    assert state.meta.dead == 1 and state.meta.frames == 2
    assert set(state.quotes) == {"ACB"} and set(state.stats) == {"ACB"}  # no trace of it


@pytest.mark.parametrize(
    "override, reason",
    [
        ({"Symbol": "acb"}, "bad Symbol 'acb'"),
        ({"Symbol": "ACB\n"}, "bad Symbol 'ACB\\n'"),
        ({"Time": "10:00"}, "bad Time '10:00'"),
        ({"Time": "١٠:٣٠:٠٠"}, "bad Time"),
        ({"TradingDate": "25/11/26"}, "bad TradingDate '25/11/26'"),
    ],
)
def test_patterns_hold_on_the_fast_path_after_good_values_were_seen(override, reason):
    # The exact-name decoder checks each distinct patterned value once and remembers
    # it: a good value seen first must not let a bad spelling of it through.
    assert decode_frame(_frame(_trade_content())).msg.symbol == "ACB"
    with pytest.raises(FrameError, match=re.escape(reason)):
        decode_frame(_frame(_trade_content(**override)))
    assert decode_frame(_frame(_trade_content())).msg.time == "10:00:00"


def test_index_ids_keep_ssi_s_case_and_refuse_other_characters():
    index = {"IndexId": "HNXIndex", "IndexValue": 250.5, "Time": "10:00:00"}
    assert decode_frame(_frame(index, "MI")).msg.index_id == "HNXIndex"
    with pytest.raises(FrameError, match="bad IndexId"):
        decode_frame(_frame({**index, "IndexId": "HNX Index"}, "MI"))


def test_the_cache_of_checked_values_stays_bounded(monkeypatch):
    from app import frames

    monkeypatch.setattr(frames, "_PASSED_MAX", 50)
    seen = [decode_frame(_frame(_trade_content(Symbol=f"S{n}"))).msg.symbol for n in range(200)]
    assert seen == [f"S{n}" for n in range(200)]
    assert 0 < len(frames._PASSED) <= 50
    with pytest.raises(FrameError, match="bad Symbol"):
        decode_frame(_frame(_trade_content(Symbol="s199")))
