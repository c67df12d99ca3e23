"""What crosses Redis between processes: each message is one msgspec Struct, encoded by
the side that writes it and decoded by the side that reads it.
"""

from __future__ import annotations

import msgspec


class Notice(msgspec.Struct):
    """Published on the session's ``st:{DATE}:notify`` after each applied batch: which
    session, which kinds changed (names of app.projections.kinds), and the checkpoint now
    applied.

    ``names`` says which entities changed, per kind shown by a channel (symbols, index
    ids), so an API node reads only those; ``closed`` is the session's state after the
    batch (the batch that folds the close marker publishes a notice for it).
    """

    date: str
    kinds: list[str]
    checkpoint: str = ""
    names: dict[str, list[str]] = {}
    closed: bool = False


class FeedStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Whether the feed side is connected to SSI.

    Kept in the ``st:feed`` hash (all fields) and published on ``st:feed:status`` on
    each change (``{"connected": bool}``: the API nodes need only that).
    """

    connected: bool
    since: str | None = None  # ISO 8601, when it last changed
    gaps: int | None = None  # connections lost with frames possibly missed, so far
