"""Our FastConnect client against the fake FastConnect server: subscribe, receive, faults."""

from __future__ import annotations

import asyncio
import json
from datetime import date, time

import httpx
import pytest
import uvicorn

from app import keys as K
from app.config import Settings
from app.sim.fake import FakeFastConnect
from app.ingest.live import run_live
from app.ingest.signalr import FastConnectStream, FeedConfig
from app.projections import worker
from app.projections.read import market_snapshot
from app.local_redis import free_port
from tests.apiserver import until

pytestmark = pytest.mark.anyio

DAY = date(2026, 11, 25)


class RunningFake:
    """The fake served by uvicorn inside the test's event loop."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("start", DAY)
        kwargs.setdefault("open_at", time(10, 0))
        kwargs.setdefault("speed", 20.0)
        kwargs.setdefault("keepalive_s", 0.5)
        self.fake = FakeFastConnect(**kwargs)
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(self.fake.app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on")
        )
        self.task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def __aenter__(self) -> "RunningFake":
        self.task = asyncio.create_task(self.server.serve())
        await until(lambda: _true(self.server.started), timeout=10)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)

    async def admin(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return await client.post(path)

    async def stats(self) -> dict:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return (await client.get("/_fake/stats")).json()


async def _true(value) -> bool:
    return bool(value)


def config(fake: RunningFake, channels=("X-QUOTE:ACB-VCB", "X-TRADE:ACB-VCB", "MI:VN30")) -> FeedConfig:
    return FeedConfig(
        url=fake.url, stream_url=fake.url, consumer_id="demo", consumer_secret="demo",
        channels=channels, backoff_initial_s=0.05, backoff_max_s=0.2,
    )


class Collector:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.status: list[bool] = []

    async def frame(self, text: str) -> None:
        self.frames.append(text)

    async def set_status(self, connected: bool) -> None:
        self.status.append(connected)

    def types(self) -> set[tuple[str, str]]:
        out = set()
        for f in self.frames:
            outer = json.loads(f)
            content = json.loads(outer["Content"])
            out.add((outer["DataType"], content.get("Symbol") or content.get("IndexId")))
        return out


async def start_stream(fake: RunningFake, **kw):
    got = Collector()
    stream = FastConnectStream(config(fake, **kw), got.frame, got.set_status)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    return stream, got, stop, task


async def finish(stream, stop, task) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)
    await stream.http.aclose()


async def test_subscribe_and_receive_only_what_was_asked():
    async with RunningFake() as fake:
        stream, got, stop, task = await start_stream(fake)
        await until(lambda: _true(len(got.frames) >= 50), timeout=15)
        await finish(stream, stop, task)
    kinds = got.types()
    assert {t for t, _ in kinds} <= {"X-QUOTE", "X-TRADE", "MI"}
    assert {s for _, s in kinds} <= {"ACB", "VCB", "VN30"}
    assert ("X-QUOTE", "ACB") in kinds
    assert got.status[:1] == [True] and got.status[-1] is False
    # Frames arrive as the exact Broadcast strings: compact JSON with a string Content.
    assert all(f.startswith('{"DataType":"') and '"Content":"{' in f for f in got.frames)


@pytest.mark.parametrize("fault", ["/_fake/drop", "/_fake/expire-tokens"])
async def test_reconnects_after_the_socket_drops_or_the_token_expires(fault):
    async with RunningFake() as fake:
        stream, got, stop, task = await start_stream(fake)
        await until(lambda: _true(got.frames), timeout=15)
        assert (await fake.admin(fault)).status_code < 300
        await until(lambda: _true(stream.connects >= 2 and stream.connected), timeout=15)
        seen = len(got.frames)
        await until(lambda: _true(len(got.frames) > seen + 10), timeout=15)
        await finish(stream, stop, task)
    assert got.status.count(True) >= 2 and False in got.status


async def test_a_stalled_feed_trips_the_watchdog():
    async with RunningFake() as fake:
        stream, got, stop, task = await start_stream(fake)
        await until(lambda: _true(got.frames), timeout=15)
        await fake.admin("/_fake/stall?seconds=3")
        # KeepAliveTimeout is 2 x 0.5 s: the client gives up on the silent socket.
        await until(lambda: _true(stream.connects >= 2), timeout=15)
        await finish(stream, stop, task)


async def test_a_rejected_token_is_retried_until_accepted():
    async with RunningFake() as fake:
        await fake.admin("/_fake/reject-tokens?on=1")
        stream, got, stop, task = await start_stream(fake)
        await until(lambda: _true(stream.failures >= 2), timeout=15)
        assert not stream.connected and not got.frames
        await fake.admin("/_fake/reject-tokens?on=0")
        await until(lambda: _true(stream.connected and got.frames), timeout=15)
        await finish(stream, stop, task)


async def test_live_ingest_projects_without_double_counting_across_reconnects(redis, redis_server):
    async with RunningFake() as fake:
        settings = Settings(
            redis_url=redis_server.url, ssi_url=fake.url, ssi_stream_url=fake.url,
            ssi_consumer_id="demo", ssi_consumer_secret="demo", projector_block_ms=50,
        )
        statuses: list[bool] = []
        pubsub = redis.pubsub()
        await pubsub.subscribe(K.FEED_STATUS_CHANNEL)

        async def status_seen(expected):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                statuses.append(json.loads(message["data"])["connected"])
            return statuses == expected

        stop = asyncio.Event()
        ingest = asyncio.create_task(run_live(redis, settings, stop))
        session = DAY.isoformat()
        frames_key = K.SessionKeys(session).frames

        async def frames_in_stream(n):
            return await redis.xlen(frames_key) >= n

        await until(lambda: frames_in_stream(200), timeout=20)
        await until(lambda: status_seen([True]), timeout=20)
        await fake.admin("/_fake/drop")
        await until(lambda: status_seen([True, False, True]), timeout=20)  # reconnected
        target = await redis.xlen(frames_key) + 200
        await until(lambda: frames_in_stream(target), timeout=20)
        stop.set()
        stream = await asyncio.wait_for(ingest, 20)
        await pubsub.aclose()
    assert stream.connects >= 2
    assert await redis.hget(K.FEED_STATUS, "connected") == b"false"
    symbols = (await redis.hget(K.VN30_COMPONENTS, "symbols")).decode().split(",")
    assert len(symbols) == 30
    await worker.drain(redis, Settings(redis_url=redis_server.url))
    snap = await market_snapshot(redis, session)
    # Rule 1: a symbol's session volume is its first trade's LastVol plus every
    # later TotalVol increase, however often the feed reconnected or repeated.
    first: dict[str, tuple[int, int]] = {}
    top: dict[str, int] = {}
    for _, fields in await redis.xrange(frames_key):
        outer = json.loads(fields[b"f"])
        if outer["DataType"] != "X-TRADE":
            continue
        content = json.loads(outer["Content"])
        sym, total = content["Symbol"], int(content["TotalVol"])
        first.setdefault(sym, (int(content["LastVol"]), total))
        top[sym] = max(top.get(sym, 0), total)
    assert first, "no trades came through"
    for sym, (last_vol, total) in first.items():
        assert snap.quotes[sym].total_volume == last_vol + top[sym] - total, sym


async def test_vn30_constituents_are_kept_from_the_last_good_fetch(redis):
    from app.ingest.live import feed_config, vn30_components
    from app.ingest.signalr import FeedError, TokenSource

    async with RunningFake() as fake:
        settings = Settings(ssi_url=fake.url, ssi_stream_url=fake.url, ssi_consumer_id="demo", ssi_consumer_secret="demo")
        cfg = feed_config(settings)
        async with httpx.AsyncClient() as http:
            fresh = await vn30_components(redis, cfg, TokenSource(cfg, http))
            assert len(fresh) == 30
            assert (await redis.hget(K.VN30_COMPONENTS, "symbols")).decode() == ",".join(fresh)
            await fake.admin("/_fake/reject-tokens?on=1")
            assert await vn30_components(redis, cfg, TokenSource(cfg, http)) == fresh
            await redis.delete(K.VN30_COMPONENTS)
            with pytest.raises(FeedError, match="none are cached"):
                await vn30_components(redis, cfg, TokenSource(cfg, http))


async def test_record_then_ingest_the_recording(redis, tmp_path):
    from app.ingest.live import record
    from app.ingest.run import ingest_file

    out = tmp_path / "feed.jsonl"
    async with RunningFake() as fake:
        settings = Settings(
            ssi_url=fake.url, ssi_stream_url=fake.url, ssi_consumer_id="demo", ssi_consumer_secret="demo",
            ssi_channels="X-TRADE:ALL;MI:VN30",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(record(settings, out, stop, symbols=["ACB"]))

        async def enough():
            return out.exists() and len(out.read_bytes().splitlines()) >= 100

        await until(enough, timeout=20)
        stop.set()
        written = await asyncio.wait_for(task, 10)
    lines = out.read_text().splitlines()
    assert written == len(lines) >= 100
    assert {json.loads(line)["DataType"] for line in lines} <= {"X-TRADE", "MI"}
    assert await ingest_file(redis, Settings(), str(out), progress=False) == len(lines)
    assert await redis.xlen(K.SessionKeys(DAY.isoformat()).frames) == len(lines)


async def test_tokens_are_refreshed_before_they_expire():
    from app.ingest.signalr import TokenSource

    async with RunningFake(token_ttl_s=3600) as fake, httpx.AsyncClient() as http:
        tokens = TokenSource(config(fake), http)
        first = await tokens.get()
        assert await tokens.get() == first  # an hour left: reused
        issued = (await fake.stats())["tokens_issued"]
        clock = tokens.clock
        tokens.clock = lambda: clock() + 3600 - 300  # five minutes before expiry
        assert await tokens.get() != first
        assert (await fake.stats())["tokens_issued"] == issued + 1
