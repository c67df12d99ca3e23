"""Reading projections back as the API's shapes (two Redis round trips per view)."""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis

from app import keys as K
from app.projections.codec import as_str, from_hash
from app.schemas import (
    DerivativesData,
    ForeignInvestorData,
    ForeignSummary,
    IndexData,
    IntradayPoint,
    MarketSnapshot,
    SessionStats,
)


async def current_session(redis: Redis) -> str | None:
    """The newest session date known, or None."""
    newest = await redis.zrange(K.SESSIONS, -1, -1)
    return as_str(newest[0]) if newest else None


async def resolve_session(redis: Redis, date: str | None) -> tuple[str | None, bool]:
    """(session date, open?) for an explicit date or the current session.

    The current session reads as empty once its 15:00 close marker is folded: the
    day's final numbers stay available by date.
    """
    if date is not None:
        return date, True
    date = await current_session(redis)
    if date is None:
        return None, False
    closed = await redis.hget(K.SessionKeys(date).meta, "closed")
    return date, closed != b"true" and closed != "true"


async def _members(redis: Redis, keys: K.SessionKeys, *names: str) -> list[list[str]]:
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.smembers(keys.members(name))
        return [sorted(as_str(m) for m in reply) for reply in await pipe.execute()]


def _intraday(date: str, raw: dict) -> list[IntradayPoint]:
    points = sorted((as_str(k), float(as_str(v))) for k, v in raw.items())
    return [IntradayPoint(f"{date}T{minute}:00+07:00", value) for minute, value in points]


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
    top_buy = [s for s in fields.pop("top_buy", "").split(",") if s]
    top_sell = [s for s in fields.pop("top_sell", "").split(",") if s]
    summary = msgspec.convert(fields, ForeignSummary, strict=False)
    rows = await _entities(redis, date, "foreign", ForeignInvestorData, top_buy + top_sell)
    summary.top_buy = [rows[s] for s in top_buy if s in rows]
    summary.top_sell = [rows[s] for s in top_sell if s in rows]
    return summary


async def read_derivatives(redis: Redis, date: str) -> DerivativesData | None:
    raw = await redis.hgetall(K.SessionKeys(date).derivatives)
    return from_hash(raw, DerivativesData) if raw else None


async def market_snapshot(redis: Redis, date: str | None = None) -> MarketSnapshot:
    """The seed's MarketSnapshot for ``date`` (default: the current, open session)."""
    session, is_open = await resolve_session(redis, date)
    if session is None or not is_open:
        return MarketSnapshot()
    return MarketSnapshot(
        quotes=await read_stats(redis, session),
        indices=await read_indices(redis, session),
        foreign=await read_foreign(redis, session),
        derivatives=await read_derivatives(redis, session),
    )
