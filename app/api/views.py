"""What each WebSocket channel shows, as JSON text (encoded once per push)."""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis

from app.projections import read
from app.schemas import ForeignSummary

_JSON = msgspec.json.Encoder()


async def foreign_summary(redis: Redis, session: str | None) -> ForeignSummary:
    """The session's foreign summary; all zeros before the first R frame."""
    summary = await read.read_foreign(redis, session) if session else None
    return summary or ForeignSummary()


async def channel_state(redis: Redis, channel: str, live=None) -> str:
    """The current state of a WebSocket channel (the seed's payloads); the snapshot from
    ``live``'s caches (only what changed is read and encoded again) when given."""
    if channel == "market":
        if live is not None:
            return await live.market_text()
        return _JSON.encode(await read.market_snapshot(redis)).decode()
    ref = await read.resolve_session(redis, None)
    session = ref.date if ref else None
    if channel == "foreign":
        return _JSON.encode(await foreign_summary(redis, session)).decode()
    if channel == "index":
        return _JSON.encode(await read.read_indices(redis, session) if session else {}).decode()
    raise KeyError(channel)
