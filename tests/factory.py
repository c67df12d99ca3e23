"""Build SSI Broadcast strings for tests, in the feed's own format (double-encoded)."""

from __future__ import annotations

import json

DATE = "25/11/2026"
SESSION = "2026-11-25"


def broadcast(data_type: str, content: dict) -> str:
    return json.dumps(
        {"DataType": data_type, "Content": json.dumps(content, separators=(",", ":"))},
        separators=(",", ":"),
    )


def book(bids=(), asks=()) -> dict:
    out = {}
    for i in range(1, 11):
        bp, bv = bids[i - 1] if i <= len(bids) else (0.0, 0.0)
        ap, av = asks[i - 1] if i <= len(asks) else (0.0, 0.0)
        out.update({f"BidPrice{i}": float(bp), f"BidVol{i}": float(bv), f"AskPrice{i}": float(ap), f"AskVol{i}": float(av)})
    return out


def quote(sym: str, bid: float, ask: float, time: str = "10:00:00", date: str = DATE, **extra) -> str:
    content = {"TradingDate": date, "Time": time, "Exchange": "HOSE", "Symbol": sym, "RType": "X-QUOTE"}
    content.update(book([(bid, 1000)] if bid else [], [(ask, 1000)] if ask else []))
    content["TradingSession"] = extra.pop("session", "LO")
    content.update(extra)
    return broadcast("X-QUOTE", content)


def trade(
    sym: str,
    price: float,
    last_vol: float,
    total_vol: float | None,
    time: str = "10:00:01",
    session: str = "LO",
    side: str = "Unknow",
    date: str = DATE,
    ceiling: float = 0.0,
    floor: float = 0.0,
    **extra,
) -> str:
    content = {
        "RType": "X-TRADE", "TradingDate": date, "Time": time, "Isin": sym, "Symbol": sym,
        "Ceiling": ceiling, "Floor": floor, "RefPrice": 0.0, "LastPrice": float(price),
        "LastVol": float(last_vol), "MarketId": "HOSE", "Exchange": "HOSE",
        "TradingSession": session, "TradingStatus": "N", "Side": side,
    }
    if total_vol is not None:
        content["TotalVol"] = float(total_vol)
    content.update(extra)
    return broadcast("X-TRADE", content)


def snapshot_x(
    sym: str, price: float, last_vol: float, total_vol: float, bid: float, ask: float,
    time: str = "10:00:01", session: str = "LO", date: str = DATE, **extra,
) -> str:
    content = {
        "RType": "X", "TradingDate": date, "Time": time, "Symbol": sym, "LastPrice": float(price),
        "LastVol": float(last_vol), "TotalVol": float(total_vol), "TradingSession": session,
    }
    content.update(book([(bid, 500)] if bid else [], [(ask, 500)] if ask else []))
    content.update(extra)
    return broadcast("X", content)


def foreign(sym: str, buy: float, sell: float, time: str, buy_val: float | None = None,
            sell_val: float | None = None, date: str = DATE, **extra) -> str:
    content = {
        "RType": "R", "TradingDate": date, "Time": time, "Isin": sym, "Symbol": sym,
        "TotalRoom": 1_000_000.0, "CurrentRoom": 500_000.0, "BuyVol": float(buy), "SellVol": float(sell),
        "BuyVal": float(buy * 1000 if buy_val is None else buy_val),
        "SellVal": float(sell * 1000 if sell_val is None else sell_val),
        "MarketId": "HOSE", "Exchange": "HOSE",
    }
    content.update(extra)
    return broadcast("R", content)


def index(idx: str, value: float, time: str, advances: int = 10, declines: int = 5,
          no_changes: int = 2, date: str = DATE, total: float = 1000.0, **extra) -> str:
    content = {
        "IndexId": idx, "IndexValue": value, "PriorIndexValue": 1000.0, "TradingDate": date, "Time": time,
        "TotalTrade": 0.0, "TotalQtty": total, "TotalValue": total * 10, "IndexName": idx,
        "Advances": advances, "NoChanges": no_changes, "Declines": declines, "Ceilings": 0, "Floors": 0,
        "Change": round(value - 1000.0, 2), "RatioChange": round((value - 1000.0) / 10, 2),
        "TotalQttyPt": 0.0, "TotalValuePt": 0.0, "Exchange": "HOSE", "AllQty": total, "AllValue": total * 10,
        "IndexType": "Main", "TradingSession": "LO", "MarketId": "HOSE", "RType": "MI",
        "TotalQttyOd": 0.0, "TotalValueOd": 0.0,
    }
    content.update(extra)
    return broadcast("MI", content)


async def register_session(redis, session: str = SESSION) -> None:
    """Make ``session`` known and current, for tests that write projection hashes by hand
    (only a session with a folded frame is current)."""
    from app import keys as K

    await redis.zadd(K.SESSIONS, {session: K.date_score(session)})
    await redis.hset(K.SessionKeys(session).meta, mapping={"date": session, "frames": 1})
