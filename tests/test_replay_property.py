"""Property: one pass, any batching, and a killed-and-restarted worker all equal a clean replay."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from app import keys as K
from app.config import Settings
from app.ingest.writer import StreamWriter
from app.projections import codec, worker
from app.projections.session import fold, finish_batch, new_session
from app.replay import fold_stream, live_hashes
from app.store import connect
from tests import factory as F
from tests.stores import stores

SYMBOLS = ["AAA", "BBB", "VN30F2612", "41I1GC000"]
RECEIVED = 1_795_600_000_000  # 2026-11-25 in Vietnam


def _time(i: int) -> str:
    t = 9 * 3600 + i
    return f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


@st.composite
def frames(draw):
    n = draw(st.integers(min_value=1, max_value=60))
    out: list[str] = []
    clock = 0
    totals = {s: 0 for s in SYMBOLS}
    foreign = {s: [0, 0] for s in SYMBOLS}
    for _ in range(n):
        clock += draw(st.integers(min_value=0, max_value=90))
        t = _time(clock)
        sym = draw(st.sampled_from(SYMBOLS))
        price = draw(st.sampled_from([100.0, 100.5, 101.0, 99.5, 1900.0]))
        kind = draw(st.sampled_from(["quote", "trade", "x", "r", "mi", "junk", "repeat"]))
        if kind == "quote":
            bid = draw(st.sampled_from([0.0, 99.5, 100.0]))
            ask = draw(st.sampled_from([0.0, 100.5, 101.0]))
            out.append(F.quote(sym, bid, ask, time=t))
        elif kind in ("trade", "x"):
            step = draw(st.integers(min_value=-200, max_value=500))
            totals[sym] = max(0, totals[sym] + step)
            session = draw(st.sampled_from(["LO", "LO", "ATO", "ATC"]))
            last = draw(st.integers(min_value=0, max_value=300))
            if kind == "trade":
                total = draw(st.sampled_from([totals[sym], totals[sym], None]))
                out.append(F.trade(sym, price, last, total, time=t, session=session, ceiling=101.0, floor=99.5))
            else:
                out.append(F.snapshot_x(sym, price, last, totals[sym], bid=100.0, ask=100.5, time=t, session=session))
        elif kind == "r":
            fb = foreign[sym]
            fb[0] = max(0, fb[0] + draw(st.integers(min_value=-100, max_value=1000)))
            fb[1] = max(0, fb[1] + draw(st.integers(min_value=-100, max_value=1000)))
            out.append(F.foreign(sym, fb[0], fb[1], t))
        elif kind == "mi":
            out.append(F.index(draw(st.sampled_from(["VN30", "VNINDEX"])), 1890.0 + clock % 20, t))
        elif kind == "junk":
            out.append(draw(st.sampled_from(["{bad", '{"DataType":"X-TRADE","Content":"{}"}', '{"DataType":"ZZ","Content":"{}"}'])))
        elif out:
            out.append(out[-1])
    return out or [F.quote("AAA", 99.5, 100.5)]


def in_memory(frames_: list[str]) -> dict:
    state = new_session(F.SESSION)
    for f in frames_:
        fold(state, f)
    state.meta.checkpoint = "-"
    finish_batch(state)
    return codec.encode_all(state, K.SessionKeys(F.SESSION))


async def _check(url: str, frames_: list[str], batch: int, kill_after: int, kill_mode: str) -> None:
    redis = await connect(url)
    try:
        await redis.flushall()
        writer = StreamWriter(redis)
        await writer.append([(f, RECEIVED) for f in frames_])
        await writer.flush()
        settings = Settings(redis_url=url, projector_batch=batch, projector_lease_ms=5000)
        keys = K.SessionKeys(F.SESSION)

        first = worker.SessionProjector(redis, F.SESSION, settings, consumer="first")
        assert await first.acquire()
        for _ in range(kill_after):
            await first.step()
        if kill_mode == "after_read":
            await redis.xreadgroup(K.GROUP, "first", {keys.frames: ">"}, count=batch)
        elif kill_mode == "mid_fold":
            async def dead(*a, **k):
                raise ConnectionError("killed")
            first._write = dead  # type: ignore[method-assign]
            try:
                await first.step()
            except ConnectionError:
                pass
        await redis.delete(keys.lease)  # the lease of the dead worker expires

        second = worker.SessionProjector(redis, F.SESSION, settings, consumer="second")
        assert await second.acquire()
        async with asyncio.timeout(20):
            while await second.step() or not await second.caught_up():
                pass

        live = await live_hashes(redis, F.SESSION)
        clean, _ = await fold_stream(redis, F.SESSION)
        replayed = codec.encode_all(clean, keys)
        assert live == replayed
        one_pass = in_memory(frames_)
        live[keys.meta].pop("checkpoint")
        one_pass[keys.meta].pop("checkpoint")
        assert live == one_pass
        assert int(live[keys.meta]["entries"]) == len(frames_) == await redis.xlen(keys.frames)
    finally:
        await redis.aclose()


@stores
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames_=frames(),
    batch=st.integers(min_value=1, max_value=25),
    kill_after=st.integers(min_value=0, max_value=6),
    kill_mode=st.sampled_from(["none", "after_read", "mid_fold"]),
)
def test_any_batching_and_a_killed_worker_give_the_clean_replay_state(redis_server, frames_, batch, kill_after, kill_mode):
    asyncio.run(_check(redis_server.url, frames_, batch, kill_after, kill_mode))
