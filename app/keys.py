"""The Redis key schema, in one place.

Every key of a session carries the hash tag ``{YYYY-MM-DD}`` so a session's stream,
projections and checkpoint live in one Redis Cluster slot and the atomic fold touches
one slot. See README "Redis keys".
"""

from __future__ import annotations

PREFIX = "st:"
SESSIONS = PREFIX + "sessions"  # ZSET: session date -> yyyymmdd
FEED_STATUS = PREFIX + "feed"  # hash: connected (true/false), since; kept by the feed side
FEED_STATUS_CHANNEL = PREFIX + "feed:status"  # pub/sub: {"connected": bool} on each change
VN30_COMPONENTS = PREFIX + "vn30"  # hash: symbols (comma list), updated_at; kept by the feed side
GROUP = "projector"


class SessionKeys:
    """Key names of one session (trading date ``YYYY-MM-DD``)."""

    __slots__ = ("date", "base", "frames", "dead", "meta", "lease", "derivatives", "foreign", "closed", "notify")

    def __init__(self, date: str) -> None:
        self.date = date
        self.base = f"{PREFIX}{{{date}}}:"
        self.frames = self.base + "frames"  # stream: raw frames (f, t) and close markers (m, t)
        self.dead = self.base + "dead"  # stream: refused frames (id, reason, f)
        self.meta = self.base + "meta"  # hash: checkpoint and counters
        self.lease = self.base + "lease"  # string: the projector that owns the stream
        self.derivatives = self.base + "derivatives"  # hash
        self.foreign = self.base + "foreign"  # hash: foreign summary
        self.closed = self.base + "closed"  # string: receive time (ms) of the close marker, once written
        # pub/sub channel of the session's change notices (sharded on a cluster: its slot's node)
        self.notify = self.base + "notify"

    def entity(self, kind: str, name: str) -> str:
        """Per-symbol (or per-index) hash, e.g. ``st:{2026-11-25}:stats:VNM``."""
        return f"{self.base}{kind}:{name}"

    def members(self, kind: str) -> str:
        """SET of the names that have an entity of ``kind``."""
        return f"{self.base}set:{kind}"

    def ingest_mark(self, writer: str) -> str:
        """String: the last batch number ``writer`` appended, so a retried batch lands once."""
        return f"{self.base}ingest:{writer}"

    def pattern(self) -> str:
        return f"{PREFIX}{{{self.date}}}:*"


def date_score(date: str) -> int:
    """``2026-11-25`` -> 20261125, the score in the sessions ZSET."""
    return int(date.replace("-", ""))
