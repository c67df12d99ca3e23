"""A client on the master of one cluster slot: a session's keys without the cluster client's cost.

A session's keys share one hash tag, so one master serves them all. For every command
redis-py's cluster client computes the slot of each key (an apply script names hundreds),
asks a server which keys an XREADGROUP names (``COMMAND GETKEYS``, a round trip to some
node), and runs a pipeline through tasks of its own; a plain client on that master does
none of it, and pipelines a script with the ``WAIT`` after it on one connection.

It follows failovers by itself: a connection made after any failure asks the cluster for
the slot's master again (the slot map refreshed first), and a reply saying the node no
longer serves the slot (MOVED, ASK, CLUSTERDOWN, TRYAGAIN, MASTERDOWN) still reaches the
caller, as an outage it retries, but drops the connection, so the retry goes to the new
master. Only keys of that one slot may go through it: any other key answers MOVED.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, TryAgainError
from redis.asyncio.retry import Retry  # the asyncio one: a sync Retry is converted with a warning

from app.store import RedisClient, _identity

# Replies that mean "ask the cluster where the slot is now" (MovedError is an AskError,
# MasterDownError a ClusterDownError).
MOVED_AWAY: tuple[type[Exception], ...] = (AskError, ClusterDownError, TryAgainError)


class SlotMaster:
    """Where the master of one slot is, as the cluster client says (its map refreshed
    before the first look after a failure)."""

    def __init__(self, cluster: RedisCluster, key: str) -> None:
        self.cluster = cluster
        self.key = key
        self.stale = False
        self.name = ""  # host:port of the master last connected to

    async def address(self) -> tuple[str, int]:
        if self.stale:
            # A connection failed or was told the slot moved: the map may name a master
            # that died or was demoted.
            await self.cluster.nodes_manager.initialize()
            self.stale = False
        node = self.cluster.get_node_from_key(self.key)
        self.name = node.name
        return node.host, node.port


class SlotConnection(Connection):
    """A connection to whichever node serves the slot when it connects."""

    def __init__(self, *, slot_master: SlotMaster, **kwargs) -> None:
        super().__init__(**kwargs)
        self.slot_master = slot_master

    async def _connect(self) -> None:
        self.host, self.port = await self.slot_master.address()
        try:
            await super()._connect()
        except BaseException:
            # A failed connect is not always followed by a disconnect: the next looks again.
            self.slot_master.stale = True
            raise

    async def read_response(self, *args, **kwargs):
        try:
            return await super().read_response(*args, **kwargs)
        except MOVED_AWAY:
            # Dropped when it goes back to the pool (the rest of a pipeline's replies
            # are still read first); the next connection asks the cluster.
            self.slot_master.stale = True
            self.mark_for_reconnect()
            raise

    async def disconnect(self, *args, **kwargs) -> None:
        # After an error (or a close): the next connection looks the master up afresh.
        self.slot_master.stale = True
        await super().disconnect(*args, **kwargs)


def slot_pool(cluster: RedisCluster, url: str, key: str, max_connections: int) -> BlockingConnectionPool:
    """A pool of :class:`SlotConnection` to the master of ``key``'s slot, credentials from ``url``.

    Few, quick retries inside the client, as the cluster client's: waiting out a
    failover is the caller's choice."""
    return BlockingConnectionPool.from_url(
        url, connection_class=SlotConnection, slot_master=SlotMaster(cluster, key),
        max_connections=max_connections, timeout=10, health_check_interval=30, decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
    )


class SlotClient(RedisClient):
    """A :class:`RedisClient` for one cluster slot's keys, on its master's connections."""

    def __init__(self, cluster: RedisCluster, url: str, key: str, max_connections: int) -> None:
        self.url, self.max_connections = url, max_connections
        self.slot = key_slot(key.encode())
        self.pool = slot_pool(cluster, url, key, max_connections)
        self.client = Redis(connection_pool=self.pool)
        self.cluster = self.detected = True
        self._raw, self._slots = {}, {}

    @property
    def node_name(self) -> str:
        """host:port of the master its connections last went to."""
        return self.pool.connection_kwargs["slot_master"].name

    async def detect(self) -> bool:
        return True

    def for_slot(self, key: str) -> "RedisClient":
        if key_slot(key.encode()) != self.slot:
            raise ValueError(f"{key} is not in slot {self.slot}")
        return self

    def raw_replies(self, command: str) -> Redis:
        raw = self._raw.get(command)
        if raw is None:
            raw = self._raw[command] = Redis(connection_pool=self.pool)
            raw.set_response_callback(command, _identity)
        return raw

    async def aclose(self) -> None:
        self._raw.clear()
        await self.pool.disconnect()
