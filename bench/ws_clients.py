"""The /ws bench's client processes (bench/ws_subs.py runs them through bench/api.py _subs).

Each holds up to a few hundred sockets of one mode: plain asyncio protocols speaking RFC 6455
by hand, as the /ws/market bench's clients do, that count bytes and look only for the
probes, so a client costs little beside the node. Probes are trades of symbols of their own
whose figures carry a sequence number (see bench/ws_subs.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import resource
import sys
import time

HOST = "127.0.0.1"
BOARD_PROBE = "PRBBOARD"
HISTORY_PROBES = tuple(f"PRB{i:03d}" for i in range(500))
HISTORY_GROUPS = 10
BOARD_MARK = b'"' + BOARD_PROBE.encode() + b'":{'




def _frame(opcode: int, payload: bytes) -> bytes:
    # Client frames are masked; an all-zero key leaves the payload as it is.
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class SubClient(asyncio.Protocol):
    """One /ws (or /ws/market) socket: subscribes, counts bytes, records probe values."""

    def __init__(self, port: int, path: str, subscribe: list[dict], probe: str) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.subscribe = subscribe
        self.probe = probe  # board | history | none
        self.buf = bytearray()
        self.upgraded = False
        self.seen = -1
        self.records: list[float] = []
        self.bytes = 0
        self.messages = 0
        self.rows = 0  # board rows received (each holds its "symbol")
        self.first: asyncio.Future = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self.first.done():
            self.first.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.close_code = -1
                self.transport.close()
                return
            del buf[: end + 4]
            self.upgraded = True
            for sub in self.subscribe:
                self.transport.write(_frame(1, json.dumps({"op": "subscribe", **sub}).encode()))
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            start, stop = pos + head, pos + head + length
            pos = stop
            opcode = b0 & 0x0F
            if opcode in (0, 1):
                self.bytes += length
                self.messages += 1
                self._message(buf, start, stop, now)
            elif opcode == 9:
                self.transport.write(_frame(0xA, bytes(buf[start:stop])))
            elif opcode == 8:
                self.close_code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 1005
        del buf[:pos]

    def _message(self, buf: bytearray, start: int, stop: int, now: float) -> None:
        value = -1
        if self.probe == "board":
            self.rows += buf.count(b'"symbol":', start, stop)
            at = buf.find(BOARD_MARK, start, stop)
            if at >= 0:
                value = _number_after(buf, b'"market_volume":', at, stop)
        elif self.probe == "history":
            for mark in (b'"close":', b'"price":'):
                at = buf.rfind(mark, start, stop)
                if at >= 0:
                    price = _number_after(buf, mark, at, stop)
                    value = max(value, (price - 10_000) // 10)
        if value > self.seen:
            self.seen = value
            self.records += (now, value)
        if not self.first.done() and (self.messages >= len(self.subscribe) or self.probe == "none"):
            self.first.set_result(None)

    def close(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(_frame(0x8, (1000).to_bytes(2, "big")))
            self.transport.close()

    def take(self) -> dict:
        out = {"records": self.records, "bytes": self.bytes, "messages": self.messages, "rows": self.rows}
        self.records, self.bytes, self.messages, self.rows = [], 0, 0, 0
        return out


def _number_after(buf: bytearray, mark: bytes, at: int, stop: int) -> int:
    at = buf.find(mark, at, stop)
    if at < 0:
        return -1
    at += len(mark)
    end = at
    while end < stop and buf[end] not in b",}]":
        end += 1
    try:
        return int(float(buf[at:end]))
    except ValueError:
        return -1


def plan(mode: str, n: int, seed: int, names: list[str]) -> list[tuple[str, list[dict], str, str]]:
    """Per client: path, subscriptions, probe kind, and the probed symbol (history)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if mode == "board30":
            symbols = rng.sample(names, 29) + [BOARD_PROBE]
            out.append(("/ws", [{"channel": "board", "symbols": symbols}], "board", ""))
        elif mode == "star":
            out.append(("/ws", [{"channel": "board", "symbols": "*"}], "board", ""))
        elif mode == "market":
            out.append(("/ws/market", [], "none", ""))
        elif mode == "history":
            symbol = rng.choice(HISTORY_PROBES)
            sub = rng.choice([
                {"channel": "candles", "symbol": symbol, "interval": "1m"},
                {"channel": "trades", "symbol": symbol, "limit": 20},
            ])
            out.append(("/ws", [sub], "history", symbol))
        elif mode == "quiet":  # symbols that never trade: nothing subscribed changes
            out.append(("/ws", [{"channel": "board", "symbols": ["QUIET1", "QUIET2"]}, {"channel": "trades", "symbol": "QUIET1"}], "none", ""))
        else:
            raise ValueError(mode)
    return out


async def client_main(port: int, n: int, mode: str, seed: int, names_file: str) -> None:
    """Hold n sockets of ``mode``; ``dump`` prints one JSON line of what came, ``stop`` exits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    conns: list[SubClient] = []
    symbols: list[str] = []
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(16)

    async def open_one(path: str, subs: list[dict], probe: str, symbol: str) -> None:
        async with gate:
            conn = SubClient(port, path, subs, probe)
            try:
                await loop.create_connection(lambda: conn, HOST, port)
                await asyncio.wait_for(conn.first, 60)
                why = None if conn.messages or probe == "none" and conn.upgraded else f"closed ({conn.close_code})"
            except (OSError, asyncio.TimeoutError) as exc:
                why = type(exc).__name__
            if why is None:
                conns.append(conn)
                symbols.append(symbol)
            else:
                failures[why] = failures.get(why, 0) + 1
                if conn.transport:
                    conn.transport.abort()

    with open(names_file) as f:
        names = json.load(f)
    await asyncio.gather(*(open_one(*p) for p in plan(mode, n, seed, names)))
    print(json.dumps({"ready": len(conns), "failures": failures}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).strip()
        if line == b"dump":
            closed: dict[int, int] = {}
            for c in conns:
                if c.close_code is not None:
                    closed[c.close_code] = closed.get(c.close_code, 0) + 1
            usage = resource.getrusage(resource.RUSAGE_SELF)
            print(json.dumps({
                "clients": [c.take() for c in conns], "symbols": symbols, "closed": closed,
                "cpu_s": usage.ru_utime + usage.ru_stime,
            }), flush=True)
        else:
            break
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)
