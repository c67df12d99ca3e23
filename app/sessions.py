"""The known sessions: the ``st:sessions`` ZSET (date -> yyyymmdd, so it sorts by day).

A writer registers each session it appends to; retention and replay forget them. Which
session readers show is :func:`app.projections.read.current_session`.
"""

from __future__ import annotations

from redis.asyncio import Redis

from app import keys as K
from app.store import as_str


def register(redis: Redis, date: str):
    """Register ``date`` (idempotent). A command of its own: ``st:sessions`` is outside
    every session's slot, so it never shares a script or transaction with session keys."""
    return redis.zadd(K.SESSIONS, {date: K.date_score(date)})


async def session_dates(
    redis: Redis, newest_first: bool = False, count: int | None = None, before: str | None = None
) -> list[str]:
    """Known session dates, oldest first (or newest first); only those before ``before``."""
    high = K.date_score(before) - 1 if before else "+inf"
    if newest_first:
        raw = await redis.zrevrangebyscore(K.SESSIONS, high, "-inf", start=0 if count else None, num=count)
    else:
        raw = await redis.zrangebyscore(K.SESSIONS, "-inf", high, start=0 if count else None, num=count)
    return [as_str(d) for d in raw]


async def is_registered(redis: Redis, date: str) -> bool:
    return await redis.zscore(K.SESSIONS, date) is not None


async def forget(redis: Redis, date: str) -> None:
    await redis.zrem(K.SESSIONS, date)
