"""A throw-away Redis Cluster on loopback: masters with one replica each, temp dirs.

Runs the same ``redis-server`` binary as the single private server
(:func:`harness.redis_binary.redis_server_binary`). Slots are assigned and replicas
attached with ``redis-cli --cluster create`` when a ``redis-cli`` sits beside the
binary (or on the PATH); otherwise with CLUSTER ADDSLOTSRANGE / MEET / REPLICATE.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from app.local_redis import stop_process

SLOTS = 16384
BUS_OFFSET = 10000  # each node also listens on port + 10000 (the cluster bus)


def free_cluster_port(taken: set[int] = frozenset()) -> int:
    """A loopback port free for a node and for its bus port (both below 65536), clashing
    with none of ``taken`` (the ports and bus ports of nodes picked but not started yet:
    nothing listens on them, so a second pick could land on one)."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        if port in taken or port + BUS_OFFSET in taken:
            continue
        if _free(port) and _free(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ClusterNode:
    """One redis-server of the cluster."""

    def __init__(self, binary: str, root: str, node_timeout_ms: int, taken: set[int] = frozenset()) -> None:
        self.binary = binary
        self.port = free_cluster_port(taken)
        self.dir = os.path.join(root, str(self.port))
        os.makedirs(self.dir)
        self.node_timeout_ms = node_timeout_ms
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--save", "", "--appendonly", "no",
            # Without it a replica that lost its master long ago refuses to take over.
            "--cluster-replica-validity-factor", "0",
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def client(self, timeout: float = 1.0) -> SyncRedis:
        return SyncRedis(host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node dies as a crashed host would, nothing flushed."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc, 5)


class private_redis_cluster:
    """``masters`` masters with ``replicas`` replicas each, on free loopback ports."""

    def __init__(self, binary: str, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> None:
        self.binary = binary
        self.node_timeout_ms = node_timeout_ms
        self.root = tempfile.mkdtemp(prefix="stock-tracker-cluster-")
        self.masters_n, self.replicas_n = masters, replicas
        self.nodes: list[ClusterNode] = []
        taken: set[int] = set()
        for _ in range(masters * (1 + replicas)):
            node = ClusterNode(binary, self.root, node_timeout_ms, taken)
            taken |= {node.port, node.port + BUS_OFFSET}
            self.nodes.append(node)

    @property
    def url(self) -> str:
        """A URL naming one node (any node will do: clients discover the rest)."""
        live = [n for n in self.nodes if n.alive()]
        return (live or self.nodes)[0].url

    def start(self) -> str:
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                self._until(lambda n=node: n.client().ping(), f"node {node.port} did not answer")
            cli = self._redis_cli()
            if cli:
                self._create_with_cli(cli)
            else:
                self._create_by_hand()
            self.wait_ok()
            return self.url
        except BaseException:
            self.cleanup()
            raise

    def _redis_cli(self) -> str | None:
        beside = os.path.join(os.path.dirname(os.path.abspath(self.binary)), "redis-cli")
        if os.access(beside, os.X_OK):
            return beside
        return shutil.which("redis-cli")

    def _create_with_cli(self, cli: str) -> None:
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas_n), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )

    def _create_by_hand(self) -> None:
        masters = self.nodes[: self.masters_n]
        per = SLOTS // self.masters_n
        for i, node in enumerate(masters):
            last = SLOTS - 1 if i == self.masters_n - 1 else (i + 1) * per - 1
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
        first = self.nodes[0].client()
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        ids = {n.port: n.client().execute_command("CLUSTER", "MYID").decode() for n in masters}
        for i, node in enumerate(self.nodes[self.masters_n:]):
            master = masters[i % self.masters_n]
            # A replica can only follow a master it already knows of.
            self._until(lambda n=node, m=master: _knows(n, ids[m.port]), "cluster nodes did not meet")
            node.client().execute_command("CLUSTER", "REPLICATE", ids[master.port])

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok and every live replica is in sync."""
        def ok() -> bool:
            for node in self.nodes:
                if not node.alive():
                    continue
                info = node.client().execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info:
                    return False
                replication = node.client().info("replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False
            return True

        self._until(ok, "cluster did not reach cluster_state:ok", timeout)

    def master_of(self, key: str) -> ClusterNode:
        """The node that serves ``key``'s slot now (asked of a live node)."""
        live = next(n for n in self.nodes if n.alive())
        slot = live.client().execute_command("CLUSTER", "KEYSLOT", key)
        for start, end, master, *_ in live.client().execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                port = master[1]
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no master serves slot {slot}")

    def wait_promoted(self, key: str, old: ClusterNode, timeout: float = 30.0) -> ClusterNode:
        """Until a replica has taken over ``key``'s slot from the dead ``old`` master."""
        self._until(lambda: self.master_of(key) is not old, f"no replica took over from {old.port}", timeout)
        self.wait_ok(timeout)
        return self.master_of(key)

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        out = []
        for node in self.nodes:
            if node is master or not node.alive():
                continue
            info = node.client().info("replication")
            if info.get("role") == "slave" and info.get("master_port") == master.port:
                out.append(node)
        return out

    def flushall(self) -> None:
        for node in self.nodes:
            if node.alive() and node.client().info("replication").get("role") == "master":
                node.client().flushall()

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again on its port; it rejoins (as a replica of its successor)."""
        node.start()
        self._until(lambda: node.client().ping(), f"node {node.port} did not come back")

    def _until(self, check, message: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(message)
            time.sleep(0.05)

    def cleanup(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "private_redis_cluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _knows(node: ClusterNode, node_id: str) -> bool:
    return node_id in node.client().execute_command("CLUSTER", "NODES").decode()
