"""The /ws bench's client processes (bench/ws_subs.py runs them through bench/api.py _subs).

Each holds up to a few hundred sockets of one mode: bench/rawws.py's raw RFC 6455 client,
as the /ws/market bench's clients are, counting bytes and looking only for the probes, so a
client costs little beside the node. Probes are trades of symbols of their own
whose figures carry a sequence number (see bench/ws_subs.py). ``star_deflate`` clients
ask for ``?compression=deflate``: bytes are counted as they came (compressed), probes
looked for in the inflated text.
"""

from __future__ import annotations

import asyncio
import json
import random

from children import raise_nofile
from rawws import HOST, RawWebSocket, closed_codes, cpu_s, obey

BOARD_PROBE = "PRBBOARD"
HISTORY_PROBES = tuple(f"PRB{i:03d}" for i in range(500))
HISTORY_GROUPS = 10
BOARD_MARK = b'"' + BOARD_PROBE.encode() + b'":{'


class SubClient(RawWebSocket):
    """One /ws (or /ws/market) socket: subscribes, counts bytes, records probe values."""

    def __init__(self, port: int, path: str, subscribe: list[dict], probe: str, compression: str | None = None) -> None:
        super().__init__(port, path, compression=compression)
        self.subscribe = subscribe
        self.probe = probe  # board | history | none
        self.seen = -1
        self.records: list[float] = []
        self.bytes = 0
        self.messages = 0
        self.rows = 0  # board rows received (each holds its "symbol")

    def opened(self) -> None:
        for sub in self.subscribe:
            self.send(1, json.dumps({"op": "subscribe", **sub}).encode())

    def message(self, buf: bytearray, start: int, stop: int, now: float) -> None:
        self.bytes += self.wire  # as it came: compressed, with ?compression=deflate
        self.messages += 1
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


def plan(mode: str, n: int, seed: int, names: list[str]) -> list[tuple[str, list[dict], str, str, str | None]]:
    """Per client: path, subscriptions, probe kind, the probed symbol (history), and the
    compression it asks for."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if mode == "board30":
            symbols = rng.sample(names, 29) + [BOARD_PROBE]
            out.append(("/ws", [{"channel": "board", "symbols": symbols}], "board", "", None))
        elif mode in ("star", "star_deflate"):
            compression = "deflate" if mode == "star_deflate" else None
            out.append(("/ws", [{"channel": "board", "symbols": "*"}], "board", "", compression))
        elif mode == "market":
            out.append(("/ws/market", [], "none", "", None))
        elif mode == "history":
            symbol = rng.choice(HISTORY_PROBES)
            sub = rng.choice([
                {"channel": "candles", "symbol": symbol, "interval": "1m"},
                {"channel": "trades", "symbol": symbol, "limit": 20},
            ])
            out.append(("/ws", [sub], "history", symbol, None))
        elif mode == "quiet":  # symbols that never trade: nothing subscribed changes
            out.append(("/ws", [{"channel": "board", "symbols": ["QUIET1", "QUIET2"]}, {"channel": "trades", "symbol": "QUIET1"}], "none", "", None))
        else:
            raise ValueError(mode)
    return out


async def client_main(port: int, n: int, mode: str, seed: int, names_file: str) -> None:
    """Hold n sockets of ``mode``; ``dump`` prints one JSON line of what came, ``stop`` exits."""
    raise_nofile()
    loop = asyncio.get_running_loop()
    conns: list[SubClient] = []
    symbols: list[str] = []
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(16)

    async def open_one(path: str, subs: list[dict], probe: str, symbol: str, compression: str | None) -> None:
        async with gate:
            conn = SubClient(port, path, subs, probe, compression)
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
    await obey(lambda: {
        "clients": [c.take() for c in conns], "symbols": symbols, "closed": closed_codes(conns), "cpu_s": cpu_s(),
    })
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)
