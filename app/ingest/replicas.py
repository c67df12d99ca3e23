"""Acknowledged means replicated: a write counts once a replica confirms it (``WAIT``).

Replication is asynchronous: a master that dies after answering can take writes its
replica never got with it, and the promoted replica then lacks them. So where the
master of a key has replicas, the write and a ``WAIT 1 <timeout>`` go down the same
connection (WAIT covers that connection's writes) to the node that owns the key's slot;
fewer than one confirmation is :class:`NotReplicated` and the caller resends (the
per-writer batch numbers make a resend land once). A master without replicas (one
Redis, or a promoted replica whose old master has not come back) is not waited on:
nobody could confirm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.exceptions import ResponseError

from app import store

log = logging.getLogger("stock_tracker.ingest")

# How long what INFO says about a master's replicas is trusted.
KNOWN_FOR_S = 5.0


class NotReplicated(Exception):
    """No replica confirmed the write in time (or the key's slot moved meanwhile)."""


class Replicas:
    """Writes to a key's master, confirmed by a replica when the master has one."""

    def __init__(self, redis, wait_ms: int = 1000) -> None:
        self.redis = redis
        self.wait_ms = wait_ms
        self._known: dict[str, tuple[float, int]] = {}  # node -> (until, connected replicas)
        self._said: dict[str, int] = {}  # node -> the count last logged
        self.waits = 0

    async def write(self, key: str, queue: Callable) -> list:
        """Run the commands ``queue(pipe)`` adds (all on ``key``'s slot), then WAIT if needed."""
        # On a cluster, a client straight to the slot's master: the write and its WAIT
        # go down one connection to one node, in one round trip.
        client = store.for_slot(self.redis, key)
        wait = await self._replica_count(client) > 0
        node = _name(client)
        async with client.pipeline(transaction=False) as pipe:
            queue(pipe)
            if wait:
                pipe.execute_command("WAIT", 1, self.wait_ms)
            replies = await pipe.execute()
        if _name(client) != node:
            # The slot moved while we wrote (a failover): the count was the old master's.
            raise NotReplicated(f"slot of {key} moved during the write")
        if wait:
            self.waits += 1
            if int(replies[-1]) < 1:
                self._known.pop(node, None)  # maybe the replica is gone: ask again
                raise NotReplicated(f"no replica confirmed the write within {self.wait_ms} ms")
            replies = replies[:-1]
        return replies

    async def _replica_count(self, client) -> int:
        known = self._known.get(_name(client))
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1]
        try:
            info = await client.info("replication")
        except ResponseError:  # a store without INFO replication (the embedded fake)
            info = {}
        name = _name(client)  # known once a connection was made
        count = int(info.get("connected_slaves", 0) or 0)
        if self._said.get(name) != count:
            self._said[name] = count
            log.info("event=replicas node=%s count=%d wait=%s", name, count, "yes" if count else "no")
        self._known[name] = (now + KNOWN_FOR_S, count)
        return count


def _name(client) -> str:
    """The node a client's connections go to: a cluster slot's master, or the one Redis."""
    return getattr(client, "node_name", None) or "redis"
