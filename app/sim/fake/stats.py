"""What a fake server has sent: counters, and per-socket digests of the Broadcast strings."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["FakeStats", "SentRecord", "frames_digest"]


def frames_digest(frames: Iterable[str | bytes] = (), into: hashlib.blake2b | None = None) -> hashlib.blake2b:
    """blake2b-128 over Broadcast strings in order, each followed by NUL (never inside a JSON text).

    Pass ``into`` to extend a running digest; ``.hexdigest()`` is what ``/_fake/stats`` shows.
    """
    h = hashlib.blake2b(digest_size=16) if into is None else into
    for frame in frames:
        h.update(frame.encode() if isinstance(frame, str) else frame)
        h.update(b"\0")
    return h


class SentRecord:
    """Broadcast strings handed to one socket: how many, and their digest in order."""

    __slots__ = ("conn", "frames", "digest")

    def __init__(self, conn: str) -> None:
        self.conn = conn
        self.frames = 0
        self.digest = frames_digest()


@dataclass
class FakeStats:
    """Counters of one fake server (read them, don't write them)."""

    connections_open: int = 0
    connections_total: int = 0
    negotiations: int = 0
    tokens_issued: int = 0
    frames_generated: int = 0
    frames_sent: int = 0  # Broadcast invocations delivered, all connections
    frames_dropped: int = 0  # lost to full per-connection queues
    keepalives_sent: int = 0
    frames_sent_by_conn: dict[str, int] = field(default_factory=dict)
    # One entry per socket, in connection order: a reconnect transport reuses its id, so
    # only this list tells two sockets of one connection apart.
    sent_by_conn: list[SentRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "negotiations": self.negotiations,
            "tokens_issued": self.tokens_issued,
            "frames_generated": self.frames_generated,
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
            "keepalives_sent": self.keepalives_sent,
            "frames_sent_by_conn": dict(self.frames_sent_by_conn),
            "sent_by_conn": [{"conn": s.conn, "frames": s.frames, "digest": s.digest.hexdigest()}
                             for s in self.sent_by_conn],
        }
