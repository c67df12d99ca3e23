"""Reading the board and the day's history back as the API's shapes."""

from __future__ import annotations

from redis.asyncio import Redis

from app import keys as K
from app.clock import iso_time
from app.futures import is_vn30_future
from app.projections import history, money
from app.projections.board import board_row
from app.projections.hashes import as_str, from_hash
from app.projections.kinds import (
    BASIS_LINE, CANDLES, FOREIGN_MINUTES, INDEX_BARS, MARKET_FOREIGN, QUOTE, STATS, TAPE, Kind,
)
from app.projections.codec import key_of
from app.projections.session import SessionMeta
from app.projections.trades import SymbolStats
from app.schemas import (
    BasisPoint,
    BoardRow,
    Candle,
    ForeignMinute,
    IndexCandle,
    SessionInfo,
    TapeTrade,
)
from app.sessions import session_dates

# Candle intervals: seconds, counted from 00:00 Vietnam time.
INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "1d": 86_400}


async def _series(redis: Redis, date: str, kind: Kind, name: str = ""):
    keys = K.SessionKeys(date)
    segment = kind.segments[0]
    raw = await redis.hgetall(key_of(keys, kind, segment, name))
    return kind.decode({segment: raw})


async def read_board(redis: Redis, date: str, symbols: list[str] | None = None) -> dict[str, BoardRow]:
    """Board rows of ``symbols`` (default: every symbol quoted or traded), by symbol."""
    keys = K.SessionKeys(date)
    if symbols is None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.members(QUOTE.member_set))
            pipe.smembers(keys.members(STATS.member_set))
            quoted, traded = await pipe.execute()
        symbols = sorted({as_str(s) for s in quoted} | {as_str(s) for s in traded})
    async with redis.pipeline(transaction=False) as pipe:
        for sym in symbols:
            pipe.hgetall(keys.entity("stats", sym))
            pipe.hgetall(keys.entity("quote", sym))
        replies = await pipe.execute()
    rows: dict[str, BoardRow] = {}
    for sym, stats_raw, quote_raw in zip(symbols, replies[0::2], replies[1::2]):
        if not stats_raw and not quote_raw:
            continue
        stats = from_hash(stats_raw, SymbolStats) if stats_raw else None
        quote = QUOTE.decode({"quote": quote_raw}) if quote_raw else None
        rows[sym] = board_row(sym, stats, quote)
    return rows


def merge_candles(points: dict[int, list], seconds: int) -> list[tuple[int, list]]:
    """1-minute bars merged into ``seconds`` buckets: first open, last close, extremes, sums."""
    out: list[tuple[int, list]] = []
    for t in sorted(points):
        bar = points[t]
        start = t - t % seconds
        if out and out[-1][0] == start:
            acc = out[-1][1]
            acc[history.HIGH] = max(acc[history.HIGH], bar[history.HIGH])
            acc[history.LOW] = min(acc[history.LOW], bar[history.LOW])
            acc[history.CLOSE] = bar[history.CLOSE]
            acc[history.VOLUME] += bar[history.VOLUME]
            acc[history.VALUE] = _add_money(acc[history.VALUE], bar[history.VALUE])
            for i in (history.BUY, history.SELL, history.NEUTRAL):
                acc[i] += bar[i]
        else:
            out.append((start, list(bar)))
    return out


def _add_money(a, b):
    return money.served(money.as_tenths(a) + money.as_tenths(b), type(a) is float or type(b) is float)


async def read_candles(redis: Redis, date: str, symbol: str, interval: str = "1m") -> list[Candle]:
    series = await _series(redis, date, CANDLES, symbol)
    futures = is_vn30_future(symbol)
    out = []
    for t, b in merge_candles(series.points, INTERVALS[interval]):
        o, h, low, c = (money.price(p, futures) for p in b[:4])
        out.append(Candle(
            time=iso_time(date, t), open=o, high=h, low=low, close=c, volume=b[4], value=b[5],
            buy_volume=b[6], sell_volume=b[7], neutral_volume=b[8],
        ))
    return out


async def read_trades(redis: Redis, date: str, symbol: str, limit: int) -> list[TapeTrade]:
    """The newest ``limit`` counted trades, newest first."""
    tape = await _series(redis, date, TAPE, symbol)
    futures = is_vn30_future(symbol)
    newest = list(tape.trades)[-limit:] if limit > 0 else []
    return [
        TapeTrade(time=iso_time(date, e[1]), price=money.price(e[2], futures), volume=e[3], side=e[4], ssi_side=e[5])
        for e in reversed(newest)
    ]


async def read_foreign_minutes(redis: Redis, date: str, symbol: str | None = None) -> list[ForeignMinute]:
    """Foreign flow per minute of one symbol, or of the market without ``symbol``."""
    if symbol is None:
        series = await _series(redis, date, MARKET_FOREIGN)
    else:
        series = await _series(redis, date, FOREIGN_MINUTES, symbol)
    futures = symbol is not None and is_vn30_future(symbol)
    out = []
    for t in sorted(series.points):
        bv, sv, bval, sval = series.points[t]
        out.append(ForeignMinute(
            time=iso_time(date, t), buy_volume=bv, sell_volume=sv,
            buy_value=money.served(bval, futures), sell_value=money.served(sval, futures),
            net_volume=bv - sv, net_value=money.served(bval - sval, futures),
        ))
    return out


async def read_index_candles(redis: Redis, date: str, index_id: str) -> list[IndexCandle]:
    series = await _series(redis, date, INDEX_BARS, index_id)
    return [
        IndexCandle(time=iso_time(date, t), open=b[0], high=b[1], low=b[2], close=b[3], total_volume=b[4])
        for t, b in sorted(series.points.items())
    ]


async def read_basis(redis: Redis, date: str) -> list[BasisPoint]:
    series = await _series(redis, date, BASIS_LINE)
    return [BasisPoint(time=iso_time(date, t), basis=p[0]) for t, p in sorted(series.points.items())]


async def read_sessions(redis: Redis) -> list[SessionInfo]:
    """Every known session, newest first, with what its projector has folded."""
    dates = await session_dates(redis, newest_first=True)
    async with redis.pipeline(transaction=False) as pipe:
        for date in dates:
            pipe.hgetall(K.SessionKeys(date).meta)
        metas = await pipe.execute()
    out = []
    for date, raw in zip(dates, metas):
        meta = from_hash(raw, SessionMeta) if raw else SessionMeta(date=date)
        out.append(SessionInfo(date=date, closed=meta.closed, frames=meta.frames, dead=meta.dead, entries=meta.entries))
    return out
