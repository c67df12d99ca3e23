"""Responses of closed sessions: they never change, so they are kept without expiry."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

import msgspec

from app.schemas import SessionRef

_JSON = msgspec.json.Encoder()


class ClosedSessionCache:
    """Encoded responses by (route, its parameters, session date); LRU-bounded in memory."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self.hits = 0

    def cached(self, key: tuple, date: str | None) -> bytes | None:
        """The body kept for ``key`` of the closed session ``date``, if any: a closed
        session never reopens, so a hit needs no look at Redis."""
        if date is None:
            return None
        body = self._entries.get((*key, date))
        if body is not None:
            self.hits += 1
            self._entries.move_to_end((*key, date))
        return body

    async def get(self, key: tuple, session: SessionRef | None, build: Callable[[], Awaitable[object]]) -> bytes:
        """The JSON of ``build()``, cached when ``session`` is closed (final)."""
        if session is None or not session.closed:
            return _JSON.encode(await build())
        full = (*key, session.date)
        body = self._entries.get(full)
        if body is not None:
            self.hits += 1
            self._entries.move_to_end(full)
            return body
        body = self._entries[full] = _JSON.encode(await build())
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return body
