"""This node's copy of the recent trades and 1-minute bars of the symbols its clients
follow (the /ws candles and trades channels).

A symbol's trades are numbered by its session stats' trade counter, so after a notice
names the symbol the node reads the counter, then only the new tape entries, then only
the minutes those trades fell in: a few fields per change, never the day's history.
The first subscriber of a symbol loads it in one MULTI, so the counter, the tape and the
bars agree with each other.
"""

from __future__ import annotations

import asyncio
from collections import deque

import msgspec
from redis.asyncio import Redis

from app import keys as K
from app.clock import iso_time
from app.contracts import Notice
from app.futures import is_vn30_future
from app.projections import money
from app.projections.kinds import CANDLES, TAPE
from app.projections.read_history import INTERVALS, merge_candles
from app.schemas import Candle, TapeTrade

_JSON = msgspec.json.Encoder()


class Track:
    """One followed symbol: trades seen and sent, and (if candles are wanted) its bars."""

    __slots__ = ("count", "offered", "trades", "bars", "minutes", "keep", "futures")

    def __init__(self, futures: bool) -> None:
        self.count = 0  # the stats' trade counter as last read
        self.offered = 0  # the newest trade number handed to subscriptions
        self.trades: deque[tuple[int, str]] = deque()  # (number, JSON), newest last
        self.bars: dict[int, list] | None = None  # minute -> 1-minute bar, when wanted
        self.minutes: set[int] = set()  # bars changed since last handed out
        self.keep = 0
        self.futures = futures


class Changes(msgspec.Struct):
    """What changed for one symbol since the last hand-out."""

    trades: list[tuple[int, str]]  # new trades, oldest first
    minutes: set[int]  # 1-minute bars that changed


class TradeHistory:
    """Followed symbols of the current session."""

    def __init__(self, tape_length: int) -> None:
        self.tape_length = tape_length
        self.date: str | None = None
        self.tracks: dict[str, Track] = {}
        self.dirty: set[str] = set()
        self._lock = asyncio.Lock()

    def reset(self, date: str | None) -> None:
        self.date = date
        self.tracks.clear()
        self.dirty.clear()

    def mark(self, notice: Notice) -> bool:
        if notice.date != self.date:
            return False
        if "tape" in notice.kinds and "tape" not in notice.names:  # an older projector's notice
            hit = list(self.tracks)
        else:
            hit = [n for n in notice.names.get("tape", ()) if n in self.tracks]
        self.dirty.update(hit)
        return bool(hit)

    def forget(self, symbol: str) -> None:
        self.tracks.pop(symbol, None)
        self.dirty.discard(symbol)

    async def follow(self, redis: Redis, date: str, symbol: str, keep: int, bars: bool) -> Track:
        """The symbol's track, loaded on first use (bars too once someone wants them)."""
        async with self._lock:
            if date != self.date:
                self.reset(date)
            track = self.tracks.get(symbol)
            if track is None or (bars and track.bars is None) or keep > track.keep:
                track = await self._load(redis, date, symbol, max(keep, track.keep if track else 0), bars, track)
                self.tracks[symbol] = track
            return track

    async def _load(self, redis: Redis, date: str, symbol: str, keep: int, bars: bool, old: Track | None) -> Track:
        keys = K.SessionKeys(date)
        bars = bars or (old is not None and old.bars is not None)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.entity("stats", symbol), "trades")
            pipe.hgetall(keys.entity("tape", symbol))
            if bars:
                pipe.hgetall(keys.entity("candles", symbol))
            replies = await pipe.execute()
        track = Track(is_vn30_future(symbol))
        track.keep = keep
        track.count = int(replies[0] or 0)
        tape = TAPE.decode({"tape": replies[1]}).trades
        track.trades.extend((e[0], self._trade(track, e)) for e in list(tape)[-keep:])
        if old is not None:
            # What was handed out stays handed out: the next hand-out sends the rest
            # (the new tape holds them all, up to the counter read with it).
            track.offered = old.offered
            track.minutes = old.minutes
        else:
            track.offered = track.count
        if bars:
            track.bars = CANDLES.decode({"candles": replies[2]}).points
        return track

    async def refresh(self, redis: Redis, date: str) -> dict[str, Changes]:
        """Read what the dirty followed symbols gained; hand out every pending change."""
        async with self._lock:
            if date != self.date:
                return {}
            names = [n for n in self.dirty if n in self.tracks]
            self.dirty.clear()
            try:
                await self._read_new(redis, date, names)
            except BaseException:
                self.dirty.update(names)
                raise
            out: dict[str, Changes] = {}
            for name, track in self.tracks.items():
                new = [t for t in track.trades if t[0] > track.offered] if track.count > track.offered else []
                if new or track.minutes:
                    out[name] = Changes(new, track.minutes)
                    track.minutes = set()
                    track.offered = max(track.offered, track.count)
            return out

    async def _read_new(self, redis: Redis, date: str, names: list[str]) -> None:
        if not names:
            return
        keys = K.SessionKeys(date)
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(keys.entity("stats", name), "trades")
            counts = [int(c or 0) for c in await pipe.execute()]
        # Tracks may be forgotten (unsubscribed) or replaced (a new session) while we wait
        # for Redis: each answer is applied only to the track it was asked for.
        tracks = {name: self.tracks[name] for name in names if name in self.tracks}
        grown = [(name, count, tracks[name].count) for name, count in zip(names, counts)
                 if name in tracks and count > tracks[name].count]
        if not grown:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for name, count, seen in grown:
                first = max(seen + 1, count - self.tape_length + 1)
                pipe.hmget(keys.entity("tape", name), [str(n) for n in range(first, count + 1)])
            tapes = await pipe.execute()
        reread: list[tuple[Track, str, list[int] | None]] = []  # bars to read: minutes, or None: all
        for (name, count, seen), values in zip(grown, tapes):
            track = tracks[name]
            if self.tracks.get(name) is not track or track.count != seen:
                continue
            first = max(seen + 1, count - self.tape_length + 1)
            lost = first > track.count + 1  # more new trades than the tape keeps
            minutes: set[int] = set()
            for n, raw in zip(range(first, count + 1), values):
                if raw is None:
                    continue  # a trade without a time: it has no tape entry and no bar
                entry = TAPE.decode({"tape": {str(n): raw}}).trades[0]
                track.trades.append((n, self._trade(track, entry)))
                minutes.add(entry[1] - entry[1] % 60)
            while len(track.trades) > track.keep:
                track.trades.popleft()
            track.count = count
            if track.bars is not None:
                reread.append((track, name, None if lost else sorted(minutes)))
        await self._read_bars(redis, keys, reread)

    async def _read_bars(self, redis: Redis, keys: K.SessionKeys, reread: list[tuple[Track, str, list[int] | None]]) -> None:
        reread = [(t, n, m) for t, n, m in reread if m is None or m]
        if not reread:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for _, name, minutes in reread:
                key = keys.entity("candles", name)
                if minutes is None:
                    pipe.hgetall(key)
                else:
                    pipe.hmget(key, [f"{m // 3600:02d}:{m % 3600 // 60:02d}" for m in minutes])
            replies = await pipe.execute()
        for (track, name, minutes), reply in zip(reread, replies):
            if self.tracks.get(name) is not track or track.bars is None:
                continue
            if minutes is None:
                fields = reply
            else:
                fields = {f"{m // 3600:02d}:{m % 3600 // 60:02d}": v for m, v in zip(minutes, reply) if v is not None}
            points = CANDLES.decode({"candles": fields}).points
            track.bars.update(points)
            track.minutes.update(points)

    def _trade(self, track: Track, entry: tuple) -> str:
        _, t, price, volume, side, ssi_side = entry
        return _JSON.encode(TapeTrade(
            time=iso_time(self.date, t), price=money.price(price, track.futures), volume=volume,
            side=side, ssi_side=ssi_side,
        )).decode()

    # -- the shapes served --------------------------------------------------------------

    def candles(self, track: Track, interval: str, minutes: set[int] | None = None) -> dict[int, str]:
        """Candles by start time: all of them, or those the changed ``minutes`` fall in."""
        seconds = INTERVALS[interval]
        bars = track.bars or {}
        if minutes is not None:
            starts = {m - m % seconds for m in minutes}
            bars = {m: b for m, b in bars.items() if m - m % seconds in starts}
        return {start: self._candle(track, start, b) for start, b in merge_candles(bars, seconds)}

    def _candle(self, track: Track, start: int, b: list) -> str:
        o, h, low, c = (money.price(p, track.futures) for p in b[:4])
        return _JSON.encode(Candle(
            time=iso_time(self.date, start), open=o, high=h, low=low, close=c, volume=b[4], value=b[5],
            buy_volume=b[6], sell_volume=b[7], neutral_volume=b[8],
        )).decode()

    @staticmethod
    def trades(track: Track, limit: int) -> dict[int, str]:
        """The newest ``limit`` trades already handed out, oldest first (the rest follow)."""
        sent = [t for t in track.trades if t[0] <= track.offered]
        return dict(sent[-limit:])
