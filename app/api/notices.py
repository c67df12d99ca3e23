"""An API node's subscriptions: the feed status, and the current session's notices.

Projectors publish each session's change notices on its own channel ``st:{DATE}:notify``:
with SPUBLISH on a cluster (a sharded channel lives on the node of its slot, the
session's own, instead of being copied to every node) and PUBLISH on one Redis. The
node subscribes to the current session's channel (SSUBSCRIBE or SUBSCRIBE to match)
and moves its subscription when the current session changes. Feed status stays one
plain channel (``st:feed:status``): rare, and every node wants it.

Messages from every connection land in one queue; a reader that fails (its node went
away, or Redis unsubscribed us when the slot moved) fails :meth:`Subscription.get`,
and the caller starts over with a new subscription.
"""

from __future__ import annotations

import asyncio
import contextlib

from app import keys as K
from app.store import is_cluster


class SubscriptionLost(ConnectionError):
    """Redis dropped a subscription we still want (its slot moved to another node)."""


class Subscription:
    """Feed status plus one session's notices, read through :meth:`get`."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self.sharded = is_cluster(redis)
        self.session: str | None = None
        self._pubsub = redis.pubsub()
        self._queue: asyncio.Queue = asyncio.Queue(10_000)
        self._readers: list[asyncio.Task] = []

    @property
    def channel(self) -> str | None:
        """The notice channel followed now (None: no current session yet)."""
        return K.SessionKeys(self.session).notify if self.session else None

    async def open(self, session: str | None) -> None:
        """Subscribe to the feed status and ``session``'s notices; start reading."""
        await self._pubsub.subscribe(K.FEED_STATUS_CHANNEL)
        await self.follow(session)
        self._readers.append(asyncio.create_task(self._read(self._next_plain)))
        if self.sharded:
            self._readers.append(asyncio.create_task(self._read(self._next_sharded)))

    async def follow(self, session: str | None) -> bool:
        """Move the notice subscription to ``session``; True when it changed.

        The new channel is subscribed before the old one is left, so nothing
        published on either in between is missed.
        """
        if session == self.session:
            return False
        old = self.channel
        self.session = session
        if self.channel is not None:
            await (self._pubsub.ssubscribe if self.sharded else self._pubsub.subscribe)(self.channel)
        if old is not None:
            await (self._pubsub.sunsubscribe if self.sharded else self._pubsub.unsubscribe)(old)
        return True

    def is_notice(self, channel: str) -> bool:
        return channel.startswith(K.PREFIX + "{") and channel.endswith("}:notify")

    async def get(self, timeout: float, wake: asyncio.Event | None = None) -> dict | None:
        """The next message (``channel``, ``data``), or None after ``timeout`` seconds
        (or once ``wake`` is set)."""
        self._raise_if_stopped()
        if not self._queue.empty():
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        waits = [getter, *self._readers]
        woken = asyncio.ensure_future(wake.wait()) if wake is not None else None
        if woken is not None:
            waits.append(woken)
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if woken is not None:
                woken.cancel()
        if getter.done():
            return getter.result()
        getter.cancel()
        self._raise_if_stopped()
        return None

    def _raise_if_stopped(self) -> None:
        for reader in self._readers:
            if reader.done():
                reader.result()  # raises what stopped it
                raise SubscriptionLost("pub/sub reader stopped")

    async def _read(self, next_message) -> None:
        while True:
            message = await next_message()
            if message is not None:
                await self._queue.put(message)

    async def _next_plain(self) -> dict | None:
        # A timeout keeps get_message from busy-looping (timeout=0 spins).
        message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
        return self._checked(message, "unsubscribe")

    async def _next_sharded(self) -> dict | None:
        if not self._pubsub.node_pubsub_mapping:
            await asyncio.sleep(1.0)  # nothing to read yet: it would return at once
            return None
        message = await self._pubsub.get_sharded_message(ignore_subscribe_messages=False, timeout=1.0)
        return self._checked(message, "sunsubscribe")

    def _checked(self, message: dict | None, unsubscribe: str) -> dict | None:
        if message is None:
            return None
        kind = _text(message.get("type"))
        if kind == unsubscribe and _text(message.get("channel")) == self.channel:
            # Not ours: Redis unsubscribes a shard channel whose slot moved away.
            raise SubscriptionLost(f"unsubscribed from {self.channel} by the server")
        if kind in ("message", "smessage"):
            return {"channel": _text(message.get("channel")), "data": message.get("data")}
        return None

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")
