"""Archives: a session's stream kept as a file past retention, and restored exactly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app import keys as K
from app.ingest.writer import StreamWriter, delete_session
from app.projections import worker
from app.replay import live_hashes
from tests import factory as F
from tests.test_worker import without_checkpoint

pytestmark = pytest.mark.anyio

RECEIVED = 1_795_600_000_000  # 2026-11-25 in Vietnam


def session_frames() -> list[str]:
    return [
        "{}",  # before any dated frame: joined the receive date's session, dead there
        F.quote("ACB", 22900, 22950, time="09:20:00"),
        F.trade("ACB", 22950, 100, 100, time="09:20:01"),
        "not json",
        F.trade("ACB", 22900, 300, 400, time="09:20:02", side="SD"),
        F.foreign("ACB", 1000, 200, "09:20:05"),
        F.index("VN30", 1900.0, "09:20:05"),
        F.trade("VN30F2612", 1905.1, 4, 4, time="09:21:11"),
    ]


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=60)


async def stream(redis, date=F.SESSION):
    return [(e[1].get(b"t"), e[1].get(b"f"), e[1].get(b"m")) for e in await redis.xrange(K.SessionKeys(date).frames)]


async def test_an_archive_restores_the_session_exactly(redis, settings, redis_server, tmp_path):
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED + i) for i, f in enumerate(session_frames())], session=F.SESSION)
    await writer.close_session(F.SESSION, RECEIVED + 60_000)
    await writer.append([(F.trade("ACB", 23000, 100, 500, time="15:01:00"), RECEIVED + 61_000)])
    await worker.drain(redis, settings)
    before_stream, before_hashes = await stream(redis), await live_hashes(redis, F.SESSION)

    env = {**os.environ, "REDIS_URL": redis_server.url}
    out = tmp_path / "day.jsonl.gz"
    done = cli(env, "archive", "--date", F.SESSION, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "archived 10 entries" in done.stderr

    refused = cli(env, "ingest", "--file", str(out))
    assert refused.returncode == 1 and "already has a stream" in refused.stderr
    assert "Traceback" not in refused.stderr

    await delete_session(redis, F.SESSION)
    assert await stream(redis) == []
    assert cli(env, "ingest", "--file", str(out)).returncode == 0
    assert cli(env, "project", "--drain").returncode == 0
    assert await stream(redis) == before_stream  # same frames, same receive times, the marker
    # Entry ids are new (Redis assigns them), so is the checkpoint that names one.
    assert without_checkpoint(await live_hashes(redis, F.SESSION)) == without_checkpoint(before_hashes)
    verify = cli(env, "replay", "--date", F.SESSION, "--verify")
    assert verify.returncode == 0 and "identical" in verify.stdout


async def test_retention_archives_before_it_deletes_and_keeps_what_it_could_not_archive(redis, tmp_path):
    old, newest = "2026-11-10", F.SESSION
    writer = StreamWriter(redis, retention_days=7, archive_dir=str(tmp_path / "missing-dir"))
    await writer.append([(F.trade("ACB", 22950, 100, 100, date="10/11/2026"), RECEIVED)])
    await writer.append([(F.trade("ACB", 22950, 100, 100), RECEIVED)])
    assert await writer.prune(newest) == []  # the archive could not be written: nothing deleted
    assert await redis.exists(K.SessionKeys(old).frames)

    writer.archive_dir = str(tmp_path)
    assert await writer.prune(newest) == [old]
    assert not await redis.exists(K.SessionKeys(old).frames)
    assert (tmp_path / f"stock-tracker-{old}.jsonl.gz").stat().st_size > 0
    assert await redis.exists(K.SessionKeys(newest).frames)


async def test_archiving_an_unknown_session_is_one_line(redis, redis_server, tmp_path):
    env = {**os.environ, "REDIS_URL": redis_server.url}
    done = cli(env, "archive", "--date", "2026-11-20", "--out", str(tmp_path / "x.gz"))
    assert done.returncode == 1 and done.stderr.strip() == "stock-tracker: no session 2026-11-20 to archive"
    assert not (tmp_path / "x.gz").exists() and not (tmp_path / "x.gz.partial").exists()
