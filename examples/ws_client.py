#!/usr/bin/env python3
"""A small /ws client: keeps a live copy of some board rows, and prints what changes.

    python examples/ws_client.py --url ws://127.0.0.1:8000/ws VNM FPT HPG
    python examples/ws_client.py --symbols VN30 --trades VNM
    WS_TOKEN=... python examples/ws_client.py '*'
    python examples/ws_client.py --deflate '*'    # snapshots and updates deflated (docs/ws.md)

It shows the whole protocol a dashboard needs (docs/ws.md): the auth message, a
subscription per channel, snapshot then updates merged into local state, seq checked per
subscription (a gap: subscribe again for a fresh snapshot), a new session replacing the
state, errors, and reconnecting with backoff. Needs the ``websockets`` package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import zlib

import websockets


class Mirror:
    """The client's copy of what it subscribed to, kept by snapshots and updates."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}  # board: symbol -> row
        self.trades: dict[str, list[dict]] = {}  # symbol -> trades, oldest first
        self.seq: dict[str, int] = {}  # subscription (its key as JSON) -> last seq

    def apply(self, msg: dict) -> bool:
        """Fold one message in; False when a gap means a fresh snapshot is needed."""
        sub = json.dumps(msg["key"], sort_keys=True)
        if msg["type"] == "snapshot":
            self.seq[sub] = 0
        elif msg["seq"] != self.seq.get(sub, -1) + 1:
            return False
        else:
            self.seq[sub] = msg["seq"]
        data = msg["data"]
        if msg["channel"] == "board":
            if msg["type"] == "snapshot":
                self.rows = dict(data)
            else:
                self.rows.update(data)  # whole rows of the symbols that changed
        elif msg["channel"] == "trades":
            symbol = msg["key"]["symbol"].upper()
            if msg["type"] == "snapshot":
                self.trades[symbol] = list(data)
            else:
                self.trades.setdefault(symbol, []).extend(data)  # new trades, oldest first
        return True


def describe(msg: dict) -> str:
    data = msg["data"]
    if msg["channel"] == "board":
        shown = ", ".join(f"{s} {r['last_price']} ({r['change_pct'] if r['change_pct'] is not None else '-'} %)" for s, r in sorted(data.items())[:8])
        more = f" and {len(data) - 8} more" if len(data) > 8 else ""
        return f"board {msg['type']} #{msg['seq']}: {shown}{more}"
    if msg["channel"] == "trades":
        return f"trades {msg['key']['symbol']} #{msg['seq']}: " + ", ".join(
            f"{t['time'][11:19]} {t['volume']}@{t['price']} {t['side']}" for t in data[-5:]
        )
    return f"{msg['channel']} {msg['type']} #{msg['seq']}"


def decode(raw: str | bytes) -> dict | None:
    """A message as JSON; None for the heartbeat. With ?compression=deflate snapshots and
    updates come binary, each one whole raw DEFLATE stream; control messages stay text."""
    if isinstance(raw, str):
        return json.loads(raw)
    if raw == b"ping":  # the heartbeat (a deflated message starts with the byte 0)
        return None
    return json.loads(zlib.decompress(raw, -15))


async def run(url: str, symbols: list[str] | str, trades: list[str], token: str | None) -> None:
    subscriptions = [{"channel": "board", "symbols": symbols}]
    subscriptions += [{"channel": "trades", "symbol": s, "limit": 20} for s in trades]
    attempt = 0
    while True:
        try:
            async with websockets.connect(url, max_size=None) as ws:
                if token:
                    await ws.send(json.dumps({"op": "auth", "token": token}))
                for sub in subscriptions:
                    await ws.send(json.dumps({"op": "subscribe", **sub}))
                mirror = Mirror()
                async for raw in ws:
                    msg = decode(raw)
                    if msg is None:
                        continue
                    kind = msg.get("type")
                    if kind in ("snapshot", "update"):
                        attempt = 0
                        if not mirror.apply(msg):
                            await ws.send(json.dumps({"op": "subscribe", **msg["key"]}))
                            continue
                        print(f"[{msg['session']['date']}] {describe(msg)}", flush=True)
                    elif kind == "error":
                        print(f"error {msg['code']}: {msg['message']}", flush=True)
                    elif kind == "status":
                        print(f"status: connected={msg['connected']} {msg.get('reason', '')}", flush=True)
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if code == 1008:
                raise SystemExit(f"ws_client: the node refused the connection (1008: {exc.rcvd.reason})") from None
            print(f"closed ({code}); reconnecting", flush=True)
        except OSError as exc:
            print(f"cannot connect ({exc}); retrying", flush=True)
        attempt += 1
        await asyncio.sleep(min(15.0, 0.5 * 2 ** attempt) * random.uniform(0.5, 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("symbols", nargs="*", help="board symbols (default VN30)")
    parser.add_argument("--symbols", dest="group", help="VN30, HOSE, HNX, UPCOM, DER or *")
    parser.add_argument("--trades", nargs="*", default=[], help="symbols whose trades to follow")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    parser.add_argument("--deflate", action="store_true", help="ask for compressed snapshots and updates")
    args = parser.parse_args()
    url = args.url + ("&" if "?" in args.url else "?") + "compression=deflate" if args.deflate else args.url
    symbols: list[str] | str = args.group or (args.symbols if args.symbols and args.symbols != ["*"] else "*" if args.symbols else "VN30")
    try:
        asyncio.run(run(url, symbols, args.trades, os.environ.get("WS_TOKEN")))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
