"""Hostile clients against one API node: it stays up, gives its memory back, and the
well-behaved clients keep getting their pushes.

The node is a real `stock-tracker serve` process (WS_TOKEN set, WS_MAX_PER_IP=8,
WS_SEND_TIMEOUT_S=0.5) on a private redis-server. A pipeline process appends simulated VN30
frames plus a probe MI frame every 110 ms and folds them with the projector, so the node
pushes a real change about as often as the throttle allows. Four observers, in a process of
their own, time each probe from append to receipt (harness/probe.py, as bench/api.py does)
throughout.

Each round attacks in three waves, each timed on its own:
- hostile clients, all at once: the per-IP limit's worth of clients from one address and
  three times as many more (1013); wrong, missing and mangled tokens (1008); junk, oversized
  and malformed messages (ignored, or 1009 / 1007 / 1002); clients that never read, with tiny
  receive buffers (dropped after the send timeout, their transports aborted: their slots
  come back while they still hold their end, and reading finds a reset);
- a storm of 2,000 connects/disconnects paced at 500 a second, from four processes;
- the same storm at full speed (about 1,200 a second on a 2-core machine).
The storms come from 250 loopback addresses each (127.x.y.z, eight connections per address,
the per-IP limit): a reconnect storm comes from many users, and from one address it would
only measure the 1013 path, which the hostile wave covers. Their processes are started,
ready, before anything is timed.

The market board is padded to 1,000 symbols (~240 KB a push, a whole-market board): on
loopback the kernel lets an unread socket buffer up to 4 MB, which takes minutes to fill with
the VN30 alone, and the send timeout only starts once it is full.

The first round is a warm-up; the RSS baseline is taken after it, and two more rounds follow.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app import keys as K
from app.config import Settings
from app.projections import worker
from app.store import redis_from_url
from harness.probe import Feed, lags_ms, percentile, probe_mark, sent_between
from tests import factory as F
from tests.apiserver import ApiServer, until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hostile-test-token"
PER_IP = 8
SEND_TIMEOUT_S = 0.5
THROTTLE_MS = 100
PUSH_EVERY_S = 0.11  # just over the throttle: each change is pushed on its own
BOARD_SYMBOLS = 1000
OBSERVERS = 4
BURST = 2000
BURST_PROCESSES = 4
# The benchmark's target is p99 <= throttle + 25 ms on an idle machine. Here the node shares
# two cores with Redis, the pipeline, the observers and the attackers, so the bounds are
# looser. Hostile clients cost the others nothing measurable (p99 ~60-80 ms): 300 ms is
# under the send timeout, so a node that waited on one stuck client would fail it.
HOSTILE_P99_MS = 300.0
# A storm the node can absorb (p99 ~90-250 ms idle, 700 ms with the machine busy): its
# lag is printed with the figures, not asserted (speed lives in bench/); what is asserted
# is that every probe reached every observer.
PACED_RATE = 500
# At full speed one worker is CPU-bound: a market render that takes 25 ms idle takes 200-450
# ms between handshakes, and pushes lag 0.5-0.9 s while the 1.5-2 s storm lasts. The bound
# there is that no push waits for the storm to end: p99 under the storm's own length.
MEASURED_ROUNDS = 2
# After a 2,000-connection burst the allocator keeps its pools (RSS does not fall back), so
# the baseline is taken after a full warm-up round. Later rounds then move RSS by -8..+6 MB
# (garbage awaiting the collector); each round is ~4,100 connections, and a leak of 1.5 KB
# each would exceed this over two rounds (connections never collected leaked 3 KB each).
RSS_SLACK_MB = 12.0
PROBE_ID = "PROBE"
PROBE_MARK = probe_mark(PROBE_ID)
CHANNELS = ("/ws/market", "/ws/index", "/ws/foreign")


# ---------------------------------------------------------------------------------------
# A WebSocket client at the byte level: it can send what no library would, and not read.
# ---------------------------------------------------------------------------------------


def frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    n = len(payload)
    first = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head = first + bytes([bit | n])
    elif n < 65536:
        head = first + bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head = first + bytes([bit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + key + masked


def close_frame(code: int) -> bytes:
    return frame(0x8, code.to_bytes(2, "big"))


class RawWs:
    """One raw client connection: what the node sent back, counted as it is read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.status = ""  # the handshake response line
        self.messages = 0
        self.close_code: int | None = None
        self.gone = False  # EOF or reset from the node

    @property
    def upgraded(self) -> bool:
        return self.status.startswith("HTTP/1.1 101")

    @property
    def ended(self) -> bool:
        return self.gone or self.close_code is not None

    @classmethod
    async def open(cls, port: int, path: str, src: str = "127.0.0.1", rcvbuf: int | None = None,
                   handshake: bool = True) -> "RawWs":
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        ws = cls(sock)
        try:
            sock.bind((src, 0))
            await loop.sock_connect(sock, ("127.0.0.1", port))
            key = "dGhlIHNhbXBsZSBub25jZQ=="
            await loop.sock_sendall(sock, (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode())
            if handshake:
                await ws.wait(lambda w: w.status, timeout=20)
        except BaseException:
            sock.close()
            raise
        return ws

    async def wait(self, predicate, timeout: float = 10.0) -> bool:
        """Read until ``predicate(self)``; False if the node went away or time ran out."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    if self.gone:
                        return False
                    try:
                        data = await loop.sock_recv(self.sock, 1 << 18)
                    except ConnectionError:
                        data = b""
                    if not data:
                        self.gone = True
                    else:
                        self.buf += data
                        self._parse()
        except TimeoutError:
            return False
        return True

    def _parse(self) -> None:
        buf = self.buf
        if not self.status:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = bytes(buf[: buf.find(b"\r\n")]).decode(errors="replace")
            del buf[: end + 4]
        pos, size = 0, len(buf)
        while size - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            opcode, start = buf[pos] & 0x0F, pos + head
            pos = start + length
            if opcode in (1, 2):
                self.messages += 1
            elif opcode == 8:
                self.close_code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 1005
            elif opcode == 9:  # uvicorn's keepalive ping: unanswered, it ends the connection
                try:
                    self.sock.send(frame(0xA, bytes(buf[start:pos])))
                except OSError:
                    pass
        del buf[:pos]

    async def send(self, data: bytes) -> bool:
        try:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)
            return True
        except OSError:  # the node closed first (too big, protocol error): what we test for
            return False

    def abort(self) -> None:
        """Go away with a reset, as a crashed client or a dropped network path does."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------------------------
# Processes of their own: python -m tests.test_hostile_clients pipeline|observe|burst ...
# Each prints one JSON line when ready, waits for a line on stdin, and prints its results.
# ---------------------------------------------------------------------------------------


async def _stdin_line() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def pipeline_main(redis_url: str) -> None:
    """The market: frames appended and folded by the projector, away from the test's own
    clients, whose work would otherwise delay the fold and be charged to the node."""
    redis = redis_from_url(redis_url)
    stop = asyncio.Event()
    projector = asyncio.create_task(worker.run(redis, Settings(redis_url=redis_url, projector_block_ms=50), stop))
    feed = Feed(redis, probe_id=PROBE_ID, seed=3)
    feeding = asyncio.create_task(feed.pace(PUSH_EVERY_S, 20))
    print(json.dumps({"ready": True}), flush=True)
    await _stdin_line()
    feeding.cancel()
    stop.set()
    await asyncio.gather(feeding, projector, return_exceptions=True)
    await redis.aclose()
    print(json.dumps({"sent": feed.sent}), flush=True)


async def observe_main(port: int, n: int) -> None:
    """Hold n well-behaved clients (a real client library); report what each received."""
    records: list[list[float]] = [[] for _ in range(n)]  # flat: receive time, probe value, ...
    ended: list[object] = [None] * n
    first = [asyncio.Event() for _ in range(n)]

    async def one(i: int) -> None:
        url = f"ws://127.0.0.1:{port}{CHANNELS[i % 2]}?token={TOKEN}"
        seen = -1.0
        try:
            async with websockets.connect(url, max_size=None, compression=None, local_addr=("127.0.0.2", 0)) as ws:
                async for message in ws:
                    now = time.time()
                    first[i].set()
                    at = message.find(PROBE_MARK) if isinstance(message, str) else -1
                    if at >= 0:
                        at += len(PROBE_MARK)
                        end = at
                        while message[end] not in ",}":
                            end += 1
                        value = float(message[at:end])
                        if value > seen:
                            seen = value
                            records[i] += (now, value)
            ended[i] = "closed by the node"
        except ConnectionClosed as exc:
            ended[i] = exc.rcvd.code if exc.rcvd else 1006
        except OSError as exc:
            ended[i] = type(exc).__name__

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first)), 30)
    print(json.dumps({"ready": n}), flush=True)
    await _stdin_line()
    print(json.dumps({"records": records, "ended": ended}), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def burst_main(port: int, n: int, net: str, rate: float) -> None:
    """n connects, each from <net>.x (never more than the limit from one address), then
    one of four ways to leave: a clean close handshake, a bare FIN, a reset after the first
    state, and a reset right after the upgrade request (gone before the node answered).
    At most 50 at a time, and ``rate`` new ones a second when it is not 0."""
    gate = asyncio.Semaphore(50)
    tally: Counter[str] = Counter()
    loop = asyncio.get_running_loop()

    async def one(i: int) -> None:
        mode = i % 4
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        async with gate:
            try:
                ws = await RawWs.open(port, f"{CHANNELS[i % 3]}?token={TOKEN}", f"{net}.{i // PER_IP + 1}",
                                      handshake=mode != 3)
            except OSError as exc:
                tally[f"connect failed: {type(exc).__name__}"] += 1
                return
            try:
                if mode == 3:
                    tally["left before the answer"] += 1
                    return ws.abort()
                if not ws.upgraded:
                    tally[f"refused: {ws.status}"] += 1
                    return
                if not await ws.wait(lambda w: w.messages or w.ended, 20) or not ws.messages:
                    tally[f"no state (close {ws.close_code}, gone {ws.gone})"] += 1
                    return
                tally["state"] += 1
                if mode == 0:
                    await ws.send(close_frame(1000))
                    await ws.wait(lambda w: w.ended, 10)
                    tally[f"clean close answered {ws.close_code}"] += 1
                elif mode == 2:
                    ws.abort()
            finally:
                ws.close()

    print(json.dumps({"ready": n}), flush=True)
    await _stdin_line()
    start = loop.time()
    await asyncio.gather(*(one(i) for i in range(n)))
    print(json.dumps(tally), flush=True)


class Child:
    """A client process of this module, started and ready before anything is timed."""

    def __init__(self, proc: asyncio.subprocess.Process, hello: dict) -> None:
        self.proc = proc
        self.hello = hello

    @classmethod
    async def start(cls, *args: str) -> "Child":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.test_hostile_clients", *args, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        )
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            await proc.wait()
            raise RuntimeError(f"client process {args[0]} exited with {proc.returncode}")
        return cls(proc, json.loads(line))

    def go(self) -> None:
        self.proc.stdin.write(b"go\n")

    async def result(self, timeout: float = 60) -> dict:
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("a client process died")
        return json.loads(line)

    async def finish(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            await self.proc.wait()


# ---------------------------------------------------------------------------------------
# The attack
# ---------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmRSS")


async def seed_board(redis, n: int) -> None:
    keys = K.SessionKeys(F.SESSION)
    await F.register_session(redis)
    symbols = [f"Z{i:04d}" for i in range(n)]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.members("stats"), *symbols)
        for sym in symbols:
            pipe.hset(keys.entity("stats", sym), mapping={
                "symbol": sym, "mua_chu_dong_volume": "123400", "mua_chu_dong_value": "2851000000.0",
                "ban_chu_dong_volume": "98700", "ban_chu_dong_value": "2270100000.0",
                "neutral_volume": "1200", "total_volume": "223300", "last_updated": "2026-11-25T09:14:59+07:00",
            })
        await pipe.execute()


class Node:
    """The node under attack, its HTTP side, and what a watcher saw of it."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.port = server.port
        self.pid = server.proc.pid
        # /metrics needs the credential when one is configured (ignored when none is).
        self.http = httpx.AsyncClient(base_url=server.http, timeout=2.0, headers={"Authorization": f"Bearer {TOKEN}"})
        self.health: Counter[str] = Counter()
        self.peak_rss = 0.0

    async def watch(self) -> None:
        """/healthz and RSS every 100 ms, from the warm-up to the end."""
        while True:
            if self.server.proc.poll() is not None:
                self.health["node exited"] += 1
                return
            self.peak_rss = max(self.peak_rss, rss_mb(self.pid))
            try:
                self.health[str((await self.http.get("/healthz")).status_code)] += 1
            except httpx.HTTPError as exc:
                self.health[type(exc).__name__] += 1
            await asyncio.sleep(0.1)

    async def metric(self, name: str) -> float:
        """The sum of a metric's samples; NaN (equal to nothing) when the read was refused
        with 429, so a refused read never passes for a count of 0."""
        response = await self.http.get("/metrics")
        if response.status_code == 429:
            return float("nan")
        response.raise_for_status()
        total = 0.0
        for line in response.text.splitlines():
            if line.startswith(name + "{"):
                total += float(line.rpartition(" ")[2])
        return total

    async def clients_are(self, n: int) -> bool:
        return await self.metric("stock_tracker_ws_clients") == n

    async def drops_reach(self, n: int) -> bool:
        return await self.metric("stock_tracker_ws_drops_total") >= n

    async def settled(self) -> None:
        """Back to the observers alone, and two pushes since: what a wave sent has arrived
        before the next one starts, so each wave's figures are its own."""
        await until(lambda: self.clients_are(OBSERVERS), timeout=20)
        pushes = await self.metric("stock_tracker_ws_pushes_total")
        await until(lambda: self._pushes_reach(pushes + 2), timeout=10)

    async def _pushes_reach(self, n: float) -> bool:
        return await self.metric("stock_tracker_ws_pushes_total") >= n

    async def rss_within(self, limit: float) -> bool:
        return rss_mb(self.pid) <= limit


def token_paths() -> list[str]:
    return [
        "/ws/market", "/ws/market?token=", "/ws/market?token=wrong", "/ws/index?token=" + "x" * 6000,
        "/ws/foreign?token=%FF%FE", f"/ws/market?token=x&token={TOKEN}", f"/ws/index?token={TOKEN[:-1]}",
        f"/ws/market?token={TOKEN}x",
    ]


async def bad_tokens(port: int, src: str) -> list[str]:
    """Twice the per-IP limit of rejected clients, all left open: rejects take no slots."""
    problems, rejected = [], []
    for path in token_paths() * 2:
        ws = await RawWs.open(port, path, src)
        rejected.append(ws)
        if not (await ws.wait(lambda w: w.ended) and ws.close_code == 1008 and not ws.messages):
            problems.append(f"token {path[:40]}: close {ws.close_code}, {ws.messages} messages")
    good = await RawWs.open(port, f"/ws/index?token={TOKEN}", src)
    if not await good.wait(lambda w: w.messages):
        problems.append(f"the right token after rejects from the same address: close {good.close_code}")
    for ws in (*rejected, good):
        ws.close()
    return problems


# (what the client sends, how the node must answer: None = ignore it and keep pushing)
JUNK = [
    ("text junk", frame(0x1, b"{not json at all"), None),
    ("binary junk", frame(0x2, os.urandom(300)), None),
    ("empty text", frame(0x1, b""), None),
    ("a fragmented message", frame(0x1, b"ab", fin=False) + frame(0x0, b"cd"), None),
    ("a ping", frame(0x9, b"hi"), None),
    ("an unsolicited pong", frame(0xA, b"hi"), None),
    ("text over the limit", frame(0x1, b"a" * 4097), {1009}),
    ("4,000 chars, 12,000 bytes", frame(0x1, "\u20ac".encode() * 4000), {1009}),
    ("binary over the limit", frame(0x2, bytes(10_000)), {1009}),
    # Over uvicorn's own frame limit: refused while it arrives, and the rest of our send is
    # reset, which may take the close frame with it.
    ("1 MB binary", frame(0x2, bytes(1 << 20)), {1009, None}),
    ("fragments adding up to 80 KB",
     b"".join(frame(0x2 if i == 0 else 0x0, bytes(2000), fin=i == 39) for i in range(40)), {1009, None}),
    ("invalid UTF-8 text", frame(0x1, b"\xff\xfe\xfd"), {1007}),
    ("an unmasked frame", frame(0x1, b"hi", mask=False), {1002}),
    ("a reserved opcode", frame(0x3, b"hi"), {1002}),
    ("RSV1 without an extension", frame(0x1, b"hi", rsv=0x40), {1002}),
    ("a continuation out of the blue", frame(0x0, b"hi"), {1002}),
    ("an oversized ping", frame(0x9, bytes(200)), {1002}),
    ("a close code that does not exist", close_frame(999), {1002}),
    ("an HTTP request instead of frames", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", {1002}),
]


async def junk(port: int, net: str) -> list[str]:
    async def one(k: int, name: str, payload: bytes, expect) -> str | None:
        ws = await RawWs.open(port, f"/ws/index?token={TOKEN}", f"{net}.{k + 1}", rcvbuf=1 << 20)
        try:
            if not await ws.wait(lambda w: w.messages):
                return f"{name}: no state before the junk"
            before = ws.messages
            await ws.send(payload)
            if expect is None:  # ignored: the next push still comes, on the same connection
                ok = await ws.wait(lambda w: w.messages > before or w.ended) and not ws.ended
                return None if ok else f"{name}: connection ended (close {ws.close_code})"
            await ws.wait(lambda w: w.ended)
            if ws.ended and ws.close_code in expect:
                return None
            return f"{name}: close {ws.close_code}, expected one of {sorted(expect, key=str)}"
        finally:
            ws.close()

    found = await asyncio.gather(*(one(k, *case) for k, case in enumerate(JUNK)))
    return [p for p in found if p]


async def per_ip_flood(port: int, src: str, held: list[RawWs], reading: list[asyncio.Task]) -> list[str]:
    """The limit's worth of clients from one address, kept (and reading, so they are not
    dropped as slow); every one after them gets 1013."""
    problems = []
    for i in range(PER_IP):
        ws = await RawWs.open(port, f"{CHANNELS[i % 3]}?token={TOKEN}", src)
        held.append(ws)
        if not await ws.wait(lambda w: w.messages):
            problems.append(f"client {i + 1} of {PER_IP} from one address not admitted: close {ws.close_code}")
        reading.append(asyncio.create_task(ws.wait(lambda w: False, timeout=3600)))
    extra = await asyncio.gather(*(RawWs.open(port, f"/ws/foreign?token={TOKEN}", src) for _ in range(3 * PER_IP)))
    for ws in extra:
        if not (await ws.wait(lambda w: w.ended) and ws.close_code == 1013 and not ws.messages):
            problems.append(f"over the per-IP limit: close {ws.close_code}, {ws.messages} messages")
        ws.close()
    return problems


async def never_readers(node: Node, src: str, stuck: list[RawWs]) -> list[str]:
    """The limit's worth of clients that never read, on the big market channel: each is
    dropped after the send timeout and its transport aborted, so its address has its slots
    back within the close grace while the clients still hold their end, and reading finds
    the connection reset."""
    problems = []
    drops = await node.metric("stock_tracker_ws_drops_total")
    for _ in range(PER_IP):
        stuck.append(await RawWs.open(node.port, f"/ws/market?token={TOKEN}", src, rcvbuf=4096))
    try:
        await until(lambda: node.drops_reach(drops + PER_IP), timeout=30, interval=0.1)
    except TimeoutError:
        return [f"never-readers dropped: {await node.metric('stock_tracker_ws_drops_total') - drops:.0f} of {PER_IP}"]
    try:
        await until(lambda: limit_available(node.port, [src]), timeout=SEND_TIMEOUT_S + 1, interval=0.05)
    except TimeoutError:
        problems.append("dropped clients still connected kept their address's slots")
    reader = stuck.pop()
    if not (await reader.wait(lambda w: w.ended, timeout=30) and reader.gone):
        problems.append(f"a dropped client reading its backlog: close {reader.close_code}, gone {reader.gone}")
    reader.close()
    return problems


async def attack(node: Node, round_no: int) -> dict:
    """Two waves, each timed on its own: the hostile clients all at once, then the storm.
    Each round has addresses of its own."""
    net = f"127.{10 + round_no}"
    # Started, and ready, before anything is timed: spawning a process is not the node's cost.
    storms = {
        wave: [await Child.start("burst", str(node.port), str(BURST // BURST_PROCESSES),
                                 f"127.{20 + 2 * round_no + k}.{b}", str(rate / BURST_PROCESSES))
               for b in range(BURST_PROCESSES)]
        for k, (wave, rate) in enumerate((("paced_storm", PACED_RATE), ("storm", 0)))
    }
    held: list[RawWs] = []
    reading: list[asyncio.Task] = []
    stuck: list[RawWs] = []
    windows = {}
    try:
        started = time.time()
        try:
            found = list(await asyncio.gather(
                per_ip_flood(node.port, f"{net}.0.3", held, reading),
                bad_tokens(node.port, f"{net}.0.4"),
                junk(node.port, f"{net}.5"),
                never_readers(node, f"{net}.0.6", stuck),
            ))
        finally:
            for task in reading:
                task.cancel()
            for ws in held:
                ws.close()
            for ws in stuck:
                ws.abort()
        windows["hostile"] = (started, time.time())
        for wave, storm in storms.items():
            await node.settled()
            started = time.time()
            for child in storm:
                child.go()
            tally: Counter[str] = Counter()
            for child in storm:
                tally.update(await child.result())
            windows[wave] = (started, time.time())
            expected = {"state": BURST * 3 // 4, "clean close answered 1000": BURST // 4,
                        "left before the answer": BURST // 4}
            if tally != expected:
                found.append([f"{wave} {dict(tally)}, expected {expected}"])
    finally:
        for child in (*storms["storm"], *storms["paced_storm"]):
            await child.finish()
    problems = [p for phase in found for p in phase]
    return {"problems": problems, "windows": windows, "sources": [f"{net}.0.3", f"{net}.0.6"]}


async def limit_available(port: int, sources: list[str], per_ip: int = PER_IP) -> bool:
    clients = [await RawWs.open(port, f"/ws/index?token={TOKEN}", src) for src in sources for _ in range(per_ip)]
    try:
        return all([await ws.wait(lambda w: w.messages) for ws in clients])
    finally:
        for ws in clients:
            ws.close()


@pytest.mark.slow
async def test_hostile_clients_leave_the_node_up_lean_and_on_time(redis, redis_server):
    began = time.perf_counter()
    await seed_board(redis, BOARD_SYMBOLS)
    server = ApiServer(
        redis_server.url, WS_TOKEN=TOKEN, WS_MAX_PER_IP=str(PER_IP), WS_SEND_TIMEOUT_S=str(SEND_TIMEOUT_S),
        WS_THROTTLE_MS=str(THROTTLE_MS), API_RATE_LIMIT="0",  # the watcher reads /metrics often
    )
    children: list[Child] = []
    node = watching = None
    try:
        server.start()
        node = Node(server)
        pipeline = await Child.start("pipeline", redis_server.url)
        observers = await Child.start("observe", str(node.port), str(OBSERVERS))
        children += [pipeline, observers]
        watching = asyncio.create_task(node.watch())

        # The first round is the warm-up: first use of every path loads code and grows the
        # allocator's pools for good. Its end is the baseline.
        rounds = [await attack(node, 0)]
        await node.settled()
        baseline = rss_mb(node.pid)
        node.peak_rss = 0.0
        for round_no in range(1, MEASURED_ROUNDS + 1):
            rounds.append(await attack(node, round_no))
            await node.settled()  # no Client left behind, and the last probes delivered
        limit = baseline + RSS_SLACK_MB
        settling = time.perf_counter()
        try:
            await until(lambda: node.rss_within(limit), timeout=20, interval=0.2)
        except TimeoutError:
            pass  # asserted below, with the figures
        settled_s = time.perf_counter() - settling
        after = rss_mb(node.pid)
        # Every slot the attack held was given back.
        sources = [src for r in rounds for src in r["sources"]]
        slots_back = await until(lambda: limit_available(node.port, sources), timeout=20, interval=0.2)
        health_after = (await node.http.get("/healthz")).status_code
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)

        for child in children:
            child.go()
        seen = await observers.result()
        sent = {int(k): v for k, v in (await pipeline.result())["sent"].items()}
        lags: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        missing = 0
        for measured in rounds[1:]:
            for wave, (start, end) in measured["windows"].items():
                seconds.setdefault(wave, []).append(end - start)
                for records in seen["records"]:
                    these, lost = lags_ms(records, sent, sent_between(sent, start, end))
                    lags.setdefault(wave, []).extend(these)
                    missing += lost
        figures = {
            "rss_mb": {"baseline": round(baseline, 1), "peak": round(node.peak_rss, 1), "after": round(after, 1),
                       "limit": round(limit, 1), "settled_s": round(settled_s, 1)},
            **{wave: {
                "s": [round(x, 1) for x in seconds[wave]], "p50_ms": round(percentile(lags[wave], 50)),
                "p99_ms": round(percentile(lags[wave], 99)), "samples": len(lags[wave]),
            } for wave in lags},
            "healthz": dict(node.health), "runtime_s": round(time.perf_counter() - began, 1),
        }
        print("\nhostile clients:", json.dumps(figures))

        assert server.proc.poll() is None and health_after == 200
        assert set(node.health) == {"200"}, node.health
        for r in rounds:
            assert not r["problems"], r["problems"]
        assert slots_back
        assert seen["ended"] == [None] * OBSERVERS, seen["ended"]
        # Every probe of every wave reached every observer (or a later one did).
        assert all(lags.values()) and missing == 0, figures
        assert percentile(lags["hostile"], 99) <= HOSTILE_P99_MS, figures
        assert percentile(lags["storm"], 99) < min(seconds["storm"]) * 1000, figures
        assert after <= limit, figures
    finally:
        if watching:
            watching.cancel()
        for child in children:
            await child.finish()
        if node:
            await node.http.aclose()
        server.stop()


async def fill_board_and_publish(redis, stop: asyncio.Event) -> None:
    """A big board and a notice every few ms: unread pushes pile up within a second."""
    keys = K.SessionKeys(F.SESSION)
    notice = msgspec.json.encode({"date": F.SESSION, "kinds": ["index"], "checkpoint": ""})
    for i in range(1, 1 << 30):
        if stop.is_set():
            return
        await redis.hset(keys.entity("index", "VN30"), mapping={"index_id": "VN30", "value": repr(float(i))})
        await redis.sadd(keys.members("index"), "VN30")
        await redis.publish(K.SessionKeys(F.SESSION).notify, notice)
        await asyncio.sleep(0.01)


async def test_a_dropped_client_that_never_reads_gives_its_slot_back_and_the_gauge_agrees(redis, redis_server):
    """A client that never reads (and keeps its TCP connection) is dropped after the send
    timeout and its transport aborted: the address has its slots back within the send
    timeout and the close grace, and /metrics counts it until then, not a moment less."""
    await seed_board(redis, BOARD_SYMBOLS)
    stop = asyncio.Event()
    publishing = asyncio.create_task(fill_board_and_publish(redis, stop))
    src = "127.0.0.7"
    try:
        with ApiServer(redis_server.url, WS_MAX_PER_IP="2", WS_SEND_TIMEOUT_S=str(SEND_TIMEOUT_S),
                       WS_THROTTLE_MS="20", API_RATE_LIMIT="0") as server:
            node = Node(server)
            stuck: list[RawWs] = []
            try:
                for _ in range(2):
                    stuck.append(await RawWs.open(server.port, "/ws/market", src, rcvbuf=4096))
                # Admitted and holding their slots: counted, and the address has none left.
                assert await until(lambda: node.clients_are(2), timeout=5)
                extra = await RawWs.open(server.port, "/ws/index", src)
                assert await extra.wait(lambda w: w.ended) and extra.close_code == 1013
                extra.close()
                await until(lambda: node.drops_reach(2), timeout=30, interval=0.02)
                dropped_at = time.monotonic()
                # Neither has read a byte since its handshake, and both still hold their end
                # of the connection: the node let go of its own.
                assert all(ws.messages == 0 and not ws.ended for ws in stuck)
                assert await until(lambda: node.clients_are(0), timeout=SEND_TIMEOUT_S + 1, interval=0.02)
                assert await until(lambda: limit_available(server.port, [src], per_ip=2),
                                   timeout=SEND_TIMEOUT_S + 1 - (time.monotonic() - dropped_at), interval=0.05)
                # Reading at last finds the connection reset (the close frame was never sent:
                # it waited behind the unread pushes), not a node still writing.
                assert await stuck[0].wait(lambda w: w.ended, timeout=20)
                assert stuck[0].gone and stuck[0].close_code is None
            finally:
                for ws in stuck:
                    ws.abort()
                await node.http.aclose()
    finally:
        stop.set()
        await publishing


async def test_the_message_limit_counts_bytes_not_characters(redis_server):
    with ApiServer(redis_server.url) as server:  # WS_MAX_MESSAGE_BYTES: 4096
        async with websockets.connect(server.ws + "/ws/index") as ws:
            await ws.recv()
            await ws.send("a" * 4096)
            await asyncio.wait_for(await ws.ping(), 5)  # answered: still open
            await ws.send("\u20ac" * 1366)  # 1,366 characters, 4,098 bytes
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1009


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "pipeline":
        asyncio.run(pipeline_main(args[0]))
    elif command == "observe":
        asyncio.run(observe_main(int(args[0]), int(args[1])))
    elif command == "burst":
        asyncio.run(burst_main(int(args[0]), int(args[1]), args[2], float(args[3])))
    else:
        raise SystemExit(f"unknown command {command}")
