"""The API against real uvicorn nodes and a real redis-server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import msgspec
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app import keys as K
from app.ingest.writer import StreamWriter
from app.projections import worker
from app.projections.read import market_snapshot
from tests import factory as F
from tests.apiserver import ApiServer, until
from tests.stores import stores
from tests.test_frames import FIXTURES

pytestmark = pytest.mark.anyio

RECEIVED = 1_795_600_000_000


def market_frames(n: int = 0) -> list[str]:
    return [
        F.quote("ACB", 22900, 22950, time="09:20:00"),
        F.trade("ACB", 22950, 100, 1000 + n, time="09:20:01"),
        F.trade("ACB", 22900, 300, 1300 + n, time="09:20:02"),
        F.foreign("ACB", 1000, 200, "09:20:05"),
        F.foreign("FPT", 100, 900, "09:20:05", buy_val=1e8, sell_val=9e8),
        F.index("VN30", 1900.0, "09:20:05"),
        F.index("VNINDEX", 1700.0, "09:20:06"),
        F.trade("VN30F2612", 1905.0, 4, 4, time="09:21:11"),
        F.quote("VN30F2612", 1904.9, 1905.1, time="09:21:12"),
    ]


async def project(redis, settings, frames) -> None:
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED) for f in frames])
    await writer.flush()
    await worker.drain(redis, settings)


@pytest.fixture(scope="module")
def node(redis_server):
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as server:
        yield server


async def get(server: ApiServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as client:
        return await client.get(path)


@stores
async def test_rest_routes_serve_the_projections(redis, settings, node):
    fixture = [l for l in (FIXTURES / "ssi_mi_messages.jsonl").read_text().splitlines() if l]
    await project(redis, settings, fixture)  # an earlier session, by date
    await project(redis, settings, market_frames())

    snap = await get(node, "/api/market/snapshot")
    assert snap.status_code == 200
    expected = json.loads(msgspec.json.encode(await market_snapshot(redis)))
    assert snap.json() == expected
    cli = subprocess.run(
        [sys.executable, "-m", "app", "snapshot"], env={**node.env}, capture_output=True, check=True
    )
    assert json.loads(cli.stdout) == snap.json()
    assert snap.json()["quotes"]["ACB"]["mua_chu_dong_volume"] == 100
    assert snap.json()["quotes"]["ACB"]["ban_chu_dong_volume"] == 300

    foreign = (await get(node, "/api/market/foreign")).json()
    assert foreign == expected["foreign"]
    assert [x["symbol"] for x in foreign["top_buy"]] == ["ACB"]
    assert [x["symbol"] for x in foreign["top_sell"]] == ["FPT"]

    indices = (await get(node, "/api/market/indices")).json()
    assert indices == expected["indices"] and set(indices) == {"VN30", "VNINDEX"}

    deriv = (await get(node, "/api/market/derivatives")).json()
    assert deriv == expected["derivatives"]
    assert deriv["basis"] == 1905.0 - 1900.0 and deriv["is_premium"] is True

    acb = await get(node, "/api/market/trade-analysis/ACB")
    assert acb.status_code == 200 and acb.json() == expected["quotes"]["ACB"]
    missing = await get(node, "/api/market/trade-analysis/NOPE")
    assert missing.status_code == 404 and "NOPE" in missing.json()["detail"]

    old = (await get(node, "/api/market/snapshot?date=2026-07-20")).json()
    assert old["indices"]["VNINDEX"]["value"] == 1746.55 and old["quotes"] == {}
    assert (await get(node, "/api/market/indices?date=2026-07-20")).json()["VNINDEX"]["value"] == 1746.55
    bad = await get(node, "/api/market/snapshot?date=20/07/2026")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["detail"]


async def test_vn30_components_come_from_redis(redis, node):
    assert (await get(node, "/api/vn30-components")).json() == {"symbols": []}
    await redis.hset(K.VN30_COMPONENTS, mapping={"symbols": "ACB,BCM,VCB"})
    assert (await get(node, "/api/vn30-components")).json() == {"symbols": ["ACB", "BCM", "VCB"]}


async def test_health_readiness_metrics_and_openapi(redis, settings, node):
    assert (await get(node, "/healthz")).json() == {"status": "ok"}
    await project(redis, settings, market_frames())
    ready = await get(node, "/readyz")
    assert ready.status_code == 200 and ready.json()["projector_lag_ms"] == 0
    # Frames nobody folded yet: the projector lags, the node is not ready.
    writer = StreamWriter(redis)
    await writer.append([(F.index("VN30", 1901.0, "09:30:00"), RECEIVED)])
    await writer.flush()
    await redis.xadd(K.SessionKeys(F.SESSION).frames, {"t": 1, "f": F.index("VN30", 1902.0, "09:30:01")}, id=f"{2 * 10**13}-0")
    lagging = await get(node, "/readyz")
    assert lagging.status_code == 503 and lagging.json()["status"] == "lagging"
    metrics = (await get(node, "/metrics")).text
    assert f'stock_tracker_frames_folded{{session="{F.SESSION}"}} {len(market_frames())}' in metrics
    assert f'stock_tracker_frames_ingested{{session="{F.SESSION}"}} {len(market_frames()) + 2}' in metrics
    assert 'stock_tracker_ws_clients{channel="market"}' in metrics
    assert "stock_tracker_projector_lag_ms" in metrics
    spec = (await get(node, "/schema/openapi.json")).json()
    assert "/api/market/snapshot" in spec["paths"] and "/api/market/trade-analysis/{symbol}" in spec["paths"]


async def recv_json(ws, timeout: float = 10.0, status: bool = False):
    """The next JSON message, skipping heartbeats (and feed status, unless asked)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                data = json.loads(message)
                if status or not (isinstance(data, dict) and data.get("type") == "status"):
                    return data


@stores
async def test_every_channel_sends_state_at_once_then_on_change(redis, settings, node):
    await project(redis, settings, market_frames())
    expected = json.loads(msgspec.json.encode(await market_snapshot(redis)))
    async with websockets.connect(node.ws + "/ws/market") as market, \
            websockets.connect(node.ws + "/ws/foreign") as foreign, \
            websockets.connect(node.ws + "/ws/index") as index:
        assert await recv_json(market) == expected
        assert await recv_json(foreign) == expected["foreign"]
        assert await recv_json(index) == expected["indices"]
        await project(redis, settings, [F.index("VN30", 1950.5, "09:40:00")])
        assert (await recv_json(index))["VN30"]["value"] == 1950.5
        changed = await recv_json(market)
        assert changed["indices"]["VN30"]["value"] == 1950.5
        assert changed["derivatives"]["basis"] == 1905.0 - 1950.5


@stores
async def test_two_nodes_show_the_same_market(redis, settings, redis_server, node):
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as other:
        async with websockets.connect(node.ws + "/ws/market") as a, websockets.connect(other.ws + "/ws/market") as b:
            await recv_json(a)
            await recv_json(b)
            await project(redis, settings, market_frames())
            final = json.loads(msgspec.json.encode(await market_snapshot(redis)))

            async def reaches_final(ws):
                while (await recv_json(ws)) != final:
                    pass
                return True

            assert await asyncio.wait_for(reaches_final(a), 10)
            assert await asyncio.wait_for(reaches_final(b), 10)


async def test_a_burst_of_notices_gives_at_most_two_pushes_with_the_final_state(redis, redis_server):
    with ApiServer(redis_server.url, WS_THROTTLE_MS="100") as server:
        keys = K.SessionKeys(F.SESSION)
        await F.register_session(redis)
        await redis.sadd(keys.members("index"), "VN30")
        await redis.hset(keys.entity("index", "VN30"), mapping={"index_id": "VN30", "value": "0.0"})
        async with websockets.connect(server.ws + "/ws/index") as ws:
            assert (await recv_json(ws))["VN30"]["value"] == 0.0
            notice = msgspec.json.encode({"date": F.SESSION, "kinds": ["index"], "checkpoint": ""})
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(1, 1001):
                    pipe.hset(keys.entity("index", "VN30"), "value", repr(float(i)))
                    pipe.publish(K.SessionKeys(F.SESSION).notify, notice)
                await pipe.execute()
            # The burst spans this many throttle windows (one on an idle machine); each may
            # end in one push, plus the first one at once.
            windows = int((loop.time() - started) / 0.1)
            received = []
            with pytest.raises(asyncio.TimeoutError):
                async with asyncio.timeout(0.6):
                    while True:
                        received.append((await recv_json(ws))["VN30"]["value"])
            assert 1 <= len(received) <= 2 + windows
            assert received[-1] == 1000.0


async def test_token_is_required_when_configured(redis_server):
    with ApiServer(redis_server.url, WS_TOKEN="s3cret") as server:
        for url in ("/ws/market", "/ws/market?token=wrong", "/ws/index?token="):
            async with websockets.connect(server.ws + url) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await recv_json(ws)
                assert closed.value.rcvd.code == 1008
        async with websockets.connect(server.ws + "/ws/market?token=s3cret") as ws:
            assert set(await recv_json(ws)) == {"quotes", "indices", "foreign", "derivatives"}


async def test_per_ip_connection_limit(redis_server):
    with ApiServer(redis_server.url, WS_MAX_PER_IP="3") as server:
        sockets = [await websockets.connect(server.ws + "/ws/market") for _ in range(3)]
        for ws in sockets:
            await recv_json(ws)
        async with websockets.connect(server.ws + "/ws/foreign") as extra:
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(extra)
            assert closed.value.rcvd.code == 1013
        await sockets.pop().close()

        async def admitted():
            async with websockets.connect(server.ws + "/ws/index") as ws:
                try:
                    return await recv_json(ws, timeout=2) is not None
                except ConnectionClosed:
                    return False

        assert await until(admitted)
        for ws in sockets:
            await ws.close()


async def test_oversized_client_messages_close_the_socket(node):
    async with websockets.connect(node.ws + "/ws/market") as ws:
        await recv_json(ws)
        await ws.send("x" * 10_000)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
        assert closed.value.rcvd.code == 1009


async def test_feed_status_is_broadcast(redis, node):
    async with websockets.connect(node.ws + "/ws/market") as ws, websockets.connect(node.ws + "/ws/index") as ws2:
        await recv_json(ws)
        await recv_json(ws2)
        await redis.publish(K.FEED_STATUS_CHANNEL, '{"connected": false}')
        assert await recv_json(ws, status=True) == {"type": "status", "connected": False, "reason": "feed"}
        assert await recv_json(ws2, status=True) == {"type": "status", "connected": False, "reason": "feed"}
        await redis.publish(K.FEED_STATUS_CHANNEL, '{"connected": true}')
        assert await recv_json(ws, status=True) == {"type": "status", "connected": True}


def _raw_websocket(port: int, path: str):
    """A WebSocket that completes the handshake and then never reads (tiny buffer)."""
    import base64
    import os
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_client_that_never_reads_is_dropped_and_delays_nobody(redis, redis_server):
    keys = K.SessionKeys(F.SESSION)
    await F.register_session(redis)
    symbols = [f"S{i:04d}" for i in range(3000)]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.members("stats"), *symbols)
        for sym in symbols:  # a large snapshot, so unread pushes pile up fast
            pipe.hset(keys.entity("stats", sym), mapping={"symbol": sym, "total_volume": "1", "mua_chu_dong_value": "1.5"})
        pipe.sadd(keys.members("index"), "VN30")
        pipe.hset(keys.entity("index", "VN30"), mapping={"index_id": "VN30", "value": "0.0"})
        await pipe.execute()
    with ApiServer(redis_server.url, WS_THROTTLE_MS="20", WS_SEND_TIMEOUT_S="0.5") as server:
        stuck = _raw_websocket(server.port, "/ws/market")
        try:
            async with websockets.connect(server.ws + "/ws/market", max_size=None) as healthy:
                await recv_json(healthy)
                notice = msgspec.json.encode({"date": F.SESSION, "kinds": ["index"], "checkpoint": ""})
                lags = []
                for i in range(1, 61):
                    await redis.hset(keys.entity("index", "VN30"), "value", repr(float(i)))
                    sent = asyncio.get_running_loop().time()
                    await redis.publish(K.SessionKeys(F.SESSION).notify, notice)
                    while (await recv_json(healthy))["indices"]["VN30"]["value"] != float(i):
                        pass
                    lags.append(asyncio.get_running_loop().time() - sent)

                async def dropped():
                    text = (await get(server, "/metrics")).text
                    return 'stock_tracker_ws_drops_total{channel="market"} 1' in text

                assert await until(dropped, timeout=10)
                # The healthy client got every change while the other one stalled.
                assert max(lags) < 1.0
                text = (await get(server, "/metrics")).text
                assert 'stock_tracker_ws_clients{channel="market"} 1' in text
        finally:
            stuck.close()


async def test_redis_restart_resyncs_clients_without_a_node_restart(redis_binary):
    from app.local_redis import private_redis_server
    from app.store import redis_from_url

    store = private_redis_server(redis_binary, appendonly=True)
    store.start()
    try:
        client = redis_from_url(store.url)
        keys = K.SessionKeys(F.SESSION)
        await F.register_session(client)
        await client.sadd(keys.members("index"), "VN30")
        await client.hset(keys.entity("index", "VN30"), mapping={"index_id": "VN30", "value": "1.0"})
        with ApiServer(store.url, WS_THROTTLE_MS="20") as server:
            async with websockets.connect(server.ws + "/ws/index") as ws:
                assert (await recv_json(ws))["VN30"]["value"] == 1.0
                await client.aclose()
                store.stop()  # Redis goes away: clients are told at once ...
                assert await recv_json(ws, timeout=20, status=True) == {"type": "status", "connected": False, "reason": "store"}
                store.start()  # ... it comes back on the same port, data from its AOF
                client = redis_from_url(store.url)
                # Status first, then full state, without any new notice or a node restart.
                assert await recv_json(ws, timeout=20, status=True) == {"type": "status", "connected": True}
                assert (await recv_json(ws, timeout=20, status=True))["VN30"]["value"] == 1.0
                await client.hset(keys.entity("index", "VN30"), "value", "2.0")
                notice = msgspec.json.encode({"date": F.SESSION, "kinds": ["index"], "checkpoint": ""})
                await client.publish(K.SessionKeys(F.SESSION).notify, notice)
                assert (await recv_json(ws))["VN30"]["value"] == 2.0
        await client.aclose()
    finally:
        store.cleanup()


async def test_heartbeat_ping_bytes(redis_server):
    with ApiServer(redis_server.url, WS_HEARTBEAT_S="0.2") as server:
        async with websockets.connect(server.ws + "/ws/index") as ws:
            async with asyncio.timeout(5):
                while (message := await ws.recv()) != b"ping":
                    assert isinstance(message, str)  # state or status, never other bytes
