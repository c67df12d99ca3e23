"""The raw RFC 6455 client of the benches' client processes, and the command loop they obey.

A plain asyncio protocol that parses frames in place in one buffer and hands each data
message to its subclass as a slice of it, so a process holds hundreds of sockets and still
costs little beside the node it measures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import time
import zlib
from typing import Callable, Iterable

HOST = "127.0.0.1"
DEFLATE_OFFER = (
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover\r\n"
)


def frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame; client frames are masked, and an all-zero key leaves the
    payload as it is."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class RawWebSocket(asyncio.Protocol):
    """One client socket of ``path``.

    Subclasses get ``opened()`` after the 101 and ``message(buf, start, stop, now)`` for each
    data message: ``buf[start:stop]`` is its payload (inflated when it came compressed),
    ``now`` when its bytes arrived. Pings are answered (uvicorn closes a socket that leaves
    its keepalive ping unanswered); ``close_code`` is the close frame's code, 1006 when the
    connection went without one, -1 when the upgrade was refused. ``first`` is for the
    subclass to resolve when the socket is ready; a lost connection resolves it too.

    With ``deflate`` it offers permessage-deflate without context takeover, so each
    compressed message inflates on its own; without, the node sends its text as is.

    With ``compression`` (``"deflate"``) it asks /ws for ``?compression=deflate``: each
    snapshot and update then comes as a binary message that is one whole raw DEFLATE
    stream (docs/ws.md), inflated here with a decompressor of its own. Either way
    ``wire`` is the size of the last data message as it came on the wire (compressed).
    """

    def __init__(self, port: int, path: str, deflate: bool = False, compression: str | None = None) -> None:
        if compression is not None:
            path += ("&" if "?" in path else "?") + "compression=" + compression
        self.inflate_binary = compression == "deflate"
        self.wire = 0
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{DEFLATE_OFFER if deflate else ''}\r\n"
        ).encode()
        self.buf = bytearray()
        self.upgraded = False
        self.compressed = False
        self.first: asyncio.Future = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None

    def opened(self) -> None:
        """The upgrade succeeded."""

    def message(self, buf: bytearray, start: int, stop: int, now: float) -> None:
        """A data message: ``buf[start:stop]``, received at ``now``."""

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
            self.compressed = b"permessage-deflate" in buf[:end].lower()
            del buf[: end + 4]
            self.upgraded = True
            self.opened()
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
            if opcode in (0, 1, 2):
                self.wire = length
                if b0 & 0x40:  # RSV1: a compressed message
                    plain = zlib.decompressobj(-15).decompress(bytes(buf[start:stop]) + b"\x00\x00\xff\xff")
                    self.message(bytearray(plain), 0, len(plain), now)
                elif opcode == 2 and self.inflate_binary and length and buf[start] == 0:
                    # ?compression=deflate: a data message (the heartbeat is b"ping").
                    plain = zlib.decompressobj(-15).decompress(bytes(buf[start:stop]))
                    self.message(bytearray(plain), 0, len(plain), now)
                else:
                    self.message(buf, start, stop, now)
            elif opcode == 9:
                self.send(0xA, bytes(buf[start:stop]))
            elif opcode == 8:
                self.close_code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 1005
        del buf[:pos]

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(frame(opcode, payload))

    def close(self) -> None:
        self.send(0x8, (1000).to_bytes(2, "big"))
        if self.transport:
            self.transport.close()


def closed_codes(conns: Iterable[RawWebSocket]) -> dict[int, int]:
    """How many sockets ended with each close code."""
    closed: dict[int, int] = {}
    for c in conns:
        if c.close_code is not None:
            closed[c.close_code] = closed.get(c.close_code, 0) + 1
    return closed


def cpu_s() -> float:
    """CPU seconds this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def obey(dump: Callable[[], dict]) -> None:
    """The bench's commands on stdin: ``dump`` prints ``dump()`` as one JSON line; anything
    else (``stop``, or the end of stdin when the bench went away) returns."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (await reader.readline()).strip() == b"dump":
        print(json.dumps(dump()), flush=True)
