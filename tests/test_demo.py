"""`stock-tracker demo`: one consistent simulated day at any hour, as a newcomer runs it."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, time as time_of_day, timedelta

import httpx
import orjson
import pytest

from app import keys as K
from app.clock import VN_TZ, latest_weekday, now_vn
from app.demo import listen, start_demo, subscription
from app.ingest.demo_clock import CONTINUOUS, FALLBACK, SimClock, plan
from app.ingest.live import channels_for
from app.sim import VN30_SYMBOLS, MarketSimulator
from app.ingest.writer import StreamWriter, close_at_three
from app.projections import read, worker
from app.local_redis import free_port
from tests.apiserver import until

SEED = 1
SPEED = 30.0
# A short catch-up keeps the tests quick: the futures' and stocks' opening auctions,
# the opening burst at 09:15:00 and two minutes of continuous trading.
CATCH_UP_TO = time_of_day(9, 17)
LIVE_FRAMES = 2_000  # sent by the fake FastConnect after the catch-up, through our SignalR client


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL"}


def recent(weekday: int, at: time_of_day) -> datetime:
    """The latest date up to the real today with that weekday (0 = Monday), at ``at``.

    Never after the real date: the session routing refuses frames dated after the day
    they are received, and the demo's frames are received now.
    """
    today = now_vn().date()
    return datetime.combine(today - timedelta(days=(today.weekday() - weekday) % 7), at, VN_TZ)


def a_weekday(at: time_of_day) -> datetime:
    return recent(latest_weekday(now_vn().date()).weekday(), at)


# ---- the plan: which simulated day and time, from the wall clock ------------------------------

MONDAY = datetime(2026, 11, 30, tzinfo=VN_TZ)


@pytest.mark.parametrize(
    "days, at, start, reason",
    [
        (0, (12, 30), FALLBACK, "lunch"),
        (2, (14, 50), FALLBACK, "after_hours"),
        (3, (20, 0), FALLBACK, "after_hours"),
        (1, (8, 0), FALLBACK, "before_open"),
        (4, (14, 25), time_of_day(14, 25), "real_time"),
        (0, (10, 37, 12, 500_000), time_of_day(10, 37, 12), "real_time"),
        (0, (9, 15), time_of_day(9, 15), "real_time"),
        (0, (11, 27), FALLBACK, "lunch_soon"),
        (0, (14, 28), FALLBACK, "close_soon"),
        (5, (12, 0), FALLBACK, "weekend"),
        (6, (3, 0), FALLBACK, "weekend"),
    ],
)
def test_plan_always_picks_continuous_trading_on_a_day_no_later_than_today(days, at, start, reason):
    now = MONDAY + timedelta(days=days) + timedelta(hours=at[0], minutes=at[1], seconds=at[2] if len(at) > 2 else 0,
                                                    microseconds=at[3] if len(at) > 3 else 0)
    chosen = plan(now)
    assert (chosen.start, chosen.reason) == (start, reason)
    assert chosen.date.weekday() < 5 and chosen.date <= now.date()
    # A weekend plays the Friday before; a weekday plays itself.
    assert chosen.date == (now.date() if days < 5 else now.date() - timedelta(days=days - 4))
    assert any(opens <= chosen.start < closes for opens, closes in CONTINUOUS)
    assert chosen.start_at.tzinfo is not None and chosen.start_at.time() == chosen.start


def test_plan_reads_the_clock_in_vietnam_time():
    # 05:30 UTC on a Saturday is 12:30 in Hanoi, still Saturday: the Friday before.
    chosen = plan(datetime.fromisoformat("2026-12-05T05:30:00+00:00"))
    assert (str(chosen.date), chosen.reason) == ("2026-12-04", "weekend")
    # 02:30 UTC on a Monday is 09:30 in Hanoi: the real time.
    chosen = plan(datetime.fromisoformat("2026-11-30T02:30:00+00:00"))
    assert (chosen.start, chosen.reason) == (time_of_day(9, 30), "real_time")


# ---- the real pieces: catch-up into the stream, then the fake FastConnect and our client --------


def _parse(frame: bytes) -> tuple[str, dict]:
    outer = orjson.loads(frame)
    return outer["DataType"], orjson.loads(outer["Content"])


async def _check_one_day(redis, settings, date: str, catch_up_frames: int) -> None:
    """Every figure of the session comes from one simulated day, from its start."""
    keys = K.SessionKeys(date)
    entries = await redis.xrange(keys.frames)
    frames = [fields[b"f"] for _, fields in entries if b"f" in fields]
    assert len(frames) > catch_up_frames + LIVE_FRAMES // 2, "the live part did not land"
    # No frame lost or doubled, in the catch-up, at the hand-over or through SignalR: the
    # stream is the simulator's day (as subscribed) from its first frame, in order.
    wanted = subscription(await channels_for(settings, list(VN30_SYMBOLS), datetime.fromisoformat(date)))
    sim = MarketSimulator(seed=SEED, start=datetime.fromisoformat(date).date(), days=1, channels=wanted.channels)
    expected = (ev.frame.encode() for ev in sim.events() if ev.frame is not None and wanted(ev))
    assert frames == list(itertools.islice(expected, len(frames)))
    assert await redis.xlen(keys.dead) == 0
    assert int(await redis.hget(keys.meta, "dead") or 0) == 0

    top_vol: dict[str, int] = {}
    last_r: dict[str, dict] = {}
    trades: list[tuple[str, str, int]] = []  # (time, symbol, TotalVol)
    vn30_index = None
    for frame in frames:
        kind, c = _parse(frame)
        if kind == "X-TRADE":
            top_vol[c["Symbol"]] = max(top_vol.get(c["Symbol"], 0), int(c["TotalVol"]))
            trades.append((c["Time"], c["Symbol"], int(c["TotalVol"])))
        elif kind == "R":
            last_r[c["Symbol"]] = c
        elif kind == "MI" and c["IndexId"] == "VN30":
            vn30_index = c

    snap = await read.market_snapshot(redis)
    assert snap.quotes, "no trades on the board"
    for sym, stats in snap.quotes.items():
        # The board's volume is the exchange's cumulative volume: the day from its start.
        assert stats.total_volume == top_vol[sym], sym
        assert stats.last_updated.startswith(date)
    for sym, r in last_r.items():
        foreign = await redis.hgetall(keys.entity("foreign", sym))
        bought = int(foreign[b"buy_volume"])
        assert bought == int(r["BuyVol"]), sym
        assert bought <= (snap.quotes[sym].total_volume if sym in snap.quotes else 0), sym
    assert snap.foreign.total_buy_volume == sum(int(r["BuyVol"]) for r in last_r.values())
    # The VN30 index counts the constituents' trades up to its own time.
    index = snap.indices["VN30"]
    assert index.total_volume == int(vn30_index["TotalQtty"]) and index.last_updated.startswith(date)
    at = vn30_index["Time"]

    def volume_up_to(before) -> int:
        tops: dict[str, int] = {}
        for t, sym, vol in trades:
            if before(t) and sym in VN30_SYMBOLS:
                tops[sym] = max(tops.get(sym, 0), vol)
        return sum(tops.values())

    assert volume_up_to(lambda t: t < at) <= index.total_volume <= volume_up_to(lambda t: t <= at)
    assert index.total_volume > 0


@pytest.mark.parametrize(
    "when",
    [a_weekday(time_of_day(12, 30)), a_weekday(time_of_day(14, 50)), a_weekday(time_of_day(20, 0)),
     recent(5, time_of_day(12, 0))],
    ids=["weekday-12:30", "weekday-14:50", "weekday-20:00", "saturday"],
)
@pytest.mark.anyio
async def test_demo_started_at_any_hour_trades_one_consistent_day(redis, settings, when):
    chosen = plan(when)
    sock = listen("127.0.0.1", 0)
    async with start_demo(settings, redis, sock, speed=SPEED, seed=SEED, clock=lambda: when,
                          planner=lambda now: plan(now)._replace(start=CATCH_UP_TO)) as demo:
        assert demo.plan.date == chosen.date and demo.plan.reason == chosen.reason
        assert demo.catch_up.frames > 10_000  # the day from its start, not from the live part
        assert demo.fake.stats.frames_sent == 0  # nothing through SignalR before the catch-up landed
        await until(check(lambda: demo.fake.stats.frames_sent >= LIVE_FRAMES), timeout=60)
        await asyncio.wait_for(demo.caught_up.wait(), 60)
        assert demo.fake.stats.frames_dropped == 0
        # The simulated clock runs from the plan's start, at the demo's speed.
        assert demo.clock.now() > demo.plan.start_at
        async with httpx.AsyncClient(base_url=demo.api_url, timeout=5) as http:
            feed = (await http.get("/api/feed")).json()
            snapshot = (await http.get("/api/market/snapshot")).json()
            page = (await http.get("/")).text
        assert feed["simulated"] is True and feed["connected"] is True
        assert (feed["sim_date"], feed["sim_from"], feed["phase"]) == (str(chosen.date), "09:17:00", "live")
        assert snapshot["quotes"] and {"VN30", "VNINDEX", "HNXIndex"} <= set(snapshot["indices"])
        assert 'id="sim-badge"' in page and "MÔ PHỎNG" in page
        live_trades = [s for s in snapshot["quotes"].values() if s["last_updated"] > f"{chosen.date}T09:17:00"]
        assert live_trades, "no trade after the catch-up reached the page"
    # The feed's fields say no more that the market is simulated once the demo is gone.
    assert await redis.hget(K.FEED_STATUS, "simulated") is None
    await worker.drain(redis, settings)  # what the demo's client appended as it stopped
    await _check_one_day(redis, settings, str(chosen.date), demo.catch_up.frames)


def check(cond):
    """``cond`` as the async predicate ``until`` polls."""
    async def predicate():
        return cond()
    return predicate


@pytest.mark.anyio
async def test_the_session_closes_at_simulated_three_and_only_once(redis):
    """The close marker follows the simulated clock, whatever the wall clock says."""
    day = datetime(2026, 12, 2, tzinfo=VN_TZ)
    paced = [day.replace(hour=14, minute=59, second=58)]  # what the fake's pacing says; None: it stopped
    reads, mono = [0], [0.0]

    def read_clock():
        reads[0] += 1
        mono[0] += 0.5  # each look at the clock: half a real second later
        return paced[0]

    clock = SimClock(day.replace(hour=10), speed=1e6, read=read_clock, end=day.replace(hour=15),
                     monotonic=lambda: mono[0])
    writer = StreamWriter(redis)
    closer = asyncio.create_task(close_at_three(writer, clock.now, clock.sleep))
    frames = K.SessionKeys("2026-12-02").frames
    try:
        # While the simulated clock stands before 15:00 it is read again and again (the
        # wait is in simulated time), and no marker is written.
        await until(check(lambda: reads[0] > 20), timeout=10)
        assert await redis.xlen(frames) == 0
        # The day's last frame is out: the fake stops pacing, the clock runs on by itself.
        paced[0] = None
        await until(lambda: redis.xlen(frames), timeout=10)
        (_, marker), = await redis.xrange(frames)
        three = day.replace(hour=15)
        assert marker == {b"m": b"close", b"t": str(int(three.timestamp() * 1000)).encode()}
        # The simulated day is over: its clock stops at 15:00, so no next day's close follows.
        seen = reads[0]
        await until(check(lambda: reads[0] > seen + 10), timeout=30)
        assert clock.now() == three and await redis.xlen(frames) == 1
        assert await redis.zrange(K.SESSIONS, 0, -1) == [b"2026-12-02"]
    finally:
        closer.cancel()
        await asyncio.gather(closer, return_exceptions=True)


# ---- the command as a newcomer runs it ------------------------------------------------------------


def test_demo_on_a_busy_port_says_so_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "app", "demo", "--port", str(port)], env=_env(),
                              capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("stock-tracker: ") and f"port {port}" in lines[0] and "--port" in lines[0]
    assert "Traceback" not in proc.stderr and "Uvicorn running" not in proc.stderr
    assert "open http" not in proc.stdout  # nothing was started
    assert time.monotonic() - started < 30


def test_demo_serves_a_live_market_and_stops_cleanly_on_ctrl_c():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "demo", "--port", str(port), "--speed", "20"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        snapshot, feed = {}, {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            try:
                snapshot = httpx.get(f"http://127.0.0.1:{port}/api/market/snapshot", timeout=2).json()
                feed = httpx.get(f"http://127.0.0.1:{port}/api/feed", timeout=2).json()
            except httpx.HTTPError:
                snapshot, feed = {}, {}
            if snapshot.get("quotes") and snapshot.get("indices") and feed.get("phase") == "live":
                break
            time.sleep(0.2)
        assert snapshot.get("quotes"), "no trades reached the API within 90 s"
        assert {"VN30", "VNINDEX", "HNXIndex"} <= set(snapshot["indices"])
        assert feed["simulated"] is True and feed["phase"] == "live", feed  # the catch-up is folded
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-3000:]
        assert f"http://127.0.0.1:{port}/" in out
        assert "event=store kind=" in err and "event=demo_stop" in err
        ready = next(line for line in err.splitlines() if "event=demo_ready" in line)
        assert "simulated_date=" in ready and "simulated_from=" in ready and "catch_up_frames=" in ready
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- the page says so ---------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")


@pytest.mark.anyio
@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
async def test_the_page_shows_the_simulated_badge_and_clock(redis, settings, tmp_path):
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    when = a_weekday(time_of_day(20, 0))
    sock = listen("127.0.0.1", 0)
    async with start_demo(settings, redis, sock, speed=SPEED, seed=SEED, clock=lambda: when,
                          planner=lambda now: plan(now)._replace(start=CATCH_UP_TO)) as demo, \
            playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            # During the catch-up the clock shows how far the fold has got; what follows
            # is about the page once the demo is live.
            await asyncio.wait_for(demo.caught_up.wait(), 60)
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(demo.api_url)
            badge = page.locator("#sim-badge")
            await badge.wait_for(state="visible", timeout=30_000)
            assert "MÔ PHỎNG" in await badge.inner_text()
            assert str(demo.plan.date.strftime("%d/%m/%Y")) in await badge.get_attribute("title")
            # The badge's clock is the newest simulated event time, HH:MM:SS, and it ticks.
            first = await page.wait_for_function(
                """() => {
                    const v = document.querySelector("#sim-clock").dataset.value;
                    return v && v === document.querySelector("#last-update").dataset.value ? v : null;
                }""", timeout=30_000)
            first = await first.json_value()
            assert first.startswith(str(demo.plan.date)) and first[11:19] >= "09:17:00"
            await page.wait_for_function("(v) => document.querySelector('#sim-clock').dataset.value > v",
                                         arg=first, timeout=30_000)
            shown, latest = await page.evaluate(
                "() => { const n = document.querySelector('#sim-clock'); return [n.textContent, n.dataset.value]; }")
            assert shown == latest[11:19]  # HH:MM:SS of the newest event
            await page.screenshot(path=str(tmp_path / "demo.png"))
            assert not errors, errors
        finally:
            await browser.close()
