"""The /ws feeds: the topics of one or two channels, served from one of the node's caches.

A topic is what every client asking for the same data shares. A feed's flush (once per
throttle interval, see app.api.live) reads the changed entities once, then for each topic
that wants some of them encodes the update once and offers the same text to every
subscriber (as one ws_protocol.Data: deflate clients share its compressed form too).
Snapshots are read under the flush lock, so no update older than a snapshot
can follow it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from app import keys as K
from app.api.entities import EntityCache
from app.api.trade_history import TradeHistory
from app.api.ws_protocol import SNAPSHOT_LEVEL, Data, Topic
from app.contracts import Notice
from app.projections.hashes import comma_list

if TYPE_CHECKING:
    from app.api.live import Live

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
            sub.set_snapshot(Data(data, SNAPSHOT_LEVEL), live.session_text)
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
        if state.subs:
            return
        if self.lock.locked():
            # A snapshot or flush under way may be adding a subscriber to this topic, or
            # to another of its symbol: the topic goes once it is done, if still empty.
            self.live.spawn(self._drop_when_free(topic))
        else:
            self._drop(topic)

    async def _drop_when_free(self, topic: Topic) -> None:
        async with self.lock:
            self._drop(topic)

    def _drop(self, topic: Topic) -> None:
        state = self.topics.get(topic)
        if state is not None and not state.subs:
            del self.topics[topic]
            self._dropped(state)

    async def resnapshot(self) -> None:
        """Every subscriber a fresh snapshot (the session changed, or notices were lost)."""
        async with self.lock:
            for state in list(self.topics.values()):
                data = Data(await self._data(state), SNAPSHOT_LEVEL)  # one for every subscriber
                for sub in state.subs:
                    sub.set_snapshot(data, self.live.session_text)

    async def flush(self) -> None:
        live = self.live
        if live.session is None or not self.topics:
            return
        async with self.lock:
            for state, pieces in await self._changes():
                if pieces and state.subs:
                    data = Data(render(STYLE[state.topic.channel], pieces))  # compressed once
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
