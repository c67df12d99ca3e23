"""Reading projections back as the API's shapes (two Redis round trips per view)."""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis

from app import keys as K
from app.clock import iso_time
from app.projections.kinds import INTRADAY
from app.sessions import session_dates
from app.projections.hashes import as_str, comma_list, from_hash
from app.schemas import (
    DerivativesData,
    ForeignInvestorData,
    ForeignSummary,
    IndexData,
    IntradayPoint,
    MarketSnapshot,
    SessionRef,
    SessionStats,
)


async def newest_session(redis: Redis) -> str | None:
    """The newest session any writer has appended to (folded or not), or None."""
    newest = await session_dates(redis, newest_first=True, count=1)
    return newest[0] if newest else None


# Sessions examined per round trip while looking for the current one.
_PROBE = 16


async def current_session(redis: Redis) -> str | None:
    """The session readers show: the newest one with at least one folded frame.

    A session holding only dead or skipped entries is never current, so a stray
    frame cannot blank the board; a closed session stays current (its final state)
    until a later session folds a frame.
    """
    dates = await session_dates(redis, newest_first=True)
    for start in range(0, len(dates), _PROBE):
        chunk = dates[start : start + _PROBE]
        async with redis.pipeline(transaction=False) as pipe:
            for date in chunk:
                pipe.hget(K.SessionKeys(date).meta, "frames")
            folded = await pipe.execute()
        for date, frames in zip(chunk, folded):
            if frames is not None and int(frames) > 0:
                return date
    return None


async def resolve_session(redis: Redis, date: str | None) -> SessionRef | None:
    """The session to read (an explicit date, else the current one) and whether it is
    closed; None when there is no current session yet."""
    date = date if date is not None else await current_session(redis)
    if date is None:
        return None
    closed = await redis.hget(K.SessionKeys(date).meta, "closed")
    return SessionRef(date=date, closed=closed in (b"true", "true"))


async def _members(redis: Redis, keys: K.SessionKeys, *names: str) -> list[list[str]]:
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.smembers(keys.members(name))
        return [sorted(as_str(m) for m in reply) for reply in await pipe.execute()]


def _intraday(date: str, raw: dict) -> list[IntradayPoint]:
    line = INTRADAY.decode({"intraday": raw})
    return [IntradayPoint(iso_time(date, t), value) for t, value in sorted(line.items())]


async def read_indices(redis: Redis, date: str) -> dict[str, IndexData]:
    keys = K.SessionKeys(date)
    (ids,) = await _members(redis, keys, "index")
    async with redis.pipeline(transaction=False) as pipe:
        for idx in ids:
            pipe.hgetall(keys.entity("index", idx))
            pipe.hgetall(keys.entity("intraday", idx))
        replies = await pipe.execute()
    out: dict[str, IndexData] = {}
    for idx, data, line in zip(ids, replies[0::2], replies[1::2]):
        if data:
            index = from_hash(data, IndexData)
            index.intraday = _intraday(date, line)
            out[idx] = index
    return out


async def _entities(redis: Redis, date: str, kind: str, cls: type, names: list[str] | None = None) -> dict:
    """Every ``kind`` hash of a session (or just ``names``), decoded as ``cls``."""
    keys = K.SessionKeys(date)
    if names is None:
        (names,) = await _members(redis, keys, kind)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.entity(kind, name))
        replies = await pipe.execute()
    return {name: from_hash(d, cls) for name, d in zip(names, replies) if d}


async def read_stats(redis: Redis, date: str, symbols: list[str] | None = None) -> dict[str, SessionStats]:
    return await _entities(redis, date, "stats", SessionStats, symbols)


async def read_foreign(redis: Redis, date: str) -> ForeignSummary | None:
    keys = K.SessionKeys(date)
    raw = await redis.hgetall(keys.foreign)
    if not raw:
        return None
    fields = {as_str(k): as_str(v) for k, v in raw.items()}
    top_buy = comma_list(fields.pop("top_buy", None))
    top_sell = comma_list(fields.pop("top_sell", None))
    summary = msgspec.convert(fields, ForeignSummary, strict=False)
    rows = await _entities(redis, date, "foreign", ForeignInvestorData, top_buy + top_sell)
    summary.top_buy = [rows[s] for s in top_buy if s in rows]
    summary.top_sell = [rows[s] for s in top_sell if s in rows]
    return summary


async def read_derivatives(redis: Redis, date: str) -> DerivativesData | None:
    raw = await redis.hgetall(K.SessionKeys(date).derivatives)
    return from_hash(raw, DerivativesData) if raw else None


async def market_snapshot(redis: Redis, date: str | None = None) -> MarketSnapshot:
    """The seed's MarketSnapshot for ``date`` (default: the current session)."""
    ref = await resolve_session(redis, date)
    if ref is None:
        return MarketSnapshot()
    session = ref.date
    return MarketSnapshot(
        quotes=await read_stats(redis, session),
        indices=await read_indices(redis, session),
        foreign=await read_foreign(redis, session),
        derivatives=await read_derivatives(redis, session),
    )
