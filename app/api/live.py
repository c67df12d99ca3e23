"""The /ws subscriptions of one node: feeds, topics, throttles, the current session.

Clients asking for the same data share a topic; a feed serves the topics of one or two
channels from one of this node's caches (app.api.entities, app.api.trade_history). A
change notice marks what it names; a feed that has a topic wanting it flushes, throttled
on the trailing edge: it reads the changed entities once, then for each topic that
wants some of them encodes the update once and offers the same text to every
subscriber, whose connection merges it with whatever is still waiting there. A
snapshot is read under the same lock as flushes, so no update older than a snapshot can
follow it. A new current session (or a lost pub/sub link) gives every subscription a
fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import keys as K
from app.api import entities
from app.api.entities import EntityCache
from app.api.trade_history import TradeHistory
from app.api.ws_protocol import Topic
from app.contracts import Notice
from app.projections import read
from app.projections.hashes import comma_list
from app.schemas import SessionRef

log = logging.getLogger("stock_tracker.live")
_JSON = msgspec.json.Encoder()
_STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
OBJECT, LIST, SINGLE = "object", "list", "single"  # how a channel's data is shaped
STYLE = {
    "board": OBJECT, "indices": OBJECT, "candles": LIST, "trades": LIST,
    "foreign": SINGLE, "derivatives": SINGLE,
}


def render(style: str, pieces: dict) -> str:
    """An update's (or snapshot's) data from its pieces: the object, list or one object."""
    if style == SINGLE:
        return next(iter(pieces.values()), "null")
    if style == LIST:
        return "[" + ",".join(pieces[k] for k in sorted(pieces)) + "]"
    return "{" + ",".join(pieces.values()) + "}"


class TopicState:
    """The subscribers of one topic, and which names it selects (None: all, by group)."""

    __slots__ = ("topic", "subs", "names", "group")

    def __init__(self, topic: Topic, names: frozenset[str] | None, group: str | None) -> None:
        self.topic = topic
        self.subs: set = set()
        self.names = names
        self.group = group  # board: "*" or an exchange, with names None


class Feed:
    """Topics of some channels, served from one cache; see the module docstring."""

    def __init__(self, live: "Live", channels: Iterable[str]) -> None:
        self.live = live
        self.channels = tuple(channels)
        self.topics: dict[Topic, TopicState] = {}
        self.lock = asyncio.Lock()
        self.last_flush = 0.0
        self.scheduled: asyncio.Task | None = None

    async def add(self, sub, topic: Topic) -> None:
        """Register ``sub`` and give it a snapshot, both under the flush lock."""
        live = self.live
        async with self.lock:
            state = self.topics.get(topic)
            new = state is None
            if new:
                state = await self._topic(topic)
            try:
                data = await self._data(state)
            except BaseException:
                if new:
                    self._dropped(state)
                raise
            if not self.topics:
                self._idle()
            sub.set_snapshot(data, live.session_text)
            self.topics[topic] = state
            state.subs.add(sub)

    async def _data(self, state: TopicState) -> str:
        if self.live.session is None:  # no session yet: an empty snapshot
            return render(STYLE[state.topic.channel], {})
        return await self._snapshot(state)

    def remove(self, sub, topic: Topic) -> None:
        state = self.topics.get(topic)
        if state is None:
            return
        state.subs.discard(sub)
        if not state.subs:
            del self.topics[topic]
            self._dropped(state)

    async def resnapshot(self) -> None:
        """Every subscriber a fresh snapshot (the session changed, or notices were lost)."""
        async with self.lock:
            for state in list(self.topics.values()):
                data = await self._data(state)
                for sub in state.subs:
                    sub.set_snapshot(data, self.live.session_text)

    async def flush(self) -> None:
        live = self.live
        if live.session is None or not self.topics:
            return
        async with self.lock:
            for state, pieces in await self._changes():
                if pieces and state.subs:
                    data = render(STYLE[state.topic.channel], pieces)
                    live.pushes += 1
                    for sub in state.subs:
                        sub.offer(pieces, data, live.session_text)

    # -- per feed ------------------------------------------------------------------------

    def mark(self, notice: Notice) -> bool:
        """Note what ``notice`` changed; whether a topic of ours may want it."""
        raise NotImplementedError

    async def _topic(self, topic: Topic) -> TopicState:
        return TopicState(topic, None, None)

    def _dropped(self, state: TopicState) -> None:
        pass

    def _idle(self) -> None:
        """The first topic is being added: what changed before it is no one's news."""

    async def _snapshot(self, state: TopicState) -> str:
        raise NotImplementedError

    async def _changes(self) -> list[tuple[TopicState, dict]]:
        raise NotImplementedError


class RowFeed(Feed):
    """board / indices / foreign / derivatives: whole objects by name from an EntityCache."""

    def __init__(self, live: "Live", channel: str, cache: EntityCache) -> None:
        super().__init__(live, (channel,))
        self.cache = cache
        # name -> the topics that list it: a flush finds each changed name's topics, never
        # walks every topic for every name.
        self.index: dict[str, set[TopicState]] = {}
        self.groups: set[TopicState] = set()  # topics of every name (a group, or a channel without names)

    def mark(self, notice: Notice) -> bool:
        hit = self.cache.mark(notice)
        return bool(hit) and bool(self.topics) and (bool(self.groups) or any(n in self.index for n in hit))

    async def _topic(self, topic: Topic) -> TopicState:
        spec = topic.spec
        if topic.channel != "board":
            state = TopicState(topic, None, "*")
        elif spec == "VN30":
            raw = await self.live.redis.hget(K.VN30_COMPONENTS, "symbols")
            state = TopicState(topic, frozenset(comma_list(raw)), None)
        elif isinstance(spec, str):
            state = TopicState(topic, None, spec)
        else:
            state = TopicState(topic, frozenset(spec), None)
        if state.names is None:
            self.groups.add(state)
        else:
            for name in state.names:
                self.index.setdefault(name, set()).add(state)
        return state

    def _dropped(self, state: TopicState) -> None:
        self.groups.discard(state)
        for name in state.names or ():
            topics = self.index.get(name)
            if topics is not None:
                topics.discard(state)
                if not topics:
                    del self.index[name]

    def _select(self, state: TopicState, names: Iterable[str]) -> list[str]:
        if state.names is not None:
            return sorted(n for n in names if n in state.names)
        tags = self.cache.tags
        if state.group in ("*", None):
            return sorted(names)
        return sorted(n for n in names if tags.get(n) == state.group)

    async def _refresh(self, names: Iterable[str] | None) -> None:
        live = self.live
        if not live.trusted():
            self.cache.reset(None)
        await self.cache.refresh(live.redis, live.session.date, names)

    def _idle(self) -> None:
        self.cache.take_unsent()

    async def _snapshot(self, state: TopicState) -> str:
        await self._refresh(state.names)
        cache = self.cache
        names = cache.names() if state.names is None else state.names
        return render(STYLE[state.topic.channel], cache.pieces(self._select(state, names)))

    async def _changes(self) -> list[tuple[TopicState, dict]]:
        await self._refresh(None if self.groups else list(self.index))
        changed = self.cache.take_unsent()
        if not changed:
            return []
        per: dict[TopicState, list[str]] = {state: self._select(state, changed) for state in self.groups}
        index = self.index
        for name in changed:
            for state in index.get(name, ()):
                per.setdefault(state, []).append(name)
        pieces = self.cache.pieces
        return [(state, pieces(sorted(names))) for state, names in per.items()]


class HistoryFeed(Feed):
    """candles and trades of single symbols, from the followed symbols' tapes."""

    def __init__(self, live: "Live", history: TradeHistory) -> None:
        super().__init__(live, ("candles", "trades"))
        self.history = history

    def mark(self, notice: Notice) -> bool:
        return self.history.mark(notice) and bool(self.topics)

    def _dropped(self, state: TopicState) -> None:
        symbol = state.topic.spec[0]
        others = [t for t in self.topics if t.spec[0] == symbol]
        if not others:
            self.history.forget(symbol)
        elif all(t.channel != "candles" for t in others):
            track = self.history.tracks.get(symbol)
            if track is not None:
                track.bars = None

    def _keep(self, symbol: str, also: Topic) -> int:
        limits = [t.spec[1] for t in (*self.topics, also) if t.channel == "trades" and t.spec[0] == symbol]
        return max(limits, default=0)

    async def _snapshot(self, state: TopicState) -> str:
        live, topic = self.live, state.topic
        symbol, arg = topic.spec
        if not live.trusted():
            self.history.reset(None)
        track = await self.history.follow(
            live.redis, live.session.date, symbol, self._keep(symbol, topic), topic.channel == "candles"
        )
        if topic.channel == "candles":
            return render(LIST, self.history.candles(track, arg))
        return render(LIST, self.history.trades(track, arg))

    async def _changes(self) -> list[tuple[TopicState, dict]]:
        changes = await self.history.refresh(self.live.redis, self.live.session.date)
        out = []
        for state in self.topics.values():
            symbol, arg = state.topic.spec
            change = changes.get(symbol)
            if change is None:
                continue
            track = self.history.tracks[symbol]
            if state.topic.channel == "candles":
                if change.minutes:
                    out.append((state, self.history.candles(track, arg, change.minutes)))
            elif change.trades:
                out.append((state, dict(change.trades)))
        return out


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

        task = asyncio.create_task(run())
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
