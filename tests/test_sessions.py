"""Which session a frame joins and which session readers show (docs/rules.md, Sessions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime

import httpx
import pytest

from app import keys as K
from app.clock import VN_TZ
from app.ingest.routing import SessionRouter, receive_date, trading_date_of
from app.ingest.run import simulated_start
from app.ingest.writer import StreamWriter
from app.projections import worker
from app.projections.read import current_session, market_snapshot, resolve_session
from app.projections.session import fold, new_session
from app.schemas import SessionRef
from tests import factory as F
from tests.apiserver import ApiServer

pytestmark = pytest.mark.anyio

RECEIVED = 1_795_600_000_000  # 2026-11-25 11:26:40 in Vietnam
DAY = 86_400_000
MALFORMED = [
    "{}",
    '{"H":"FcMarketDataV2Hub","M":"Broadcast","A":[]}',
    '{"DataType":"X-QUOTE"}',
    "not json at all",
]


def day_frames(date: str) -> list[str]:
    return [
        F.quote("ACB", 22900, 22950, time="09:20:00", date=date),
        F.trade("ACB", 22950, 100, 1000, time="09:20:01", date=date),
        F.trade("ACB", 22900, 300, 1300, time="09:20:02", date=date),
        F.foreign("ACB", 1000, 200, "09:20:05", date=date),
        F.index("VN30", 1900.0, "09:20:05", date=date),
    ]


async def append(redis, frames, received=RECEIVED) -> StreamWriter:
    writer = StreamWriter(redis)
    await writer.append([(f, received) for f in frames])
    await writer.flush()
    return writer


def test_routing_follows_the_writers_own_dated_frames():
    router = SessionRouter()
    dated = F.trade("ACB", 22950, 100, 100, date="24/11/2026")
    # Before any dated frame, an undated one goes to the receive date.
    assert router.route(b"{}", RECEIVED) == "2026-11-25"
    assert router.route(dated.encode(), RECEIVED) == "2026-11-24"
    for odd in (
        b"{}",
        F.trade("ACB", 1, 1, 1, date="26/11/2026").encode(),  # after the receive date
        F.trade("ACB", 1, 1, 1, date="31/02/2026").encode(),  # no such day
        F.trade("ACB", 1, 1, 1, date="31/12/9999").encode(),
        F.trade("ACB", 1, 1, 1, date="24/11/2026x").encode(),
    ):
        assert router.route(odd, RECEIVED) == "2026-11-24"
    # A frame of the receive day itself is trusted and moves the current session.
    assert router.route(F.trade("ACB", 1, 1, 1).encode(), RECEIVED) == "2026-11-25"


def test_the_receive_date_is_the_vietnam_calendar_date():
    # 23:59 UTC on 24/11 is 06:59 on 25/11 in Vietnam; 17:00 UTC is midnight there.
    assert receive_date(int(datetime(2026, 11, 24, 23, 59, tzinfo=VN_TZ).timestamp() * 1000)) == "2026-11-24"
    assert receive_date(int(datetime(2026, 11, 25, 0, 0, tzinfo=VN_TZ).timestamp() * 1000)) == "2026-11-25"
    assert trading_date_of(b'{"DataType":"X","Content":"{\\"tradingdate\\":\\"01/12/2026\\"}"}') == "2026-12-01"


async def test_a_frame_dated_tomorrow_cannot_take_over_the_current_session(redis, settings):
    await append(redis, day_frames(F.DATE))
    tomorrow = F.index("VN30", 1.0, "09:00:00", date="26/11/2026")
    await append(redis, [tomorrow])
    assert await redis.zrange(K.SESSIONS, 0, -1) == [F.SESSION.encode()]
    await worker.drain(redis, settings)
    dead = await redis.xrange(K.SessionKeys(F.SESSION).dead)
    assert [d[1][b"f"].decode() for d in dead] == [tomorrow]
    assert b"is not session 2026-11-25" in dead[0][1][b"reason"]
    assert await current_session(redis) == F.SESSION
    assert (await market_snapshot(redis)).indices["VN30"].value == 1900.0


async def test_a_session_of_only_dead_or_skipped_entries_is_never_current(redis, settings):
    await append(redis, day_frames("24/11/2026"))
    # A new writer (say, a restarted ingest) with nothing dated yet: the receive date.
    await append(redis, [*MALFORMED, F.broadcast("B", {"Symbol": "ACB", "Time": "09:00:00"})], received=RECEIVED)
    await worker.drain(redis, settings)
    assert await redis.zrange(K.SESSIONS, 0, -1) == [b"2026-11-24", b"2026-11-25"]
    meta = await redis.hgetall(K.SessionKeys(F.SESSION).meta)
    assert meta[b"frames"] == b"0" and meta[b"dead"] == b"4" and meta[b"skipped"] == b"1"
    assert await current_session(redis) == "2026-11-24"
    assert await resolve_session(redis, None) == SessionRef(date="2026-11-24", closed=False)
    assert (await market_snapshot(redis)).quotes["ACB"].total_volume == 400


async def test_no_session_is_current_before_a_frame_is_folded(redis, settings):
    await append(redis, day_frames(F.DATE))
    assert await current_session(redis) is None
    assert await market_snapshot(redis) == await market_snapshot(redis, "2099-01-01")
    await worker.drain(redis, settings)
    assert await current_session(redis) == F.SESSION


async def test_a_recorded_file_with_broken_lines_stays_one_session_through_the_cli(tmp_path, redis, redis_server):
    """The command line as a user runs it: ingest --file, project --drain, snapshot."""
    lines = MALFORMED[:2] + day_frames("24/11/2026")[:3] + MALFORMED[2:] + day_frames("24/11/2026")[3:]
    path = tmp_path / "earlier-day.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "REDIS_URL": redis_server.url, "LOG_LEVEL": "WARNING"}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("ingest", "--file", str(path))
    run("project", "--drain")
    current = json.loads(run("snapshot"))
    by_date = json.loads(run("snapshot", "--date", "2026-11-24"))
    assert current == by_date
    assert current["quotes"]["ACB"]["total_volume"] == 400
    assert current["indices"]["VN30"]["value"] == 1900.0
    # The two lines before the first dated one went to the day the file was read: dead.
    sessions = [d.decode() for d in await redis.zrange(K.SESSIONS, 0, -1)]
    assert sessions[0] == "2026-11-24" and len(sessions) == 2
    dead_only = await redis.hgetall(K.SessionKeys(sessions[1]).meta)
    assert dead_only[b"dead"] == b"2" and dead_only[b"frames"] == b"0"
    assert int((await redis.hgetall(K.SessionKeys("2026-11-24").meta))[b"dead"]) == 2


@pytest.mark.parametrize(
    "content, reason",
    [
        ({"Symbol": "ACB\n"}, "bad Symbol 'ACB\\n'"),
        ({"Symbol": "acb"}, "bad Symbol 'acb' (expected upper-case"),
        ({"Time": "10:00:00\n"}, "bad Time '10:00:00\\n'"),
        ({"Time": "99:99:99"}, "bad Time '99:99:99'"),
        ({"Time": "24:00:00"}, "bad Time '24:00:00'"),
        ({"TradingDate": "25/11/2026\n"}, "bad TradingDate '25/11/2026\\n'"),
        ({"TradingDate": "31/02/2026"}, "bad TradingDate '31/02/2026'"),
    ],
)
def test_strict_validation_dead_letters_with_the_reason(content, reason):
    frame = {"TradingDate": F.DATE, "Time": "10:00:00", "Symbol": "ACB", "LastPrice": 22950.0,
             "LastVol": 100.0, "TotalVol": 100.0, **content}
    state = new_session(F.SESSION)
    dead = fold(state, F.broadcast("X-TRADE", frame))
    assert dead is not None and reason in dead.reason
    assert state.stats == {} and state.meta.dead == 1


def test_index_ids_keep_ssis_case_but_not_a_trailing_newline():
    state = new_session(F.SESSION)
    assert fold(state, F.index("HNXIndex", 250.0, "10:00:00")) is None
    dead = fold(state, F.index("VN30\n", 1900.0, "10:00:00"))
    assert dead is not None and "bad IndexId 'VN30\\n'" in dead.reason
    assert list(state.indices) == ["HNXIndex"]


async def test_values_are_exact_integers_and_tenths_through_rest(redis, settings, redis_server):
    frames = [
        F.quote("ACB", 22900, 22950, time="09:20:00"),
        F.trade("ACB", 22950, 100, 100, time="09:20:01"),
        F.trade("ACB", 22950, 300, 400, time="09:20:02"),
        # SSI's own float noise in a cumulative value.
        F.foreign("ACB", 1000, 200, "09:20:05", buy_val=185028289999.99728, sell_val=4590000.0),
        F.quote("VN30F2612", 1904.8, 1904.9, time="09:21:00"),
        F.trade("VN30F2612", 1904.9, 3, 3, time="09:21:01"),
        F.trade("VN30F2612", 1905.1, 7, 10, time="09:21:02"),
        F.trade("VN30F2612", 1905.3, 11, 21, time="09:21:03"),
        F.index("VN30", 1909.19, "09:21:04"),
    ]
    await append(redis, frames)
    await worker.drain(redis, settings)
    with ApiServer(redis_server.url) as node:
        async with httpx.AsyncClient(base_url=node.http, timeout=5) as client:
            snapshot = (await client.get("/api/market/snapshot")).text
            derivatives = (await client.get("/api/market/derivatives")).json()
    # Whole VND: JSON integers, never 9180000.0 or 1.8502829e11.
    assert '"mua_chu_dong_value":9180000,' in snapshot
    assert '"buy_value":185028290000,' in snapshot
    assert '"total_net_value":185023700000' in snapshot
    data = json.loads(snapshot)
    # Futures: sums in tenths of a point, one decimal: 1904.9*3 + 1905.1*7 + 1905.3*11.
    assert data["quotes"]["VN30F2612"]["mua_chu_dong_value"] == 40008.7
    assert '"mua_chu_dong_value":40008.7,' in snapshot
    # 1905.3 - 1909.19 is -3.8899999999998727 in floats.
    assert derivatives["basis"] == -3.89
    assert derivatives["basis_pct"] == -3.89 / 1909.19 * 100


def test_a_simulation_never_starts_on_a_day_ahead_of_the_clock():
    saturday, sunday = date(2026, 12, 5), date(2026, 12, 6)
    assert simulated_start(None, today=saturday) == date(2026, 12, 4)
    assert simulated_start(None, today=sunday) == date(2026, 12, 4)
    assert simulated_start(None, today=date(2026, 12, 7)) == date(2026, 12, 7)
    assert simulated_start(date(2026, 12, 2)) == date(2026, 12, 2)


async def test_simulating_a_sunday_is_refused_and_opens_no_session(redis, redis_server):
    env = {**os.environ, "REDIS_URL": redis_server.url}
    done = subprocess.run(
        [sys.executable, "-m", "app", "ingest", "--simulate", "--date", "2026-11-29", "--frames", "10"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "2026-11-29 is a Sunday" in done.stderr and "Traceback" not in done.stderr
    assert await redis.zrange(K.SESSIONS, 0, -1) == []


async def test_refused_frames_are_logged_not_silent(redis, settings, caplog):
    await append(redis, [*day_frames(F.DATE), F.index("VN30", 1.0, "09:00:00", date="26/11/2026")])
    with caplog.at_level("WARNING", logger="stock_tracker.projector"):
        await worker.drain(redis, settings)
    lines = [r.getMessage() for r in caplog.records if "event=dead_letters" in r.getMessage()]
    assert lines and "count=1" in lines[0] and "is not session 2026-11-25" in lines[0]
