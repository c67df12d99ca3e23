"""The /ws subscription protocol: what clients send, checked, and the messages we send.

Pure functions only (and :class:`Data`, a rendered data with its compressed form kept
beside it). A client message becomes an :class:`Op` (auth, subscribe,
unsubscribe) or a :class:`ProtocolError` that the connection turns into an error
message while the socket stays open. A subscription is named two ways: ``key``, the
client's own object minus ``op`` (echoed on every message so the client can tell its
subscriptions apart), and ``topic``, its canonical form, shared by every client that
asked for the same data however it spelled it, so each update is encoded once.
"""

from __future__ import annotations

import re
import zlib
from typing import Any, NamedTuple

import msgspec

from app.projections.read_history import INTERVALS

CHANNELS = ("board", "candles", "trades", "indices", "foreign", "derivatives")
GROUPS = ("VN30", "HOSE", "HNX", "UPCOM", "DER", "*")
TRADES_LIMIT = 100  # trades in a trades snapshot unless the client asks for another number
_SYMBOL = re.compile(r"[A-Z0-9_.\-]{1,32}")
_JSON = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


class ProtocolError(Exception):
    """A message we refuse: ``code`` for programs, ``message`` for people."""

    def __init__(self, code: str, message: str, key: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.key = key


class Topic(NamedTuple):
    """A subscription's canonical form: channel plus what it selects."""

    channel: str
    # board: ("VNM", "FPT") sorted, or a group name (VN30, HOSE, ..., "*");
    # candles: (symbol, interval); trades: (symbol, limit); others: ().
    spec: tuple | str = ()


class Op(NamedTuple):
    op: str  # auth | subscribe | unsubscribe
    token: str = ""
    topic: Topic | None = None
    key: dict | None = None


def parse(text: str | bytes, max_symbols: int, tape_length: int) -> Op:
    """One client message; ProtocolError when it cannot be obeyed."""
    try:
        msg = _decode.decode(text)
    except msgspec.DecodeError:
        raise ProtocolError("bad_json", "the message is not JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_request", "a message is a JSON object with an \"op\"")
    op = msg.get("op")
    if op == "auth":
        token = msg.get("token")
        if not isinstance(token, str):
            raise ProtocolError("bad_request", "auth needs a \"token\" string")
        return Op("auth", token=token)
    if op not in ("subscribe", "unsubscribe"):
        raise ProtocolError("unknown_op", f"unknown op {op!r}: use subscribe, unsubscribe or auth")
    key = {k: v for k, v in msg.items() if k != "op"}
    channel = msg.get("channel")
    if channel not in CHANNELS:
        raise ProtocolError("unknown_channel", f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}", key)
    return Op(op, topic=Topic(channel, _spec(channel, msg, key, max_symbols, tape_length)), key=key)


def _spec(channel: str, msg: dict, key: dict, max_symbols: int, tape_length: int) -> tuple | str:
    if channel == "board":
        return _board(msg.get("symbols"), key, max_symbols)
    if channel in ("candles", "trades"):
        symbol = _symbol(msg.get("symbol"), key)
        if channel == "candles":
            interval = msg.get("interval", "1m")
            if interval not in INTERVALS:
                raise ProtocolError("bad_request", f"interval must be one of {', '.join(INTERVALS)}", key)
            return (symbol, interval)
        limit = msg.get("limit", min(TRADES_LIMIT, tape_length))
        if type(limit) is not int or not 1 <= limit <= tape_length:
            raise ProtocolError("bad_request", f"limit must be 1..{tape_length}", key)
        return (symbol, limit)
    return ()


def _board(symbols: Any, key: dict, max_symbols: int) -> tuple | str:
    if isinstance(symbols, str):
        group = symbols.strip().upper()
        if group in GROUPS:
            return group
        raise ProtocolError(
            "bad_request", f"symbols is a list of symbols or one of {', '.join(GROUPS)}", key
        )
    if not isinstance(symbols, list) or not symbols:
        raise ProtocolError("bad_request", "board needs \"symbols\": a non-empty list, VN30, an exchange or \"*\"", key)
    names = {_symbol(s, key) for s in symbols}
    if len(names) > max_symbols:
        raise ProtocolError("too_many_symbols", f"at most {max_symbols} symbols per board subscription", key)
    return tuple(sorted(names))


def _symbol(value: Any, key: dict) -> str:
    symbol = value.strip().upper() if isinstance(value, str) else ""
    if not _SYMBOL.fullmatch(symbol):
        raise ProtocolError("bad_request", f"not a symbol: {value!r}", key)
    return symbol


# -- what we send ---------------------------------------------------------------------


def encode_key(channel: str, key: dict) -> str:
    """The fixed start of every message of one subscription."""
    return '{"channel":' + _JSON.encode(channel).decode() + ',"key":' + _JSON.encode(key).decode()


def prefix(head: str, kind: str, seq: int, session: str) -> str:
    """A message up to its data: ``{"channel","key","type","seq","session","data":``, the
    part that differs between the clients of one update (head from encode_key)."""
    return f'{head},"type":"{kind}","seq":{seq},"session":{session},"data":'


def message(head: str, kind: str, seq: int, session: str, data: str) -> str:
    """``{"channel","key","type","seq","session","data"}``: head from encode_key."""
    return prefix(head, kind, seq, session) + data + "}"


# -- ?compression=deflate: the same text as one raw DEFLATE stream (RFC 1951) ---------------

COMPRESSIONS = ("deflate",)
# Measured on full-market board data (docs/ws.md, Compression). An update is compressed once
# for all its clients and sent all day: level 6 makes it 25 % smaller than level 1 for
# ~0.16 ms more, once. A subscribe's snapshot (~1 MB for '*') is compressed for its client
# alone and sent once: level 1 takes 4.5 ms of the event loop where 6 takes 17.
DEFLATE_LEVEL = 6
SNAPSHOT_LEVEL = 1
_STORED_MAX = 65535  # a stored block holds at most this many bytes


def compression(value: str | None) -> str | None:
    """The ``compression`` query parameter checked: None or ``deflate``; else ProtocolError."""
    if value is None or value in COMPRESSIONS:
        return value
    shown = value if len(value) <= 24 else value[:24] + "..."
    raise ProtocolError("bad_compression", f"unknown compression {shown!r}: use compression=deflate, or leave it out")


def stored(raw: bytes) -> bytes:
    """``raw`` as non-final stored deflate blocks: the start of a stream that
    :func:`deflated`'s output continues (each block begins on a byte boundary)."""
    out = bytearray()
    for at in range(0, len(raw), _STORED_MAX):
        chunk = raw[at : at + _STORED_MAX]
        n = len(chunk)
        out += bytes((0, n & 0xFF, n >> 8, ~n & 0xFF, (~n >> 8) & 0xFF))
        out += chunk
    return bytes(out)


def deflated(raw: bytes, level: int = DEFLATE_LEVEL) -> bytes:
    """``raw`` as a whole raw deflate stream, its last block final."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    return packer.compress(raw) + packer.flush(zlib.Z_FINISH)


class Data:
    """One rendered data (an update's, a snapshot's), shared by every subscriber offered
    it: compressed at most once, by the first deflate client that sends it."""

    __slots__ = ("text", "level", "_tail")

    def __init__(self, text: str, level: int = DEFLATE_LEVEL) -> None:
        self.text = text
        self.level = level
        self._tail: bytes | None = None

    def tail(self) -> bytes:
        """``text + "}"`` (the data and the message's closing brace), deflated."""
        if self._tail is None:
            self._tail = deflated((self.text + "}").encode(), self.level)
        return self._tail


def deflated_message(head: str, kind: str, seq: int, session: str, data: Data) -> bytes:
    """:func:`message` as one raw deflate stream: this client's prefix in stored blocks,
    then the data's shared compressed tail."""
    return stored(prefix(head, kind, seq, session).encode()) + data.tail()


def error(exc: ProtocolError) -> str:
    body: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
    if exc.key is not None:
        body["key"] = exc.key
    return _JSON.encode(body).decode()


def reply(kind: str, **fields: Any) -> str:
    """A short acknowledgement, e.g. ``{"type":"unsubscribed","channel":...,"key":...}``."""
    return _JSON.encode({"type": kind, **fields}).decode()
