"""A session's stream as a compressed file: the truth, kept past retention.

The file is gzip'd JSON lines: a header, then one line per stream entry in stream order,
``{"t": receive_ms, "f": "<the frame, unchanged>"}`` or ``{"t": ms, "m": "close"}``.
``ingest --file`` of it restores the session exactly: the same frames with the same receive
times (so they route to the same session) and the close marker where it was, so a replay
of the restored stream rebuilds the same projections.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from redis.asyncio import Redis

from app import keys as K
from app.errors import UserError
from app.sessions import is_registered

MAGIC = b"\x1f\x8b"  # gzip: how ingest --file tells an archive from a JSONL of frames
CHUNK = 10_000


class Header(msgspec.Struct, kw_only=True):
    stock_tracker_archive: int = 1
    date: str
    entries: int


class Line(msgspec.Struct, kw_only=True, omit_defaults=True):
    t: int
    f: str | None = None
    m: str | None = None


_ENC = msgspec.json.Encoder()
_HEADER = msgspec.json.Decoder(Header)
_LINE = msgspec.json.Decoder(Line)


def default_path(directory: str | Path, date: str) -> Path:
    return Path(directory) / f"stock-tracker-{date}.jsonl.gz"


async def archive_session(redis: Redis, date: str, out: str | Path) -> int:
    """Write session ``date``'s stream to ``out`` (atomically: a temp file renamed); entries."""
    keys = K.SessionKeys(date)
    if not await is_registered(redis, date) or not await redis.exists(keys.frames):
        raise UserError(f"no session {date} to archive")
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    total = await redis.xlen(keys.frames)
    written = 0
    try:
        with gzip.open(tmp, "wb", compresslevel=6) as fh:
            fh.write(_ENC.encode(Header(date=date, entries=total)) + b"\n")
            start = "-"
            while True:
                entries = await redis.xrange(keys.frames, min=start, max="+", count=CHUNK)
                if not entries:
                    break
                lines = []
                for _, fields in entries:
                    t = int(fields.get(b"t", b"0"))
                    frame = fields.get(b"f")
                    if frame is not None:
                        lines.append(_ENC.encode(Line(t=t, f=frame.decode("utf-8", "surrogateescape"))))
                    else:
                        lines.append(_ENC.encode(Line(t=t, m=(fields.get(b"m") or b"").decode())))
                fh.write(b"\n".join(lines) + b"\n")
                written += len(entries)
                start = "(" + entries[-1][0].decode()
            if written < total:  # the stream was trimmed meanwhile: not a faithful copy
                raise UserError(f"session {date} changed while archiving ({written} of {total} entries)")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def is_archive(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == MAGIC


async def read_archive(path: str | Path, chunk: int = 4000) -> AsyncIterator[tuple[str, list[Line]]]:
    """(session date, entries) in chunks, in stream order."""
    with gzip.open(path, "rb") as fh:
        try:
            header = _HEADER.decode(fh.readline())
        except (msgspec.DecodeError, msgspec.ValidationError, OSError) as exc:
            raise UserError(f"{path} is not a stock-tracker archive ({exc})") from None
        batch: list[Line] = []
        for n, raw in enumerate(fh, 2):
            try:
                batch.append(_LINE.decode(raw))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise UserError(f"{path} line {n}: {exc}") from None
            if len(batch) >= chunk:
                yield header.date, batch
                batch = []
        if batch:
            yield header.date, batch
