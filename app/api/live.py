"""The /ws subscriptions of one node: the feeds, their throttle, the current session.

Clients asking for the same data share a topic; a feed (app.api.feeds) serves the topics
of one or two channels from one of this node's caches (app.api.entities,
app.api.trade_history). A change notice marks what it names; a feed that has a topic
wanting it flushes, throttled on the trailing edge: the first change after a quiet spell
at once, later ones at the interval's end. Each subscriber's connection merges what it is
offered with whatever still waits there. A new current session (or a lost pub/sub link)
gives every subscription a fresh snapshot. The seed's snapshot and the live board route
are joined from the same caches.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.api import entities
from app.api.feeds import Feed, HistoryFeed, RowFeed
from app.api.trade_history import TradeHistory
from app.api.ws_protocol import Topic
from app.contracts import Notice
from app.projections import read
from app.schemas import SessionRef

log = logging.getLogger("stock_tracker.live")
_JSON = msgspec.json.Encoder()
_STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class Live:
    """Every /ws subscription on this node."""

    def __init__(self, redis: Redis, throttle_ms: int, tape_length: int) -> None:
        self.redis = redis
        self.throttle = throttle_ms / 1000
        self.board = entities.board_cache()
        self.quotes = entities.quotes_cache()  # the seed's snapshot (not a /ws channel)
        self.indices = entities.indices_cache()
        self.foreign = entities.foreign_cache()
        self.derivatives = entities.derivatives_cache()
        self.history = TradeHistory(tape_length)
        self.feeds: dict[str, Feed] = {}
        for channel, cache in (
            ("board", self.board), ("indices", self.indices), ("foreign", self.foreign),
            ("derivatives", self.derivatives),
        ):
            self.feeds[channel] = RowFeed(self, channel, cache)
        self.feeds["candles"] = self.feeds["trades"] = HistoryFeed(self, self.history)
        self.caches = (self.board, self.quotes, self.indices, self.foreign, self.derivatives)
        self.session: SessionRef | None = None
        self.session_text = "null"
        self.known = False  # whether the current session has been looked up
        self.pushes = 0
        self.trusted = lambda: True  # the hub says whether pub/sub is up
        self._checking: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def unique_feeds(self) -> list[Feed]:
        return list(dict.fromkeys(self.feeds.values()))

    async def stop(self) -> None:
        tasks = [t for t in (self._checking, *self._tasks, *(f.scheduled for f in self.unique_feeds())) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, sub, topic: Topic) -> None:
        if not self.known:
            await self._set_session(await read.resolve_session(self.redis, None))
        elif self._checking is not None and not self._checking.done():
            # A change of session under way: the snapshot is of the session it finds.
            await asyncio.shield(self._checking)
        await self.feeds[topic.channel].add(sub, topic)

    def unsubscribe(self, sub, topic: Topic) -> None:
        self.feeds[topic.channel].remove(sub, topic)

    # -- notices ---------------------------------------------------------------------------

    def on_notice(self, notice: Notice) -> None:
        # Every cache notes the change (each checks the notice is of its session).
        self.quotes.mark(notice)
        wanted = [feed for feed in self.unique_feeds() if feed.mark(notice)]
        session = self.session
        if session is None or notice.date != session.date or notice.closed != session.closed:
            if self.known:
                self._check_session()
            return
        for feed in wanted:
            self._schedule(feed)

    def resync(self) -> None:
        """After pub/sub was away: start the caches over, every subscription a snapshot."""
        for cache in self.caches:
            cache.reset(None)
        self.history.reset(None)
        if self.known:
            self._check_session(force=True)

    def _check_session(self, force: bool = False) -> None:
        if self._checking is not None and not self._checking.done():
            if force:  # a lookup under way may predate the loss: run another after it
                self._checking.add_done_callback(lambda _: self._check_session(force=True))
            return
        self._checking = asyncio.create_task(self._recheck(force))

    async def _recheck(self, force: bool) -> None:
        try:
            ref = await read.resolve_session(self.redis, None)
        except _STORE_ERRORS as exc:
            log.warning("event=session_check_failed error=%s", type(exc).__name__)
            self._later(lambda: self._check_session(force))
            return
        if force or ref != self.session:
            await self._set_session(ref)
            for feed in self.unique_feeds():
                try:
                    await feed.resnapshot()
                except _STORE_ERRORS as exc:
                    log.warning("event=resnapshot_failed error=%s", type(exc).__name__)
                    self._later(lambda: self._check_session(True))
                    return

    async def _set_session(self, ref: SessionRef | None) -> None:
        # Under every feed's lock, so no flush mixes the two sessions.
        feeds = self.unique_feeds()
        for feed in feeds:
            await feed.lock.acquire()
        try:
            self.session = ref
            self.session_text = _JSON.encode(ref).decode()
            self.known = True
            for cache in self.caches:
                cache.reset(ref.date if ref else None)
            self.history.reset(ref.date if ref else None)
        finally:
            for feed in feeds:
                feed.lock.release()

    # -- the throttle ------------------------------------------------------------------------

    def _schedule(self, feed: Feed) -> None:
        """Trailing edge: flush now after a quiet spell, else once at the interval's end."""
        if feed.scheduled is not None:
            return
        delay = max(0.0, feed.last_flush + self.throttle - time.monotonic())
        feed.scheduled = asyncio.create_task(self._flush_after(feed, delay))

    async def _flush_after(self, feed: Feed, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
        finally:
            feed.scheduled = None  # notices during the flush schedule the next one
        feed.last_flush = time.monotonic()
        try:
            await feed.flush()
        except _STORE_ERRORS as exc:
            log.warning("event=flush_failed channels=%s error=%s", ",".join(feed.channels), type(exc).__name__)
            self._later(lambda: self._schedule(feed))

    def _later(self, then, delay: float = 0.5) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            then()

        self.spawn(run())

    def spawn(self, coro) -> None:
        """Run ``coro`` in the background; stop() cancels it."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the seed's snapshot, from the same caches --------------------------------------------

    async def market_text(self) -> str:
        """The seed's MarketSnapshot of the current session, re-encoding only what changed."""
        ref = await read.resolve_session(self.redis, None)
        if ref is None:
            return '{"quotes":{},"indices":{},"foreign":null,"derivatives":null}'
        parts = (self.quotes, self.indices, self.foreign, self.derivatives)
        if not self.trusted():
            for cache in parts:
                cache.reset(None)
        await asyncio.gather(*(c.refresh(self.redis, ref.date, None) for c in parts))
        q, i, f, d = parts
        return (
            f'{{"quotes":{q.render(q.names())},"indices":{i.render(i.names())},'
            f'"foreign":{f.render(())},"derivatives":{d.render(())}}}'
        )

    async def board_text(self, ref: SessionRef, names: list[str] | None, exchange: str | None) -> str:
        """``GET /api/market/board`` of the current session, from the board cache."""
        cache = self.board
        await cache.refresh(self.redis, ref.date, names)
        if names is None:
            names = cache.names()
            if exchange is not None:
                names = [n for n in names if cache.tags.get(n) == exchange]
        return f'{{"session":{_JSON.encode(ref).decode()},"rows":{cache.render(names)}}}'
