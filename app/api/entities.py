"""This node's copy of the current session's entities as encoded JSON, read again only
when a change notice names them.

One :class:`EntityCache` per shape (board rows, the seed's quotes, indices, the foreign
summary, the derivatives card). A notice marks the names it lists dirty, which costs a
set insert; only a reader that needs a dirty entity reads it, so changes nobody watches
cost nothing. Each entity is encoded once per change and kept as its JSON text, and a
whole state (the seed's snapshot, a board) is a join of those texts. Without pub/sub
notices may be lost, so a cache is only trusted while it is up (else it starts over).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
from redis.asyncio import Redis

from app import keys as K
from app.contracts import Notice
from app.projections import read, read_history
from app.projections.hashes import as_str

_JSON = msgspec.json.Encoder()
Reader = Callable[[Redis, str, "list[str] | None"], Awaitable[dict[str, Any]]]

OBJECT, SINGLE = "object", "single"  # data as {"NAME": {...}, ...} or as the one object


class EntityCache:
    """Encoded entities of one session, by name ("" for a once-per-session object)."""

    def __init__(
        self, kinds: Iterable[str], read_: Reader, style: str = OBJECT,
        tag: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.kinds = tuple(kinds)
        self._read = read_  # names None: every entity of the session
        self.style = style
        self._tag = tag
        self.date: str | None = None
        self.texts: dict[str, str | None] = {}  # name -> '"NAME":{...}' (or '{...}'), None: absent
        self.tags: dict[str, str | None] = {}  # e.g. a board row's exchange
        self.dirty: set[str] = set()
        self.unsent: set[str] = set()  # changed since the last take_unsent()
        self.complete = False  # every entity of the session is in texts
        self._lock = asyncio.Lock()
        self._generation = 0  # changes on reset: a read started before it is thrown away

    def reset(self, date: str | None) -> None:
        self._generation += 1
        self.date = date
        self.texts.clear()
        self.tags.clear()
        self.dirty.clear()
        self.unsent.clear()
        self.complete = False

    def mark(self, notice: Notice) -> set[str]:
        """Note what ``notice`` changed; returns those names (empty: nothing of ours)."""
        if notice.date != self.date:
            return set()
        if self.style == SINGLE:
            hit = {""} if any(k in notice.kinds for k in self.kinds) else set()
        elif any(k in notice.kinds and k not in notice.names for k in self.kinds):
            # A notice without names (an older projector's): anything of ours may have changed.
            hit = set(self.texts)
            self.complete = False
        else:
            hit = {n for k in self.kinds for n in notice.names.get(k, ())}
        self.dirty |= hit
        return hit

    async def refresh(self, redis: Redis, date: str, names: Iterable[str] | None = None) -> None:
        """Bring ``names`` (None: every entity) up to date for session ``date``."""
        names = list(names) if names is not None else None  # read again on a retry
        async with self._lock:
            # A reset during the read (pub/sub lost, a new session followed) throws its
            # result away: read again, or the caller would render what it never read.
            while not await self._refresh_once(redis, date, names):
                pass

    async def _refresh_once(self, redis: Redis, date: str, names: Iterable[str] | None) -> bool:
        """One read; False when a reset overtook it (its result is dropped)."""
        if date != self.date:
            self.reset(date)
        generation = self._generation
        if names is None and not self.complete:
            self.dirty.clear()  # what a notice marks during the read is read again
            got = await self._read(redis, date, None)
            if generation != self._generation:
                return False
            for name in [n for n in self.texts if n not in got]:
                self._set(name, None)
            for name, value in got.items():
                self._set(name, value)
            self.complete = True
            return True
        if names is None:
            want = list(self.dirty)
        else:
            texts, dirty = self.texts, self.dirty
            want = [n for n in names if n in dirty or n not in texts]
        if not want:
            return True
        self.dirty.difference_update(want)  # a notice during the read marks them again
        try:
            got = await self._read(redis, date, want)
        except BaseException:
            self.dirty.update(want)
            raise
        if generation != self._generation:
            return False
        for name in want:
            self._set(name, got.get(name))
        return True

    def _set(self, name: str, value: Any) -> None:
        if value is None:
            text = None
        elif self.style == SINGLE:
            text = _JSON.encode(value).decode()
        else:
            text = _JSON.encode(name).decode() + ":" + _JSON.encode(value).decode()
        known = name in self.texts
        if not known or self.texts[name] != text:
            # An entity loaded for the first time is news only to a reader of every entity:
            # no one has seen an older version of it.
            if known or self.complete:
                self.unsent.add(name)
            self.texts[name] = text
            if self._tag is not None:
                self.tags[name] = self._tag(value) if value is not None else None

    def take_unsent(self) -> set[str]:
        out, self.unsent = self.unsent, set()
        return out

    def names(self) -> list[str]:
        """Every present entity, sorted."""
        return sorted(n for n, t in self.texts.items() if t is not None)

    def render(self, names: Iterable[str]) -> str:
        """The data of ``names`` as JSON text (present ones only)."""
        texts = self.texts
        if self.style == SINGLE:
            return texts.get("") or "null"
        return "{" + ",".join(t for n in names if (t := texts.get(n)) is not None) + "}"

    def pieces(self, names: Iterable[str]) -> dict[str, str]:
        """name -> text of the present ones among ``names`` (what an update carries)."""
        texts = self.texts
        return {n: t for n in names if (t := texts.get(n)) is not None}


# -- readers: the current state of some (or all) entities of a session ------------------


async def _symbols(redis: Redis, date: str, *sets: str) -> list[str]:
    keys = K.SessionKeys(date)
    async with redis.pipeline(transaction=False) as pipe:
        for name in sets:
            pipe.smembers(keys.members(name))
        replies = await pipe.execute()
    return sorted({as_str(s) for reply in replies for s in reply})


async def read_board(redis: Redis, date: str, names: list[str] | None) -> dict[str, Any]:
    return await read_history.read_board(redis, date, names if names is not None else await _symbols(
        redis, date, "quote", "stats"
    ))


async def read_quotes(redis: Redis, date: str, names: list[str] | None) -> dict[str, Any]:
    return await read.read_stats(redis, date, names)


async def read_indices(redis: Redis, date: str, names: list[str] | None) -> dict[str, Any]:
    # A handful of indices: all of them, the cache keeps only what changed.
    return await read.read_indices(redis, date)


async def read_foreign(redis: Redis, date: str, names: list[str] | None) -> dict[str, Any]:
    return {"": await read.read_foreign(redis, date)}  # None (null) before the first R frame


async def read_derivatives(redis: Redis, date: str, names: list[str] | None) -> dict[str, Any]:
    return {"": await read.read_derivatives(redis, date)}


def board_cache() -> EntityCache:
    return EntityCache(("stats", "quote"), read_board, tag=lambda row: row.exchange)


def quotes_cache() -> EntityCache:
    return EntityCache(("stats",), read_quotes)


def indices_cache() -> EntityCache:
    return EntityCache(("index", "intraday"), read_indices)


def foreign_cache() -> EntityCache:
    return EntityCache(("foreign_summary", "foreign"), read_foreign, style=SINGLE)


def derivatives_cache() -> EntityCache:
    return EntityCache(("derivatives",), read_derivatives, style=SINGLE)
