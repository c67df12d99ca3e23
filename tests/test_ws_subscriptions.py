"""/ws, the subscription protocol, against real uvicorn nodes and a real redis-server."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app import keys as K
from app.ingest.writer import StreamWriter
from app.projections import worker
from tests import factory as F
from tests.apiserver import ApiServer

pytestmark = pytest.mark.anyio

RECEIVED = 1_795_600_000_000
NEXT_DAY, NEXT_SESSION = "26/11/2026", "2026-11-26"


async def project(redis, settings, frames) -> None:
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED + 2 * 86_400_000) for f in frames])
    await writer.flush()
    await worker.drain(redis, settings)


@pytest.fixture(scope="module")
def node(redis_server):
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50", WS_MAX_SUBS="4", WS_MAX_SYMBOLS="5") as server:
        yield server


async def rest(server: ApiServer, path: str) -> dict:
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as client:
        response = await client.get(path)
        assert response.status_code == 200, response.text
        return response.json()


async def recv_text(ws, timeout: float = 10.0) -> str:
    """The next protocol message as sent (heartbeats and feed status skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if isinstance(message, str) and json.loads(message).get("type") != "status":
                return message


async def recv(ws, timeout: float = 10.0) -> dict:
    """The next protocol message, decoded (heartbeats and feed status skipped)."""
    return json.loads(await recv_text(ws, timeout))


async def send(ws, **message) -> None:
    await ws.send(json.dumps(message))


def base_frames() -> list[str]:
    return [
        F.quote("ACB", 22900, 22950, time="09:20:00"),
        F.trade("ACB", 22950, 100, 1000, time="09:20:01"),
        F.quote("FPT", 118000, 118100, time="09:20:00"),
        F.trade("FPT", 118100, 500, 500, time="09:20:03"),
        F.quote("VNM", 61000, 61100, time="09:20:00"),
        F.index("VN30", 1900.0, "09:20:05"),
        F.foreign("ACB", 1000, 200, "09:20:05"),
    ]


async def test_subscribe_snapshot_then_only_changed_rows_then_unsubscribe(redis, settings, node):
    await project(redis, settings, base_frames())
    async with websockets.connect(node.ws + "/ws") as ws:
        await send(ws, op="subscribe", channel="board", symbols=["acb", "FPT"])
        snap = await recv(ws)
        board = await rest(node, "/api/market/board?symbols=ACB,FPT")
        assert snap == {
            "channel": "board", "key": {"channel": "board", "symbols": ["acb", "FPT"]}, "type": "snapshot",
            "seq": 0, "session": {"date": F.SESSION, "closed": False}, "data": board["rows"],
        }
        await project(redis, settings, [F.trade("ACB", 23000, 200, 1200, time="09:21:00"), F.quote("VNM", 1, 2)])
        update = await recv(ws)
        assert (update["type"], update["seq"], update["key"]) == ("update", 1, snap["key"])
        rows = (await rest(node, "/api/market/board?symbols=ACB"))["rows"]
        assert update["data"] == rows  # ACB whole, FPT unchanged, VNM not subscribed
        await send(ws, op="unsubscribe", channel="board", symbols=["FPT", "ACB"])
        assert await recv(ws) == {"type": "unsubscribed", "channel": "board", "key": {"channel": "board", "symbols": ["FPT", "ACB"]}}
        await send(ws, op="subscribe", channel="indices")
        assert (await recv(ws))["channel"] == "indices"
        await project(redis, settings, [F.trade("ACB", 23050, 100, 1300, time="09:22:00"), F.index("VN30", 1910.0, "09:22:00")])
        update = await recv(ws)
        assert update["channel"] == "indices" and update["data"]["VN30"]["value"] == 1910.0
        assert set(update["data"]) == {"VN30"}


async def test_a_symbol_named_by_a_notice_whose_row_did_not_change_is_not_sent(redis, settings, node):
    """Most of a full market's notices are quotes; a change the row does not show (a book
    level past the third, the trading session) names the symbol but costs no bytes."""
    await project(redis, settings, base_frames())
    notices = redis.pubsub()
    await notices.subscribe(K.SessionKeys(F.SESSION).notify)
    try:
        async with websockets.connect(node.ws + "/ws") as ws:
            await send(ws, op="subscribe", channel="board", symbols="*")
            state = (await recv(ws))["data"]
            await project(redis, settings, [
                F.quote("VNM", 61000, 61100, time="09:21:00", BidPrice4=60500.0, BidVol4=300.0),
                F.quote("ACB", 22900, 22950, time="09:21:00", session="ATC"),
                F.trade("FPT", 118200, 100, 600, time="09:21:01"),
            ])
            named: set[str] = set()
            async with asyncio.timeout(10):
                while not {"VNM", "ACB"} <= named:
                    message = await notices.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        named |= set(json.loads(message["data"])["names"].get("quote", ()))
            update = await recv(ws)
            assert set(update["data"]) == {"FPT"}
            rows = (await rest(node, "/api/market/board"))["rows"]
            assert {s: state[s] for s in ("VNM", "ACB")} == {s: rows[s] for s in ("VNM", "ACB")}
    finally:
        await notices.aclose()


async def test_each_bad_message_gets_an_error_and_the_socket_stays_open(redis, settings, node):
    await project(redis, settings, base_frames())
    async with websockets.connect(node.ws + "/ws") as ws:
        cases = [
            ("not json", "bad_json"),
            (json.dumps([1, 2]), "bad_request"),
            (json.dumps({"op": "dance"}), "unknown_op"),
            (json.dumps({"op": "subscribe", "channel": "weather"}), "unknown_channel"),
            (json.dumps({"op": "subscribe", "channel": "board", "symbols": ["A B"]}), "bad_request"),
            (json.dumps({"op": "subscribe", "channel": "board", "symbols": list("ABCDEF")}), "too_many_symbols"),
            (json.dumps({"op": "subscribe", "channel": "candles", "symbol": "ACB", "interval": "7m"}), "bad_request"),
            (json.dumps({"op": "subscribe", "channel": "trades", "symbol": "ACB", "limit": 0}), "bad_request"),
            (json.dumps({"op": "unsubscribe", "channel": "indices"}), "not_subscribed"),
        ]
        for text, code in cases:
            await ws.send(text)
            error = await recv(ws)
            assert error["type"] == "error" and error["code"] == code, (text, error)
            assert error["message"]
        for channel in ("indices", "foreign", "derivatives"):
            await send(ws, op="subscribe", channel=channel)
            assert (await recv(ws))["type"] == "snapshot"
        await send(ws, op="subscribe", channel="board", symbols="*")
        assert (await recv(ws))["seq"] == 0  # the fourth: WS_MAX_SUBS is 4
        await send(ws, op="subscribe", channel="trades", symbol="ACB")
        assert (await recv(ws))["code"] == "too_many_subscriptions"
        await send(ws, op="subscribe", channel="indices")  # again: a fresh snapshot, not a fifth
        again = await recv(ws)
        assert (again["channel"], again["type"], again["seq"]) == ("indices", "snapshot", 0)


async def test_seq_counts_every_update_and_the_last_state_is_the_stores(redis, settings, node):
    await project(redis, settings, base_frames())
    async with websockets.connect(node.ws + "/ws") as ws:
        await send(ws, op="subscribe", channel="board", symbols="HOSE")
        state = (await recv(ws))["data"]
        seq = 0
        total = 1000
        for i in range(25):
            total += 100
            await project(redis, settings, [F.trade("ACB", 22950 + 50 * (i % 3), 100, total, time=f"09:3{i % 10}:00")])
            while True:
                message = await recv(ws)
                assert message["seq"] == seq + 1
                seq = message["seq"]
                state.update(message["data"])
                if state["ACB"]["market_volume"] == total:
                    break
        assert state == (await rest(node, "/api/market/board?symbols=HOSE"))["rows"]


async def test_candles_and_trades_of_a_symbol(redis, settings, node):
    await project(redis, settings, base_frames())
    async with websockets.connect(node.ws + "/ws") as ws:
        await send(ws, op="subscribe", channel="candles", symbol="ACB", interval="5m")
        candles = (await recv(ws))["data"]
        assert candles == (await rest(node, "/api/history/candles/ACB?interval=5m"))["candles"]
        await send(ws, op="subscribe", channel="trades", symbol="ACB", limit=10)
        trades = (await recv(ws))["data"]
        assert trades == (await rest(node, "/api/market/trades/ACB?limit=10"))["trades"][::-1]
        await project(redis, settings, [
            F.trade("ACB", 23000, 200, 1200, time="09:21:00"), F.trade("ACB", 23100, 300, 1500, time="09:26:00"),
        ])
        got = {}
        while set(got) != {"candles", "trades"} or len(got["trades"]) < len(trades) + 2:
            message = await recv(ws)
            assert message["type"] == "update"
            if message["channel"] == "trades":
                got.setdefault("trades", list(trades)).extend(message["data"])  # new trades, oldest first
            else:
                merged = {c["time"]: c for c in got.get("candles", candles)}
                merged.update({c["time"]: c for c in message["data"]})
                got["candles"] = [merged[t] for t in sorted(merged)]
        assert got["trades"] == (await rest(node, "/api/market/trades/ACB?limit=10"))["trades"][::-1]
        assert got["candles"] == (await rest(node, "/api/history/candles/ACB?interval=5m"))["candles"]


async def test_a_new_session_gives_every_subscription_a_fresh_snapshot(redis, settings, node):
    await project(redis, settings, base_frames())
    async with websockets.connect(node.ws + "/ws") as ws:
        await send(ws, op="subscribe", channel="board", symbols=["ACB"])
        await send(ws, op="subscribe", channel="foreign")
        assert {(await recv(ws))["session"]["date"] for _ in range(2)} == {F.SESSION}
        await project(redis, settings, [F.trade("ACB", 24000, 100, 100, time="09:20:00", date=NEXT_DAY)])
        fresh = {}
        while len(fresh) < 2:
            message = await recv(ws)
            if message["type"] == "snapshot" and message["session"]["date"] == NEXT_SESSION:
                fresh[message["channel"]] = message
        assert fresh["board"]["seq"] == 0 and fresh["board"]["data"]["ACB"]["last_price"] == 24000
        assert fresh["foreign"]["data"] is None  # no foreign frame yet in the new session


async def test_two_nodes_send_identical_data_for_the_same_subscription(redis, settings, redis_server, node):
    await project(redis, settings, base_frames())
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as other:
        async with websockets.connect(node.ws + "/ws") as a, websockets.connect(other.ws + "/ws") as b:
            for ws in (a, b):
                await send(ws, op="subscribe", channel="board", symbols="*")
            # Each node tells of the feed as it learns of it; the data must be the same.
            texts = [await recv_text(a), await recv_text(b)]
            assert texts[0] == texts[1] and json.loads(texts[0])["type"] == "snapshot"
            await project(redis, settings, [F.trade("FPT", 118200, 100, 600, time="09:25:00")])
            assert await recv_text(a) == await recv_text(b)


async def test_auth_by_the_first_message(redis, settings, redis_server):
    await project(redis, settings, base_frames())
    with ApiServer(redis_server.url, WS_TOKEN="s3cret") as server:
        async with websockets.connect(server.ws + "/ws") as ws:
            await send(ws, op="auth", token="s3cret")
            assert await recv(ws) == {"type": "authenticated"}
            await send(ws, op="subscribe", channel="indices")
            assert (await recv(ws))["data"]["VN30"]["value"] == 1900.0
            await send(ws, op="auth", token="wrong")  # a later auth is checked too
            assert (await recv(ws))["code"] == "unauthorized"
            await send(ws, op="subscribe", channel="foreign")  # and the socket stays open
            assert (await recv(ws))["channel"] == "foreign"
        for first in ({"op": "auth", "token": "wrong"}, {"op": "subscribe", "channel": "indices"}):
            async with websockets.connect(server.ws + "/ws") as ws:
                await send(ws, **first)
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd.code == 1008
        async with websockets.connect(server.ws + "/ws?token=s3cret") as ws:
            await send(ws, op="subscribe", channel="indices")
            assert (await recv(ws))["type"] == "snapshot"


async def test_limits_message_size_and_sockets_per_address(redis, settings, redis_server):
    await project(redis, settings, base_frames())
    with ApiServer(redis_server.url, WS_MAX_PER_IP="2", WS_MAX_MESSAGE_BYTES="512") as server:
        async with websockets.connect(server.ws + "/ws") as ws:  # the first message is bounded too
            await send(ws, op="subscribe", channel="board", symbols=[f"S{i:03d}" for i in range(100)])
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd.code == 1009
        async with websockets.connect(server.ws + "/ws") as a, websockets.connect(server.ws + "/ws") as b:
            for ws in (a, b):
                await send(ws, op="subscribe", channel="indices")
                assert (await recv(ws))["type"] == "snapshot"
            async with websockets.connect(server.ws + "/ws") as third:
                await send(third, op="subscribe", channel="indices")
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(third)
                assert closed.value.rcvd.code == 1013
            await a.send(json.dumps({"op": "subscribe", "channel": "trades", "symbol": "ACB", "pad": "x" * 600}))
            with pytest.raises(ConnectionClosed) as closed:
                await recv(a)
            assert closed.value.rcvd.code == 1009
            await send(b, op="subscribe", channel="foreign")  # the other socket is untouched
            assert (await recv(b))["channel"] == "foreign"


async def test_a_subscription_made_while_redis_is_away_gets_unavailable_then_its_snapshot(redis_binary):
    from app.config import Settings
    from app.local_redis import private_redis_server
    from app.store import connect

    store = private_redis_server(redis_binary, appendonly=True)  # the same data after a restart
    store.start()
    try:
        client = await connect(store.url)
        try:
            await project(client, Settings(redis_url=store.url, projector_block_ms=50), base_frames())
        finally:
            await client.aclose()
        with ApiServer(store.url, WS_THROTTLE_MS="50") as node:
            async with websockets.connect(node.ws + "/ws") as ws:
                await send(ws, op="subscribe", channel="indices")
                assert (await recv(ws))["type"] == "snapshot"
                store.stop()
                key = {"channel": "board", "symbols": ["ACB"]}
                await send(ws, op="subscribe", **key)
                error = await recv(ws)
                assert (error["type"], error["code"], error["key"]) == ("error", "unavailable", key), error
                await send(ws, op="subscribe", channel="weather")  # the socket is open and answers
                assert (await recv(ws))["code"] == "unknown_channel"
                store.start()
                while (message := await recv(ws, timeout=30))["channel"] != "board":
                    assert message["channel"] == "indices"  # its fresh snapshot, Redis being back
                assert (message["type"], message["seq"], message["key"]) == ("snapshot", 0, key)
                assert message["data"]["ACB"]["last_price"] == 22950
    finally:
        store.cleanup()


# -- one node in this process: a client that does not read --------------------------------


async def live_node(redis, throttle_ms: int = 20):
    from app.api.hub import Hub
    from app.api.live import Live

    live = Live(redis, throttle_ms, 1000)
    hub = Hub(redis, render=lambda channel: live.market_text(), throttle_ms=throttle_ms, live=live)
    await hub.start()
    async with asyncio.timeout(10):
        while not hub.pubsub_up:
            await asyncio.sleep(0.01)
    return hub, live


class GatedSocket:
    """A client whose socket takes nothing until ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[dict] = []
        self.closed: int | None = None

    async def send(self, payload) -> None:
        await self.gate.wait()
        if isinstance(payload, str):
            self.sent.append(json.loads(payload))

    async def close(self, code: int, reason: str) -> None:
        self.closed = code


async def test_a_slow_clients_merged_updates_end_at_the_final_state(redis, settings):
    await merged_updates_end_at_the_final_state(redis, settings, GatedSocket())


async def merged_updates_end_at_the_final_state(redis, settings, client: GatedSocket, **options) -> None:
    """A '*' client stuck while 12 batches change two rows: its one pending update holds
    the newest rows, and once it reads, snapshot plus that update equal the board."""
    from app.api.auth import Verifier
    from app.api.ws_subscriptions import Connection, Session
    from app.projections.read_history import read_board
    import msgspec

    await project(redis, settings, base_frames())
    hub, live = await live_node(redis)
    conn = Connection(client.send, client.close, **options)
    writer = asyncio.create_task(hub.serve_ws(conn, 30.0))
    try:
        await Session(conn, live, settings, Verifier()).handle(json.dumps({"op": "subscribe", "channel": "board", "symbols": "*"}))
        pushes = live.pushes
        total = 1000
        for i in range(12):
            total += 100
            await project(redis, settings, [
                F.trade("ACB", 22950 + 50 * (i % 2), 100, total, time="09:40:00"),
                F.quote("FPT", 118000 + 100 * i, 118100 + 100 * i, time="09:40:00"),
            ])
        final = json.loads(msgspec.json.encode(await read_board(redis, F.SESSION)))
        sub = next(iter(conn.subs.values()))

        async def merged() -> bool:
            pending = json.loads(sub.preview()) if sub.pending else {}
            return pending.get("ACB", {}).get("market_volume") == total and pending.get("FPT") == final["FPT"]

        async with asyncio.timeout(10):
            while not await merged():
                await asyncio.sleep(0.01)
        assert live.pushes - pushes >= 2  # several updates were offered while the client was stuck
        client.gate.set()
        async with asyncio.timeout(10):
            while len(client.sent) < 2:
                await asyncio.sleep(0.01)
        snapshot, *updates = client.sent
        assert snapshot["type"] == "snapshot" and [u["seq"] for u in updates] == [1]
        state = snapshot["data"]
        state.update(updates[0]["data"])
        assert state == final
    finally:
        writer.cancel()
        await hub.stop()


async def test_a_client_blocked_past_the_send_timeout_is_closed_4001(redis, settings):
    from app.api.auth import Verifier
    from app.api.ws_subscriptions import Connection, Session

    await project(redis, settings, base_frames())
    hub, live = await live_node(redis)
    client = GatedSocket()
    conn = Connection(client.send, client.close)
    try:
        writer = asyncio.create_task(hub.serve_ws(conn, 0.2))
        await Session(conn, live, settings, Verifier()).handle(json.dumps({"op": "subscribe", "channel": "indices"}))
        await asyncio.wait_for(writer, 10)
        assert client.closed == 4001 and hub.metrics.drops["ws"] == 1
    finally:
        await hub.stop()


async def test_a_symbol_unsubscribed_while_its_trades_are_read_is_simply_dropped(redis, settings):
    from app.api.trade_history import TradeHistory
    from app.contracts import Notice

    await project(redis, settings, base_frames())
    history = TradeHistory(1000)
    await history.follow(redis, F.SESSION, "ACB", 10, bars=True)
    await project(redis, settings, [F.trade("ACB", 23000, 200, 1200, time="09:21:00")])
    assert history.mark(Notice(F.SESSION, ["tape"], names={"tape": ["ACB"]}))
    reading = asyncio.create_task(history.refresh(redis, F.SESSION))
    await asyncio.sleep(0)  # the read has gone to Redis
    history.forget("ACB")
    assert await reading == {}
    track = await history.follow(redis, F.SESSION, "ACB", 10, bars=True)
    assert [json.loads(t)["volume"] for _, t in track.trades] == [100, 200]
