"""/ws?compression=deflate: each data message a binary raw DEFLATE stream of the text a plain
client gets, the per-client prefix in stored blocks before the data compressed once.

The framing is checked with zlib alone; the protocol against real uvicorn nodes and a real
redis-server (tests/test_ws_subscriptions.py's helpers)."""

from __future__ import annotations

import asyncio
import json
import zlib

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app.api import ws_protocol as P
from tests import factory as F
from tests.apiserver import ApiServer
from tests.test_ws_subscriptions import (
    GatedSocket, base_frames, merged_updates_end_at_the_final_state, project, rest, send,
)

pytestmark = pytest.mark.anyio


def inflate(payload: bytes) -> str:
    """One whole raw deflate stream, nothing after its final block."""
    unpacker = zlib.decompressobj(-15)
    text = unpacker.decompress(payload)
    assert unpacker.eof and not unpacker.unused_data
    return text.decode()


# -- the framing, with zlib ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 2, 65534, 65535, 65536, 65537, 2 * 65535, 2 * 65535 + 7])
def test_stored_prefix_then_shared_compressed_tail_is_one_valid_stream(size):
    prefix = bytes((i * 7 + 3) % 256 for i in range(size))  # any bytes: stored, not parsed
    tail = P.deflated(b'{"VNM":{"symbol":"VNM","last_price":61000}}}' * 50)
    stream = P.stored(prefix) + tail
    unpacker = zlib.decompressobj(-15)
    out = unpacker.decompress(stream)
    assert out == prefix + b'{"VNM":{"symbol":"VNM","last_price":61000}}}' * 50
    assert unpacker.eof and not unpacker.unused_data
    # Blocks of at most 65,535 bytes, none final: the tail's last block ends the stream.
    assert len(P.stored(prefix)) == size + 5 * -(-size // 65535)


@pytest.mark.parametrize("level", [P.DEFLATE_LEVEL, P.SNAPSHOT_LEVEL])
def test_a_deflated_message_inflates_to_exactly_the_plain_message(level):
    head = P.encode_key("board", {"channel": "board", "symbols": "*", "note": "ước"})
    session = '{"date":"2026-11-25","closed":false}'
    data = P.Data('{"VNM":{"symbol":"VNM","name":"Vinamilk \u2013 sữa"},"FPT":null}', level)
    for kind, seq in (("snapshot", 0), ("update", 1), ("update", 123456)):
        payload = P.deflated_message(head, kind, seq, session, data)
        assert payload[0] == 0  # a non-final stored block: never the 4-byte heartbeat b"ping"
        assert inflate(payload) == P.message(head, kind, seq, session, data.text)
        assert json.loads(inflate(payload))["seq"] == seq


def test_a_long_key_spans_several_stored_blocks():
    head = P.encode_key("board", {"channel": "board", "symbols": [f"S{i:05d}" for i in range(16_000)]})
    data = P.Data('{"S00001":{"symbol":"S00001"}}')
    payload = P.deflated_message(head, "update", 7, "null", data)
    assert len(head) > 2 * 65535
    assert inflate(payload) == P.message(head, "update", 7, "null", data.text)


def test_a_bad_compression_value_is_refused_and_deflate_or_none_accepted():
    assert P.compression(None) is None and P.compression("deflate") == "deflate"
    for value in ("gzip", "", "DEFLATE", "deflate-raw", "x" * 500):
        with pytest.raises(P.ProtocolError) as refused:
            P.compression(value)
        assert refused.value.code == "bad_compression" and len(refused.value.message.encode()) <= 123


async def test_one_update_offered_to_many_deflate_subscribers_is_compressed_once(monkeypatch):
    from app.api.ws_subscriptions import Connection, Sub

    calls = []
    real = P.deflated
    monkeypatch.setattr(P, "deflated", lambda raw, level=P.DEFLATE_LEVEL: calls.append(level) or real(raw, level))

    async def nowhere(*_):
        raise AssertionError("not sent in this test")

    topic = P.Topic("board", "*")
    subs = [Sub(Connection(nowhere, nowhere, deflate=True), topic, {"channel": "board", "symbols": "*", "n": i})
            for i in range(200)]
    update = P.Data('{"VNM":{"symbol":"VNM","last_price":61000}}')
    for sub in subs:
        sub.offer({"VNM": '"VNM":{"symbol":"VNM","last_price":61000}'}, update, "null")
    sent = [sub.take()[0] for sub in subs]
    assert calls == [P.DEFLATE_LEVEL]  # once for 200 clients
    assert [json.loads(inflate(m))["key"]["n"] for m in sent] == list(range(200))
    # A client whose updates merged gets data rendered, and compressed, for it alone.
    slow = subs[0]
    slow.offer({"VNM": '"VNM":{"symbol":"VNM","last_price":61100}'}, P.Data("unused"), "null")
    slow.offer({"FPT": '"FPT":{"symbol":"FPT"}'}, P.Data("unused either"), "null")
    merged = json.loads(inflate(slow.take()[0]))
    assert merged["data"] == {"VNM": {"symbol": "VNM", "last_price": 61100}, "FPT": {"symbol": "FPT"}}
    assert len(calls) == 2


# -- against a node --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(redis_server):
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as server:
        yield server


async def recv_any(ws, timeout: float = 10.0) -> tuple[str, dict]:
    """The next protocol message and how it came: ``text`` or ``deflate`` (the heartbeat
    and feed status skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if message == b"ping":
                continue
            how, text = ("deflate", inflate(message)) if isinstance(message, bytes) else ("text", message)
            data = json.loads(text)
            if data.get("type") != "status":
                return how, data


SUBSCRIPTIONS = (
    {"channel": "board", "symbols": ["acb", "FPT"]},
    {"channel": "indices"},
    {"channel": "trades", "symbol": "ACB", "limit": 5},
)


async def test_a_deflate_and_a_plain_client_get_the_same_messages(redis, settings, node):
    await project(redis, settings, base_frames())
    async with websockets.connect(node.ws + "/ws?compression=deflate") as packed, \
            websockets.connect(node.ws + "/ws") as plain:
        got: dict[str, list[dict]] = {"packed": [], "plain": []}
        for ws in (packed, plain):
            for sub in SUBSCRIPTIONS:
                await send(ws, op="subscribe", **sub)

        async def until(name: str, ws, how: str, volume: int, index: float, trade_time: str) -> None:
            """Messages until the board, the index and the tape all show the step."""
            last: dict = {}
            while last != {"board": volume, "indices": index, "trades": trade_time}:
                came, message = await recv_any(ws)
                assert came == how, message
                got[name].append(message)
                data = message["data"]
                if message["channel"] == "board" and "ACB" in data:
                    last["board"] = data["ACB"]["market_volume"]
                elif message["channel"] == "indices" and "VN30" in data:
                    last["indices"] = data["VN30"]["value"]
                elif message["channel"] == "trades" and data:
                    last["trades"] = data[-1]["time"][11:19]

        async def both(*step) -> None:
            await asyncio.gather(until("packed", packed, "deflate", *step), until("plain", plain, "text", *step))

        await both(1000, 1900.0, "09:20:01")
        for i in range(6):
            volume, hms = 1000 + 100 * (i + 1), f"09:3{i}:00"
            await project(redis, settings, [
                F.trade("ACB", 22950 + 50 * (i % 3), 100, volume, time=hms), F.index("VN30", 1901.0 + i, hms),
            ])
            await both(volume, 1901.0 + i, hms)
        await send(packed, op="subscribe", channel="weather")  # control messages stay text
        assert await recv_any(packed) == ("text", {
            "type": "error", "code": "unknown_channel", "key": {"channel": "weather"},
            "message": "unknown channel 'weather': one of board, candles, trades, indices, foreign, derivatives",
        })

    def by_subscription(messages: list[dict]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for m in messages:
            out.setdefault(json.dumps(m["key"], sort_keys=True), []).append(m)
        return out

    packed_subs, plain_subs = by_subscription(got["packed"]), by_subscription(got["plain"])
    assert packed_subs == plain_subs and len(packed_subs) == 3
    for messages in packed_subs.values():  # a snapshot, then every update in turn
        assert [m["seq"] for m in messages] == list(range(len(messages))) and len(messages) >= 7
    board = packed_subs[json.dumps(SUBSCRIPTIONS[0], sort_keys=True)]
    state = {}
    for m in board:
        state.update(m["data"])
    assert state == (await rest(node, "/api/market/board?symbols=ACB,FPT"))["rows"]


async def test_a_bad_compression_value_is_closed_1008_with_the_reason(redis, settings, node):
    await project(redis, settings, base_frames())
    for query in ("compression=gzip", "compression=", "compression=DEFLATE"):
        ws = await websockets.connect(node.ws + "/ws?" + query)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()  # closed before it says anything
        assert closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason.startswith("unknown compression"), closed.value.rcvd.reason
    async with websockets.connect(node.ws + "/ws?compression=deflate") as ws:  # the node is fine
        await send(ws, op="subscribe", channel="indices")
        how, snapshot = await recv_any(ws)
        assert (how, snapshot["type"], snapshot["data"]["VN30"]["value"]) == ("deflate", "snapshot", 1900.0)


async def test_two_nodes_send_the_same_deflated_text(redis, settings, redis_server, node):
    await project(redis, settings, base_frames())
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as other:
        async with websockets.connect(node.ws + "/ws?compression=deflate") as a, \
                websockets.connect(other.ws + "/ws?compression=deflate") as b:
            for ws in (a, b):
                await send(ws, op="subscribe", channel="board", symbols="*")
            first = [await a.recv(), await b.recv()]
            assert all(isinstance(m, bytes) for m in first)
            assert inflate(first[0]) == inflate(first[1]) and json.loads(inflate(first[0]))["type"] == "snapshot"
            await project(redis, settings, [F.trade("FPT", 118200, 100, 600, time="09:25:00")])
            update = [inflate(await a.recv()), inflate(await b.recv())]
            assert update[0] == update[1]
            assert json.loads(update[0])["data"]["FPT"]["last_price"] == 118200


class InflatingGatedSocket(GatedSocket):
    """A stuck client of ?compression=deflate: it keeps each data message inflated."""

    async def send(self, payload) -> None:
        await self.gate.wait()
        if payload != b"ping":
            assert isinstance(payload, bytes), payload  # every data message binary
            self.sent.append(json.loads(inflate(payload)))


async def test_a_slow_deflate_clients_merged_update_ends_at_the_final_state(redis, settings):
    await merged_updates_end_at_the_final_state(redis, settings, InflatingGatedSocket(), deflate=True)
