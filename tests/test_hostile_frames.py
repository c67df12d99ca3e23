"""Hostile frames through the real writer, worker and redis-server.

The corpus (tests/fixtures/hostile/corpus.txt) and a hypothesis search over mutated
good frames check the same promise: the worker never crashes, every bad frame lands
in the dead-letter stream with its reason, and the good frames around it fold exactly
as they would without it.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from app import keys as K
from app.config import Settings
from app.frames import MAX_FRAME_BYTES
from app.ingest.writer import StreamWriter
from app.projections import codec, worker
from app.projections.session import fold, finish_batch, new_session
from app.replay import live_hashes
from app.store import redis_from_url
from tests import factory as F
from tests.test_replay_property import frames as market_sequences
from tests.test_worker import append, expected_hashes, without_checkpoint

SESSION = F.SESSION
RECEIVED = 1_795_600_000_000  # 2026-11-25 in Vietnam: frames without a date land in SESSION
CORPUS = Path(__file__).parent / "fixtures" / "hostile" / "corpus.txt"
OUTCOMES = ("dead", "skipped", "folded")


class Hostile(NamedTuple):
    name: str
    outcome: str
    reason: str
    frame: bytes


# -- the corpus ------------------------------------------------------------------


def _trade(symbol: str) -> dict:
    return {"RType": "X-TRADE", "TradingDate": F.DATE, "Time": "10:45:00", "Symbol": symbol,
            "LastPrice": 27500.0, "LastVol": 100.0, "TotalVol": 100.0, "TradingSession": "LO"}


def _compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def generate(recipe: str) -> bytes:
    """Build a ``gen:`` corpus frame (see the corpus header for the recipes)."""
    what, *args = recipe.split()
    if what == "pad":
        return _pad(int(args[0]))
    where, n = args[0], int(args[1])
    if what == "big":
        blob = "A" * n
        content = _trade("GEN")
        if where == "DataType":
            return _compact({"DataType": blob, "Content": _compact(content)}).encode()
        if where == "Content":
            return _compact({"DataType": "X-TRADE", "Content": blob}).encode()
        if where == "unknown":
            return _compact({"DataType": "ZZ", "Content": _compact({"Blob": blob})}).encode()
        if where == "key":
            content[blob] = 1
        else:
            content[where] = blob
        return F.broadcast("X-TRADE", content).encode()
    if what == "deep":
        nest = "[" * n + "]" * n
        if where == "envelope":
            return ('{"DataType":"X-TRADE","Content":' + nest + "}").encode()
        if where == "content":
            return _compact({"DataType": "X-TRADE", "Content": nest}).encode()
        if where == "field":
            return ('{"DataType":"X-TRADE","Content":{"Symbol":"GEN","LastPrice":' + nest + "}}").encode()
        if where == "encoded-field":
            return _compact({"DataType": "X-TRADE", "Content": '{"Symbol":"GEN","RType":' + nest + "}"}).encode()
        if where == "objects":
            return ('{"DataType":"X-TRADE","Content":' + '{"a":' * n + "1" + "}" * n + "}").encode()
    raise ValueError(f"unknown recipe {recipe!r}")


def _pad(n: int) -> bytes:
    # Whitespace before the closing brace keeps the frame valid JSON of the feed's shape.
    frame = F.broadcast("X-TRADE", _trade("PAD")).encode()
    return frame[:-1] + b" " * (n - len(frame)) + b"}"


def _frame(text: bytes) -> bytes:
    if text.startswith(b"esc:"):
        return codecs.escape_decode(text[4:])[0]
    if text.startswith(b"gen:"):
        return generate(text[4:].decode())
    return text


def load_corpus() -> list[Hostile]:
    # Split on b"\n" only: a frame may hold bytes that str.splitlines would break on.
    out = []
    for line in CORPUS.read_bytes().split(b"\n"):
        if not line.strip() or line.startswith(b"#"):
            continue
        name, outcome, reason, frame = line.split(b"\t", 3)
        out.append(Hostile(name.decode(), outcome.decode(), reason.decode(), _frame(frame)))
    return out


def test_the_corpus_holds_what_it_claims():
    corpus = load_corpus()
    names = [h.name for h in corpus]
    assert len(names) == len(set(names)), "corpus names must be unique: failures name them"
    assert {h.outcome for h in corpus} == set(OUTCOMES)
    assert all(h.reason.strip() for h in corpus if h.outcome == "dead")
    by_name = {h.name: h.frame for h in corpus}
    # The recipes really build what their names promise.
    assert all(len(f) > 1 << 20 for n, f in by_name.items() if n.startswith("1mb-"))
    assert by_name["100k-deep-envelope"].count(b"[") == 100_000
    assert by_name["100k-deep-content-string"].count(b"[") == 100_000
    assert len(by_name["just-under-the-frame-limit"]) == MAX_FRAME_BYTES
    assert len(by_name["just-over-the-frame-limit"]) == MAX_FRAME_BYTES + 1
    assert by_name["empty-frame"] == b""
    with pytest.raises(UnicodeDecodeError):
        by_name["non-utf8-in-content-string"].decode()


# -- the corpus through the worker ---------------------------------------------------


def good_frames(n: int) -> list[bytes]:
    """A session's worth of ordinary feed traffic in which every trade is a real trade."""
    out: list[str] = []
    totals = {"ACB": 0, "TAR": 0, "VN30F2612": 0}
    bought = sold = 0
    for i in range(n):
        t = 9 * 3600 + 15 * 60 + 7 * i
        hms = f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"
        sym = ("ACB", "TAR")[i % 2]
        price = 22900.0 + 50 * (i % 3)
        kind = i % 6
        if kind == 0:
            out.append(F.quote(sym, price - 50, price + 50, time=hms))
        elif kind == 1:
            totals[sym] += 100 + i
            out.append(F.trade(sym, price, 100 + i, totals[sym], time=hms, ceiling=24500.0, floor=21300.0))
        elif kind == 2:
            totals[sym] += 200
            out.append(F.snapshot_x(sym, price, 200, totals[sym], bid=price - 50, ask=price, time=hms))
        elif kind == 3:
            bought, sold = bought + 1000, sold + 300
            out.append(F.foreign(sym, bought, sold, hms))
        elif kind == 4:
            out.append(F.index(("VN30", "VNINDEX")[i % 2], 1900.0 + i / 4, hms))
        else:
            totals["VN30F2612"] += 4
            out.append(F.trade("VN30F2612", 1905.0 + i % 5, 4, totals["VN30F2612"], time=hms))
    return [f.encode() for f in out]


def _reason_problems(reason: bytes) -> list[str]:
    """What would make a dead-letter reason useless or unsafe to show an operator."""
    problems = []
    text = reason.decode("utf-8", "replace")
    if not text.strip():
        problems.append("empty")
    if len(reason) > 200:
        problems.append(f"{len(reason)} bytes long")
    if not text.isprintable():
        problems.append("unprintable characters")
    if "AAAA" in text or "[[[[" in text:
        problems.append("echoes the frame")
    return problems


@pytest.mark.anyio
@pytest.mark.parametrize("batch", [1000, 3])
async def test_every_corpus_frame_is_dead_lettered_skipped_or_folded_as_stated(redis, settings, batch):
    corpus = load_corpus()
    good = good_frames(len(corpus) + 1)
    # Each hostile frame sits between two good ones, so a bad frame that corrupted
    # state or swallowed a neighbour shows up in the projections.
    frames: list[bytes] = [good[0]]
    origin: list[Hostile | None] = [None]  # the corpus entry of each frame; None: a good one
    for hostile, after in zip(corpus, good[1:]):
        frames += [hostile.frame, after]
        origin += [hostile, None]
    await append(redis, frames, received=RECEIVED)
    assert await worker.session_dates(redis) == [SESSION]

    s = Settings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__}, "projector_batch": batch})
    async with asyncio.timeout(60):
        assert await worker.drain(redis, s) == len(frames)

    keys = K.SessionKeys(SESSION)
    source = await redis.xrange(keys.frames)
    assert [fields[b"f"] for _, fields in source] == frames  # appended byte for byte
    dead_expected = [
        (entry_id, h) for (entry_id, _), h in zip(source, origin) if h is not None and h.outcome == "dead"
    ]
    dead = await redis.xrange(keys.dead)
    by_id = {entry_id: (fields[b"f"], h) for (entry_id, fields), h in zip(source, origin)}

    def name(entry_id: bytes) -> str:
        h = by_id.get(entry_id, (None, None))[1]
        return h.name if h else f"good frame {entry_id!r}"

    # One dead letter per bad frame, in stream order, naming its source entry.
    assert [name(d[b"id"]) for _, d in dead] == [h.name for _, h in dead_expected]
    assert all(d[b"f"] == by_id[d[b"id"]][0] for _, d in dead), "the dead letter holds the frame unchanged"
    wrong = {
        h.name: d[b"reason"].decode("utf-8", "replace")
        for (_, d), (_, h) in zip(dead, dead_expected)
        if h.reason.encode() not in d[b"reason"]
    }
    assert not wrong, f"reasons without the expected text: {wrong}"
    unsafe = {h.name: p for (_, d), (_, h) in zip(dead, dead_expected) if (p := _reason_problems(d[b"reason"]))}
    assert not unsafe, unsafe

    n_dead = len(dead_expected)
    n_skipped = sum(h.outcome == "skipped" for h in corpus)
    n_folded = sum(h.outcome == "folded" for h in corpus)
    live = without_checkpoint(await live_hashes(redis, SESSION))
    meta = live[keys.meta]
    assert (meta["entries"], meta["frames"], meta["skipped"], meta["dead"]) == (
        str(len(frames)), str(len(good) + n_folded), str(n_skipped), str(n_dead)
    )
    # Bad frames leave no trace but the counters: the projections are those of the
    # frames that were not refused, folded on their own.
    expected = expected_hashes([f for f, h in zip(frames, origin) if h is None or h.outcome != "dead"])
    expected[keys.meta].update(entries=str(len(frames)), dead=str(n_dead))
    assert live == expected
    assert (await redis.xpending(keys.frames, K.GROUP))["pending"] == 0
    assert (await redis.hget(keys.meta, "checkpoint")) == source[-1][0]


@pytest.mark.anyio
async def test_a_trading_date_that_is_no_session_is_dead_lettered_where_the_frame_lands(redis, settings):
    # TradingDate decides the stream a frame is appended to: a date that is no real day
    # lands in the receive date's stream, a repeated key in its first date's; wherever
    # they land, they must be refused there.
    impossible = F.trade("HPG", 27500, 100, 100, date="31/02/2026").encode()
    content = json.dumps(_trade("HPG")).replace(f'"TradingDate": "{F.DATE}"', '"TradingDate": "24/11/2026", "TradingDate": "25/11/2026"')
    twice = json.dumps({"DataType": "X-TRADE", "Content": content}).encode()
    assert twice.count(b"TradingDate") == 2
    good = good_frames(12)
    frames = good[:4] + [impossible] + good[4:8] + [twice] + good[8:]
    await append(redis, frames, received=RECEIVED)
    async with asyncio.timeout(30):
        await worker.drain(redis, settings)

    dead: list[tuple[bytes, bytes]] = []
    for date in await worker.session_dates(redis):
        keys = K.SessionKeys(date)
        dead += [(d[b"f"], d[b"reason"]) for _, d in await redis.xrange(keys.dead)]
        assert (await redis.xpending(keys.frames, K.GROUP))["pending"] == 0
    assert sorted(f for f, _ in dead) == sorted([impossible, twice])
    assert all(b"TradingDate" in reason for _, reason in dead), dead
    landed_here = [f for f in frames if f is not twice]
    assert without_checkpoint(await live_hashes(redis, SESSION)) == expected_hashes(landed_here)


# -- hypothesis: mutated good frames -------------------------------------------------

ODD_VALUES = [
    [], {}, "", "x", True, None, 0, -0.0, -1, -0.5, 1e17, 1e300, -1e300, 2**80, 10**400,
    float("nan"), float("inf"), "1e999", "NaN", "-inf", "12", [[[]]], {"a": {"b": []}},
    "٢٥/١١/٢٠٢٦", "25:61:00", "10:00", "A" * 65, "\u0000",
]
DATA_TYPES = ["ZZ", "", "x", "MI", "R", "X", "F", "B", "OL", "x-quote", "Trade", None, 7, ["X"]]
MUTATIONS = ["flip", "truncate", "swap", "delete", "number", "nest", "binary", "duplicate", "case", "data_type", "big"]


def _split(frame: bytes) -> tuple[dict, dict, bool] | None:
    """(envelope, content, content was a JSON string) of a parseable frame."""
    try:
        envelope = json.loads(frame)
        content = envelope["Content"]
        encoded = isinstance(content, str)
        if encoded:
            content = json.loads(content)
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(envelope, dict) or not isinstance(content, dict):
        return None
    return envelope, content, encoded


def _join(envelope: dict, content_json: str, encoded: bool) -> bytes:
    # json.dumps would recurse on deep nesting, so the content goes in as text.
    envelope = {**envelope, "Content": "\0CONTENT\0"}
    value = json.dumps(content_json) if encoded else content_json
    return json.dumps(envelope).replace('"\\u0000CONTENT\\u0000"', value).encode()


@st.composite
def mutant(draw, frame: bytes) -> bytes:
    how = draw(st.sampled_from(MUTATIONS))
    parts = _split(frame)
    if how == "binary":
        return draw(st.binary(max_size=80))
    if how == "truncate" and frame:
        return frame[: draw(st.integers(0, len(frame) - 1))]
    if how == "nest":
        depth = draw(st.sampled_from([1, 3, 100, 5_000, 100_000]))
        if parts is None or draw(st.booleans()):
            return b"[" * depth + frame + b"]" * depth
        envelope, content, encoded = parts
        key = draw(st.sampled_from(sorted(content) or ["Symbol"]))
        text = json.dumps({**content, key: "\0N\0"}).replace('"\\u0000N\\u0000"', "[" * depth + "]" * depth)
        return _join(envelope, text, encoded)
    if parts is None or how in ("flip", "truncate"):
        out = bytearray(frame or b"{}")
        for _ in range(draw(st.integers(1, 3))):
            out[draw(st.integers(0, len(out) - 1))] ^= draw(st.integers(1, 255))
        return bytes(out)
    envelope, content, encoded = parts
    key = draw(st.sampled_from(sorted(content) or ["Symbol"]))
    if how == "swap":
        content[key] = draw(st.sampled_from(ODD_VALUES))
    elif how == "number":
        content[key] = draw(st.sampled_from([-1, -0.5, -1e300, 1e17, 1e300, 2**80, 10**400, float("nan"), float("inf")]))
    elif how == "delete":
        content.pop(key, None)
    elif how == "big":
        content[key] = "A" * draw(st.sampled_from([65, 5_000, MAX_FRAME_BYTES + 1]))
    elif how == "case":
        change = draw(st.sampled_from([str.lower, str.upper, str.swapcase]))
        content = {change(k): v for k, v in content.items()}
    elif how == "data_type":
        envelope["DataType"] = draw(st.sampled_from(DATA_TYPES))
    elif how == "duplicate":
        # A repeated key after the real one: JSON allows it, the last one wins.
        text = json.dumps(content)
        extra = json.dumps({key: draw(st.sampled_from(ODD_VALUES))})
        return _join(envelope, text[:-1] + ", " + extra[1:], encoded)
    return _join(envelope, json.dumps(content), encoded)


@st.composite
def hostile_streams(draw) -> tuple[list[bytes], int]:
    """Good feed traffic with mutants of it mixed in, and where to stop the first drain."""
    out: list[bytes] = []
    for frame in (f.encode() for f in draw(market_sequences())):
        action = draw(st.sampled_from(["keep", "keep", "mutate", "both", "noise"]))
        if action in ("keep", "both"):
            out.append(frame)
        if action in ("mutate", "both"):
            out.append(draw(mutant(frame)))
        if action == "noise":
            out += [draw(st.binary(max_size=80)), frame]
    return out, draw(st.integers(0, len(out)))


async def _check_against_pure_fold(url: str, frames: list[bytes], split: int, batch: int) -> None:
    redis = redis_from_url(url)
    try:
        await redis.flushall()
        settings = Settings(redis_url=url, projector_batch=batch, projector_lease_ms=5000, projector_block_ms=50)
        writer = StreamWriter(redis)
        # Two drains: the second worker starts from the state the first one stored,
        # so whatever hostile input put into Redis must load back as it was written.
        for part in (frames[:split], frames[split:]):
            if part:
                await writer.append([(f, RECEIVED) for f in part])
                await writer.flush()
            async with asyncio.timeout(60):
                await worker.drain(redis, settings)

        stored: Counter[bytes] = Counter()
        for date in await worker.session_dates(redis):
            keys = K.SessionKeys(date)
            entries = await redis.xrange(keys.frames)
            state = new_session(date)
            refused = []
            for entry_id, fields in entries:
                stored[fields[b"f"]] += 1
                letter = fold(state, fields[b"f"])
                if letter is not None:
                    refused.append((entry_id, letter.reason.encode(), fields[b"f"]))
            state.meta.checkpoint = entries[-1][0].decode()
            finish_batch(state)
            assert await live_hashes(redis, date) == codec.encode_all(state, keys), date
            dead = [(d[b"id"], d[b"reason"], d[b"f"]) for _, d in await redis.xrange(keys.dead)]
            assert dead == refused, date
            assert all(not _reason_problems(reason) for _, reason, _ in dead), dead
            assert (await redis.xpending(keys.frames, K.GROUP))["pending"] == 0
        assert stored == Counter(frames)  # nothing lost or duplicated on the way in
    finally:
        await redis.aclose()


def _property(redis_server, stream, batch):
    frames, split = stream
    asyncio.run(_check_against_pure_fold(redis_server.url, frames, split, batch))


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=hostile_streams(), batch=st.sampled_from([1, 4, 1000]))
def test_mutated_frames_never_crash_the_worker_and_match_the_pure_fold(redis_server, stream, batch):
    _property(redis_server, stream, batch)


@pytest.mark.slow
@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=hostile_streams(), batch=st.sampled_from([1, 4, 1000]))
def test_many_more_mutated_frames_match_the_pure_fold(redis_server, stream, batch):
    _property(redis_server, stream, batch)
