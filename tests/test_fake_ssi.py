"""The fake FastConnect server, spoken to as a raw classic SignalR client (httpx + websockets)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import socket
import time as _time
from contextlib import asynccontextmanager
from datetime import date, time
from typing import AsyncIterator, Callable
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
import websockets
from litestar import Litestar
from litestar.testing import AsyncTestClient
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from app.sim.fake import FakeFastConnect, create_fake_app, parse_channels, serve_fake
from app.sim import ALL_CHANNELS, VN30_SYMBOLS, MarketSimulator

pytestmark = pytest.mark.anyio

HUB = "FcMarketDataV2Hub"
CONNECTION_DATA = json.dumps([{"name": HUB}])  # byte for byte what the Python SDK sends
DAY = date(2026, 7, 20)
OPEN_AT = time(9, 15, 1)  # continuous trading from the first second, after a short catch-up
EVERYTHING = "X-QUOTE:ALL,X-TRADE:ALL,X:ALL,R:ALL,MI:ALL,F:ALL,B:ALL"


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def running(**kwargs) -> AsyncIterator[tuple[FakeFastConnect, "Client"]]:
    kwargs.setdefault("start", DAY)
    kwargs.setdefault("open_at", OPEN_AT)
    kwargs.setdefault("speed", 30.0)
    fake = FakeFastConnect(**kwargs)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        fake.app, log_config=None, ws_ping_interval=None, lifespan="on", timeout_graceful_shutdown=5,
    ))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await until(lambda: server.started or task.done(), what="uvicorn startup")
    if task.done():
        task.result()
    client = Client(f"127.0.0.1:{port}")
    try:
        yield fake, client
    finally:
        await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Client:
    """Just enough of a classic SignalR client to drive the fake by hand."""

    def __init__(self, hostport: str) -> None:
        self.hostport = hostport
        self.base = f"http://{hostport}"
        self.http = httpx.AsyncClient(base_url=self.base, timeout=5)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def token(self, consumer_id: str = "demo", secret: str = "demo") -> str:
        res = await self.http.post("/api/v2/Market/AccessToken", json={"consumerID": consumer_id, "consumerSecret": secret})
        return res.json()["data"]["accessToken"]

    async def negotiate(self, token: str, method: str = "POST", protocol: str | None = "1.5") -> httpx.Response:
        params = {"connectionData": CONNECTION_DATA}
        if protocol is not None:
            params["clientProtocol"] = protocol
        return await self.http.request(method, "/v2.0/signalr/negotiate", params=params, headers=bearer(token))

    def ws_url(self, connection_token: str, action: str = "connect", transport: str = "webSockets") -> str:
        query = urlencode({"transport": transport, "connectionToken": connection_token,
                           "connectionData": CONNECTION_DATA, "clientProtocol": "1.5"})
        return f"ws://{self.hostport}/v2.0/signalr/{action}?{query}"

    async def connect(self, token: str | None = None, **kwargs):
        token = token or await self.token()
        neg = (await self.negotiate(token)).json()
        ws = await websockets.connect(self.ws_url(neg["ConnectionToken"]), additional_headers=bearer(token), **kwargs)
        return ws, neg, token

    async def subscribe(self, ws, spec: str, invocation=0) -> None:
        await ws.send(json.dumps({"H": HUB, "M": "SwitchChannels", "A": [spec], "I": invocation}))
        while True:
            msg = await recv_json(ws)
            if "I" in msg:
                assert msg == {"I": str(invocation)}
                return


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def recv_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def decode(a0: str) -> tuple[str, str, dict]:
    env = json.loads(a0)
    content = json.loads(env["Content"])
    return env["DataType"], content.get("Symbol") or content.get("IndexId"), content


async def broadcasts(ws, until_: Callable[[list], bool], timeout: float = 8.0) -> list[tuple[str, str, str]]:
    """(DataType, symbol, A[0]) of every Broadcast until ``until_(so_far)``; keep-alives skipped."""
    got: list[tuple[str, str, str]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not until_(got):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"timed out after {len(got)} broadcasts")
        msg = await recv_json(ws, left)
        for inv in msg.get("M", []):
            assert inv["H"] == HUB and inv["M"] == "Broadcast" and len(inv["A"]) == 1
            data_type, symbol, _ = decode(inv["A"][0])
            got.append((data_type, symbol, inv["A"][0]))
    return got


# ---------------------------------------------------------------------------


def test_channel_specs_parse_like_the_documented_syntax():
    assert parse_channels("X-QUOTE:ACB-VCB,R:ALL,MI:VN30") == {
        "X-QUOTE": frozenset({"ACB", "VCB"}), "R": None, "MI": frozenset({"VN30"})}
    assert parse_channels(" x-quote : acb - vcb , X-QUOTE:SSI ") == {"X-QUOTE": frozenset({"ACB", "VCB", "SSI"})}
    assert parse_channels("B:SSI,B:ALL") == {"B": None}
    for bad in ("", "X-QUOTE", "X-QUOTE:", "NOPE:ALL", ":ACB"):
        with pytest.raises(ValueError):
            parse_channels(bad)


async def test_access_token_json_is_exactly_what_the_sdk_splats(caplog):
    caplog.set_level(logging.DEBUG, logger="stock_tracker.fake_ssi")
    async with running(consumer_id="cid", consumer_secret="s3cr3t-XYZ", token_ttl_s=5 * 3600) as (fake, c):
        res = await c.http.post("/api/v2/Market/AccessToken", json={"consumerID": "cid", "consumerSecret": "s3cr3t-XYZ"})
        assert res.status_code == 200
        body = res.json()
        assert list(body) == ["message", "status", "data"]
        assert body["message"] == "Success" and body["status"] == 200 and list(body["data"]) == ["accessToken"]
        token = body["data"]["accessToken"]
        header, payload, signature = token.split(".")
        assert payload.isalnum() and header.isalnum() and signature.isalnum()  # no '-', '_', '+', '/', '='
        claims = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
        assert abs(claims["exp"] - (_time.time() + 5 * 3600)) < 5
        assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == claims

        for wrong in ({"consumerID": "cid", "consumerSecret": "nope"}, {"consumerID": "x"}, None):
            res = await c.http.post("/api/v2/Market/AccessToken", content=json.dumps(wrong))
            body = res.json()
            assert list(body) == ["message", "status", "data"]
            assert body["status"] == 400 and body["data"] is None and body["message"]
        res = await c.http.post("/api/v2/Market/AccessToken", content=b"not json")
        assert res.json()["status"] == 400
        assert fake.stats.tokens_issued == 1

        ws, _, _ = await c.connect(token)
        await recv_json(ws)
        await ws.close()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "stock_tracker.fake_ssi")
    assert "event=token_issued" in logged and "event=token_refused" in logged
    assert "s3cr3t-XYZ" not in logged and token not in logged and signature not in logged


async def test_rest_needs_a_valid_unexpired_bearer_token():
    async with running(token_ttl_s=0.4) as (fake, c):
        token = await c.token()
        url = "/api/v2/Market/IndexComponents?indexCode=VN30"
        assert (await c.http.get(url, headers=bearer(token))).status_code == 200
        for headers in ({}, bearer("nope"), {"Authorization": f"Basic {token}"}, {"Authorization": "Bearer"}):
            res = await c.http.get(url, headers=headers)
            assert res.status_code == 401 and res.json() == {"Message": "Authorization has been denied for this request."}
        exp = json.loads(base64.b64decode(token.split(".")[1] + "==="))["exp"]
        await until(lambda: _time.time() > exp + 0.05, timeout=3, what="token expiry")
        assert (await c.http.get(url, headers=bearer(token))).status_code == 401
        assert (await c.negotiate(token)).status_code == 401


async def test_index_components_shape_and_both_param_styles():
    async with running() as (fake, c):
        h = bearer(await c.token())
        plain = await c.http.get("/api/v2/Market/IndexComponents",
                                 params={"indexCode": "VN30", "pageIndex": 1, "pageSize": 100}, headers=h)
        prefixed = await c.http.get("/api/v2/Market/IndexComponents",
                                    params={"lookupRequest.indexCode": "VN30", "lookupRequest.pageIndex": "1",
                                            "lookupRequest.pageSize": "100"}, headers=h)
        assert plain.status_code == prefixed.status_code == 200
        body = plain.json()
        assert body == prefixed.json()
        assert list(body) == ["data", "message", "status", "totalRecord"]
        assert (body["message"], body["status"], body["totalRecord"]) == ("Success", "Success", 1)
        [index] = body["data"]
        assert {k: v for k, v in index.items() if k != "IndexComponent"} == {
            "IndexCode": "VN30", "IndexName": "VN30", "Exchange": "HOSE", "TotalSymbolNo": "30"}
        assert index["IndexComponent"] == [{"Isin": s, "StockSymbol": s} for s in VN30_SYMBOLS]

        page2 = (await c.http.get("/api/v2/Market/IndexComponents",
                                  params={"indexCode": "vn30", "pageIndex": 2, "pageSize": 10}, headers=h)).json()
        assert [x["StockSymbol"] for x in page2["data"][0]["IndexComponent"]] == list(VN30_SYMBOLS[10:20])
        assert page2["data"][0]["TotalSymbolNo"] == "30"
        other = (await c.http.get("/api/v2/Market/IndexComponents", params={"indexCode": "VN100"}, headers=h)).json()
        assert other["data"] == [] and other["totalRecord"] == 0
        bad = (await c.http.get("/api/v2/Market/IndexComponents", params={"pageSize": "x"}, headers=h)).json()
        assert bad["status"] == "Error" and bad["data"] is None

        sec = (await c.http.get("/api/v2/Market/Securities", params={"lookupRequest.market": "DER"}, headers=h)).json()
        assert sec["status"] == "Success" and sec["totalRecord"] == 2
        assert [r["Symbol"] for r in sec["data"]] == ["VN30F2608", "VN30F2609"]
        assert set(sec["data"][0]) == {"Market", "Symbol", "StockName", "StockEnName"}
        allsec = (await c.http.get("/api/v2/Market/Securities", params={"pageSize": 10}, headers=h)).json()
        assert allsec["totalRecord"] == 32 and len(allsec["data"]) == 10
        idx = (await c.http.get("/api/v2/Market/IndexList", params={"exchange": "HNX"}, headers=h)).json()
        assert idx["data"] == [{"IndexCode": "HNXIndex", "IndexName": "HNXIndex", "Exchange": "HNX"}]
        assert (await c.http.get("/api/v2/Market/DailyOhlc", headers=h)).status_code == 404


async def test_negotiate_by_get_and_post():
    async with running(keepalive_s=4.0) as (fake, c):
        token = await c.token()
        for method in ("GET", "POST"):
            res = await c.negotiate(token, method)
            assert res.status_code == 200
            neg = res.json()
            assert set(neg) == {"Url", "ConnectionToken", "ConnectionId", "KeepAliveTimeout", "DisconnectTimeout",
                                "ConnectionTimeout", "TryWebSockets", "ProtocolVersion", "TransportConnectTimeout",
                                "LongPollDelay"}
            assert neg["Url"] == "/v2.0/signalr" and neg["TryWebSockets"] is True
            assert (neg["KeepAliveTimeout"], neg["DisconnectTimeout"]) == (8.0, 12.0)
            assert neg["ProtocolVersion"] == "1.5"
            # Opaque and URL-unsafe, like SignalR's: clients have to encode it.
            assert any(ch in neg["ConnectionToken"] for ch in "+/")
        for sent, echoed in (("1.3", "1.3"), ("2.0", "2.0"), ("1.0", "1.2"), ("2.1", "2.0"), ("x", "1.2"), (None, "1.2")):
            assert (await c.negotiate(token, protocol=sent)).json()["ProtocolVersion"] == echoed
        assert (await c.negotiate("bad")).status_code == 401
        res = await c.http.get("/v2.0/signalr/negotiate", params={"connectionData": '[{"name":"OtherHub"}]'},
                               headers=bearer(token))
        assert res.status_code == 400
        assert fake.stats.negotiations == 8


async def test_connect_without_start_gets_init_then_broadcasts_after_switch_channels():
    async with running() as (fake, c):
        ws, neg, _ = await c.connect()
        init = await recv_json(ws)
        assert list(init) == ["C", "S", "M"] and init["S"] == 1 and init["M"] == [] and isinstance(init["C"], str)
        await ws.send(json.dumps({"H": HUB, "M": "SwitchChannels", "A": ["X-QUOTE:ACB-VCB"], "I": 0}))
        msg = await recv_json(ws)
        while msg == {}:
            msg = await recv_json(ws)
        assert msg == {"I": "0"}
        cursors, frames = [], []
        while len(frames) < 6:
            msg = await recv_json(ws)
            if msg == {}:
                continue
            assert set(msg) == {"C", "M"}
            cursors.append(int(msg["C"].split("B,")[1].split("|")[0]))
            for inv in msg["M"]:
                assert set(inv) == {"H", "M", "A"} and inv["H"] == HUB and inv["M"] == "Broadcast"
                assert len(inv["A"]) == 1 and isinstance(inv["A"][0], str)
                data_type, symbol, _ = decode(inv["A"][0])
                assert data_type == "X-QUOTE" and symbol in {"ACB", "VCB"}
                frames.append(inv["A"][0])
        assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
        await ws.close()
        assert fake.stats.frames_sent_by_conn[neg["ConnectionId"]] >= 6

    # The strings are the simulator's, untouched: the same seed replays them in order.
    pending = list(frames)
    sim = MarketSimulator(seed=1, start=DAY, days=None, channels=ALL_CHANNELS, open_at=OPEN_AT)
    for ev in itertools.islice(sim.events(), 300_000):
        if pending and ev.frame == pending[0]:
            pending.pop(0)
        if not pending:
            break
    assert not pending


async def test_invocation_results_echo_the_id_as_a_string():
    async with running() as (fake, c):
        ws, _, _ = await c.connect()
        await recv_json(ws)

        async def invoke(payload: dict) -> dict:
            await ws.send(json.dumps(payload))
            msg = await recv_json(ws)
            while "I" not in msg:  # keep-alives and data
                msg = await recv_json(ws)
            return msg

        assert await invoke({"H": HUB, "M": "SwitchChannels", "A": ["MI:VN30"], "I": "1"}) == {"I": "1"}
        assert await invoke({"H": "fcmarketdatav2hub", "M": "switchChannels", "A": ["F:ALL"], "I": 2}) == {"I": "2"}
        for i, payload in enumerate((
            {"H": HUB, "M": "Subscribe", "A": ["X:ALL"]},
            {"H": "OtherHub", "M": "SwitchChannels", "A": ["X:ALL"]},
            {"H": HUB, "M": "SwitchChannels", "A": ["NOPE:ALL"]},
            {"H": HUB, "M": "SwitchChannels", "A": []},
        ), start=3):
            res = await invoke({**payload, "I": i})
            assert set(res) == {"I", "E"} and res["I"] == str(i) and res["E"]
        [conn] = fake._conns.values()
        assert conn.session.sub == {"MI": frozenset({"VN30"}), "F": None}
        await ws.close()


async def test_only_subscribed_data_types_and_symbols_arrive():
    async with running() as (fake, c):
        ws, _, _ = await c.connect()
        await recv_json(ws)
        await c.subscribe(ws, " X-TRADE: ACB - VCB , mi:vn30 ")
        got = await broadcasts(ws, lambda g: {"X-TRADE", "MI"} <= {t for t, _, _ in g} and len(g) >= 12)
        assert {(t, s) for t, s, _ in got} <= {("X-TRADE", "ACB"), ("X-TRADE", "VCB"), ("MI", "VN30")}
        await ws.close()


async def test_switch_channels_union_by_default_and_replace_when_configured():
    async with running(speed=60.0) as (fake, c):
        ws, _, _ = await c.connect()
        await recv_json(ws)
        await c.subscribe(ws, "MI:VN30", 0)
        await c.subscribe(ws, "MI:VNINDEX", 1)
        got = await broadcasts(ws, lambda g: {s for _, s, _ in g} >= {"VN30", "VNINDEX"})
        assert {t for t, _, _ in got} == {"MI"} and {s for _, s, _ in got} <= {"VN30", "VNINDEX"}
        await ws.close()

    async with running(speed=60.0, switch_mode="replace") as (fake, c):
        ws, _, _ = await c.connect()
        await recv_json(ws)
        await c.subscribe(ws, "MI:VN30", 0)
        await broadcasts(ws, lambda g: len(g) >= 1)
        await c.subscribe(ws, "MI:VNINDEX", 1)
        # The outbox keeps order, so nothing after the result predates the switch.
        got = await broadcasts(ws, lambda g: len(g) >= 4)
        assert {(t, s) for t, s, _ in got} == {("MI", "VNINDEX")}
        await ws.close()


async def test_keep_alive_when_idle():
    async with running(keepalive_s=0.15) as (fake, c):
        ws, neg, _ = await c.connect()
        assert (neg["KeepAliveTimeout"], neg["DisconnectTimeout"]) == (0.3, pytest.approx(0.45))
        await recv_json(ws)  # init
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await asyncio.wait_for(ws.recv(), 2) == "{}"
        assert await asyncio.wait_for(ws.recv(), 2) == "{}"
        assert loop.time() - t0 >= 0.25
        assert fake.stats.keepalives_sent >= 2 and fake.stats.frames_sent == 0
        await ws.close()


async def test_connect_refusals():
    async with running() as (fake, c):
        token = await c.token()
        neg = (await c.negotiate(token)).json()
        cases = [
            (c.ws_url(neg["ConnectionToken"]), bearer("bad"), 401),
            (c.ws_url("made-up-token"), bearer(token), 400),
            (c.ws_url(neg["ConnectionToken"], transport="serverSentEvents"), bearer(token), 400),
        ]
        for url, headers, status in cases:
            with pytest.raises(InvalidStatus) as info:
                await websockets.connect(url, additional_headers=headers)
            assert info.value.response.status_code == status
        assert fake.stats.connections_total == 0


async def test_start_ping_abort_and_reconnect():
    async with running(speed=60.0) as (fake, c):
        token = await c.token()
        neg = (await c.negotiate(token)).json()
        ws = await websockets.connect(c.ws_url(neg["ConnectionToken"]), additional_headers=bearer(token))
        await recv_json(ws)
        query = {"transport": "webSockets", "connectionToken": neg["ConnectionToken"],
                 "connectionData": CONNECTION_DATA, "clientProtocol": "1.5"}
        res = await c.http.get("/v2.0/signalr/start", params=query, headers=bearer(token))
        assert res.status_code == 200 and res.json() == {"Response": "started"}
        assert (await c.http.get("/v2.0/signalr/ping")).json() == {"Response": "pong"}
        await c.subscribe(ws, "MI:ALL")
        await broadcasts(ws, lambda g: len(g) >= 1)

        res = await c.http.post("/v2.0/signalr/abort", params=query, headers=bearer(token))
        assert res.status_code == 200
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await recv_json(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000

        # /reconnect resumes the same connection: no init frame, the subscription kept.
        ws = await websockets.connect(c.ws_url(neg["ConnectionToken"], "reconnect"), additional_headers=bearer(token))
        first = await recv_json(ws)
        assert "S" not in first
        got = await broadcasts(ws, lambda g: len(g) >= 3)
        assert {t for t, _, _ in got} == {"MI"}
        assert fake.stats.connections_total == 2 and list(fake._conns) == [neg["ConnectionId"]]
        await ws.close()
        assert (await c.http.post("/v2.0/signalr/abort", params={"connectionToken": "nope"},
                                  headers=bearer(token))).status_code == 400


async def test_fault_drop_closes_every_socket_abruptly():
    async with running() as (fake, c):
        sockets = [(await c.connect())[0] for _ in range(2)]
        for ws in sockets:
            await recv_json(ws)
        await until(lambda: fake.stats.connections_open == 2)
        res = await c.http.post("/_fake/drop")
        assert res.json() == {"ok": True, "dropped": 2}
        for ws in sockets:
            with pytest.raises(ConnectionClosedError) as info:
                while True:
                    await recv_json(ws)
            assert info.value.rcvd is None  # no close frame: the TCP connection just went away
        await until(lambda: fake.stats.connections_open == 0)

        ws, _, _ = await c.connect()
        await recv_json(ws)
        fake.drop()
        with pytest.raises(ConnectionClosedError):
            while True:
                await recv_json(ws)


async def test_fault_stall_silences_everything_then_resumes():
    async with running(keepalive_s=0.1, speed=60.0) as (fake, c):
        ws, _, _ = await c.connect()
        await recv_json(ws)
        await c.subscribe(ws, "MI:ALL,F:ALL")
        await broadcasts(ws, lambda g: len(g) >= 1)

        res = await c.http.post("/_fake/stall", params={"seconds": "0.8"})
        assert res.json() == {"ok": True, "seconds": 0.8}
        loop = asyncio.get_running_loop()
        stalled_at = loop.time()
        sent = (fake.stats.frames_sent, fake.stats.keepalives_sent)
        # Watch the socket for most of the stall: what arrives was on the wire before it.
        received = []
        while loop.time() < stalled_at + 0.6:
            try:
                received.append(await asyncio.wait_for(ws.recv(), stalled_at + 0.6 - loop.time()))
            except asyncio.TimeoutError:
                break
        assert (fake.stats.frames_sent, fake.stats.keepalives_sent) == sent
        assert fake.stats.connections_open == 1 and fake.stats.frames_dropped == 0
        msg = await recv_json(ws, timeout=3)  # a keep-alive or the backlog, once the stall ends
        assert loop.time() >= stalled_at + 0.75
        assert msg == {} or msg["M"]
        await broadcasts(ws, lambda g: len(g) >= 1)

        fake.stall(0.3)  # the Python switch does the same
        await until(lambda: fake._stall_until > loop.time(), timeout=1)
        frozen = fake.stats.keepalives_sent + fake.stats.frames_sent
        await until(lambda: fake._stall_until - loop.time() < 0.05, timeout=2)
        assert fake.stats.keepalives_sent + fake.stats.frames_sent == frozen
        await broadcasts(ws, lambda g: len(g) >= 1)
        await ws.close()


async def test_fault_reject_tokens():
    async with running() as (fake, c):
        token = await c.token()
        assert (await c.http.post("/_fake/reject-tokens", params={"on": "1"})).json() == {"ok": True, "on": True}
        res = await c.http.post("/api/v2/Market/AccessToken", json={"consumerID": "demo", "consumerSecret": "demo"})
        assert res.json()["status"] == 400 and res.json()["data"] is None
        assert (await c.http.get("/api/v2/Market/IndexList", headers=bearer(token))).status_code == 401
        assert (await c.negotiate(token)).status_code == 401
        await c.http.post("/_fake/reject-tokens", params={"on": "0"})
        assert (await c.http.get("/api/v2/Market/IndexList", headers=bearer(token))).status_code == 200
        fake.reject_tokens(True)
        assert (await c.negotiate(token)).status_code == 401
        fake.reject_tokens(False)
        assert (await c.negotiate(token)).status_code == 200


async def test_fault_expire_tokens_invalidates_old_tokens_and_closes_sockets():
    async with running() as (fake, c):
        ws, _, old = await c.connect()
        await recv_json(ws)
        assert (await c.http.post("/_fake/expire-tokens")).json() == {"ok": True, "closed": 1}
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await recv_json(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert (await c.http.get("/api/v2/Market/IndexComponents", headers=bearer(old))).status_code == 401
        assert (await c.negotiate(old)).status_code == 401
        ws, _, new = await c.connect()
        assert new != old and (await recv_json(ws))["S"] == 1
        fake.expire_tokens()
        with pytest.raises(ConnectionClosed):
            while True:
                await recv_json(ws)


async def test_fault_burst_and_stats():
    # A market so slow it is frozen after its first second: only the burst moves it.
    async with running(speed=0.0001) as (fake, c):
        ws, neg, _ = await c.connect()
        await recv_json(ws)
        await c.subscribe(ws, EVERYTHING)
        generated = fake.stats.frames_generated
        assert (await c.http.post("/_fake/burst", params={"frames": 3000})).json() == {"ok": True, "frames": 3000}
        got = await broadcasts(ws, lambda g: len(g) >= 3000, timeout=10)
        assert {t for t, _, _ in got} >= {"X-QUOTE", "X-TRADE", "X", "B"}
        # Paced again from where the burst stopped, so the frames stamped with the same
        # instant as the first one after it follow at once; then the market is frozen again.
        await until(lambda: fake._burst == 0 and fake.stats.frames_sent == fake.stats.frames_generated - generated)
        stats = (await c.http.get("/_fake/stats")).json()
        burst = stats["frames_generated"] - generated
        # A few hundred more when the burst stops inside an auction print (one instant).
        assert 3000 <= burst < 3500 and len(got) <= burst
        assert stats["frames_sent"] == burst and stats["frames_sent_by_conn"] == {neg["ConnectionId"]: burst}
        assert stats["connections_open"] == 1 and stats["tokens_issued"] == 1 and stats["frames_dropped"] == 0
        assert set(stats["subscriptions"][neg["ConnectionId"]]) == set(EVERYTHING.split(","))
        fake.burst(10)
        await broadcasts(ws, lambda g: len(g) >= 10)
        await ws.close()


async def test_a_stuck_client_loses_frames_without_stalling_the_others():
    async with running(speed=0.0001, queue_max=4000) as (fake, c):
        fast, fast_neg, token = await c.connect()
        await recv_json(fast)
        await c.subscribe(fast, EVERYTHING)
        # A client that never reads, with a tiny receive window.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", int(c.hostport.split(":")[1])))
        neg = (await c.negotiate(token)).json()
        stuck = await websockets.connect(c.ws_url(neg["ConnectionToken"]), sock=raw, additional_headers=bearer(token),
                                         max_queue=1, max_size=None, compression=None)
        await recv_json(stuck)
        await c.subscribe(stuck, EVERYTHING)
        generated = fake.stats.frames_generated
        fake.burst(20_000)
        await broadcasts(fast, lambda g: len(g) >= 20_000, timeout=20)
        sent = fake.stats.frames_sent_by_conn
        # The fake goes on generating after the burst: the fast client must get at least
        # every frame made until the burst ended (equality with a moving count raced it).
        await until(lambda: fake._burst == 0, timeout=20)
        target = fake.stats.frames_generated - generated
        await until(lambda: sent[fast_neg["ConnectionId"]] >= target, timeout=20)
        assert fake._conns[fast_neg["ConnectionId"]].dropped == 0
        assert fake._conns[neg["ConnectionId"]].dropped > 0 and fake.stats.frames_dropped > 0
        assert sent[neg["ConnectionId"]] < 20_000
        await fast.close()
        fake.drop()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(_drain(stuck), 10)


async def _drain(ws) -> None:
    while True:
        await ws.recv()


async def test_admin_endpoints_are_loopback_only():
    fake = FakeFastConnect(start=DAY, open_at=OPEN_AT, speed=1.0)
    async with AsyncTestClient(app=fake.app) as client:  # its peer is "testclient", not a loopback address
        for path in ("/_fake/drop", "/_fake/stall?seconds=1", "/_fake/reject-tokens?on=1", "/_fake/expire-tokens",
                     "/_fake/burst?frames=1"):
            assert (await client.post(path)).status_code == 403
        assert (await client.get("/_fake/stats")).status_code == 403
        assert not fake._reject_tokens and fake._burst == 0


async def test_serve_fake_runs_until_cancelled_and_create_fake_app():
    assert isinstance(create_fake_app(start=DAY), Litestar)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    task = asyncio.create_task(serve_fake("127.0.0.1", port, start=DAY, open_at=OPEN_AT))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
        async def answers() -> bool:
            try:
                return (await http.get("/v2.0/signalr/ping")).status_code == 200
            except httpx.TransportError:
                return False

        deadline = asyncio.get_running_loop().time() + 5
        while not await answers():
            assert asyncio.get_running_loop().time() < deadline and not task.done(), "serve_fake did not come up"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        with pytest.raises(httpx.TransportError):
            await http.get("/v2.0/signalr/ping")
