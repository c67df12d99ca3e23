"""SSI's official Python SDK (``ssi-fc-data``) against the fake FastConnect server.

The SDK is synchronous (requests + websocket-client, its socket on a daemon thread), so
the fake runs on uvicorn in a background thread here.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time as _time
from contextlib import contextmanager
from datetime import date, time
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest
import uvicorn

pytest.importorskip("ssi_fc_data", reason="the official SDK is not installed: pip install ssi-fc-data")

from ssi_fc_data import model  # noqa: E402
from ssi_fc_data.fc_md_client import MarketDataClient  # noqa: E402
from ssi_fc_data.fc_md_stream import MarketDataStream  # noqa: E402
from ssi_fc_data.signalr.hubs.errors import UnAuthorizedHubError  # noqa: E402

from app.sim.fake import FakeFastConnect  # noqa: E402
from app.sim import VN30_SYMBOLS  # noqa: E402

DAY = date(2026, 7, 20)
OPEN_AT = time(9, 15, 1)


def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = _time.monotonic() + timeout
    while not cond():
        if _time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        _time.sleep(0.005)


@contextmanager
def serving(**kwargs) -> Iterator[tuple[FakeFastConnect, SimpleNamespace]]:
    kwargs.setdefault("speed", 30.0)
    fake = FakeFastConnect(start=DAY, open_at=OPEN_AT, **kwargs)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server = uvicorn.Server(uvicorn.Config(fake.app, log_config=None, ws_ping_interval=None, timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), what="uvicorn startup")
    assert thread.is_alive(), "the fake server did not start"
    # The SDK's config object: plain http, so the stream goes over ws:// (docs/ssi.md, Hosts).
    config = SimpleNamespace(url=base, stream_url=base, auth_type="Bearer", consumerID="demo", consumerSecret="demo")
    try:
        yield fake, config
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


def stop(stream: MarketDataStream) -> None:
    """Stop an SDK stream: it has no stop(), and ``WebSocketApp.close()`` races its reader
    thread (which can then sit in select() for 10 s), so say goodbye and let the reader
    thread see the server's close frame."""
    transport = stream.connection._Connection__transport
    ws = transport._ws
    ws.keep_running = False
    ws.sock.send_close()
    transport._thread.join(5)
    assert not transport._thread.is_alive()


def collect(messages: queue.Queue, enough: Callable[[list], bool], timeout: float = 8.0) -> list[dict]:
    got: list[dict] = []
    deadline = _time.monotonic() + timeout
    while not enough(got):
        left = deadline - _time.monotonic()
        assert left > 0, f"only {len(got)} messages"
        got.append(messages.get(timeout=left))
    return got


def test_sdk_token_rest_and_stream():
    with serving() as (fake, config):
        client = MarketDataClient(config)  # fetches and parses a token at once
        assert fake.stats.tokens_issued == 1
        raw = client.access_token(model.accessToken("demo", "demo"))
        assert raw["status"] == 200 and raw["message"] == "Success" and raw["data"]["accessToken"].count(".") == 2

        components = client.index_components(None, model.index_components("VN30", 1, 100))
        assert components["status"] == "Success" and components["totalRecord"] == 1
        assert [c["StockSymbol"] for c in components["data"][0]["IndexComponent"]] == list(VN30_SYMBOLS)
        indices = client.index_list(None, model.index_list("HOSE", 1, 100))
        assert [i["IndexCode"] for i in indices["data"]] == ["VNINDEX", "VN30"]
        futures = client.securities(None, model.securities("DER", 1, 100))
        assert futures["totalRecord"] == 2

        messages: queue.Queue = queue.Queue()
        errors: list = []
        closed = threading.Event()
        stream = MarketDataStream(config, MarketDataClient(config), on_close=closed.set)
        stream.start(messages.put, errors.append, "X-QUOTE:ALL")
        got = collect(messages, lambda g: len(g) >= 30)
        for message in got:
            # The SDK decodes the envelope once; Content stays a JSON string (docs/ssi.md, Message envelope).
            assert message["DataType"] == "X-QUOTE" and isinstance(message["Content"], str)
            content = json.loads(message["Content"])
            assert content["RType"] == "X-QUOTE" and content["TradingDate"] == "20/07/2026"
        assert len({json.loads(m["Content"])["Symbol"] for m in got}) > 3
        assert fake.stats.connections_open == 1 and fake.stats.frames_sent >= 30

        stop(stream)
        assert closed.wait(5)
        wait_for(lambda: fake.stats.connections_open == 0, what="the server to see the close")
        assert errors == []


def test_sdk_comma_joined_channels_are_filtered():
    with serving(speed=60.0) as (fake, config):
        messages: queue.Queue = queue.Queue()
        errors: list = []
        stream = MarketDataStream(config, MarketDataClient(config))
        stream.start(messages.put, errors.append, "X-TRADE:ACB-VCB,MI:VN30")
        got = collect(messages, lambda g: {"X-TRADE", "MI"} <= {m["DataType"] for m in g} and len(g) >= 10)
        seen = set()
        for message in got:
            content = json.loads(message["Content"])
            seen.add((message["DataType"], content.get("Symbol") or content.get("IndexId")))
        assert seen <= {("X-TRADE", "ACB"), ("X-TRADE", "VCB"), ("MI", "VN30")}
        stop(stream)
        assert errors == []


def test_sdk_wrong_credentials_raise_its_error():
    with serving() as (fake, config):
        config.consumerSecret = "wrong"
        with pytest.raises(NameError, match="The connection is invalid"):
            MarketDataClient(config)
        assert fake.stats.tokens_issued == 0


def test_sdk_negotiate_unauthorized_while_tokens_are_rejected():
    with serving() as (fake, config):
        client = MarketDataClient(config)
        fake.reject_tokens(True)  # from another thread: applied on the server's loop
        wait_for(lambda: fake._reject_tokens)
        stream = MarketDataStream(config, client)
        with pytest.raises(UnAuthorizedHubError):
            stream.start(lambda m: None, lambda e: None, "X-QUOTE:ALL")
        assert fake.stats.negotiations == 0


def test_sdk_sees_a_dropped_connection():
    with serving() as (fake, config):
        messages: queue.Queue = queue.Queue()
        closed = threading.Event()
        stream = MarketDataStream(config, MarketDataClient(config), on_close=closed.set)
        stream.start(messages.put, lambda e: None, "MI:ALL")
        collect(messages, lambda g: len(g) >= 1)
        fake.drop()
        # The SDK has no reconnect of its own: it reports the close and stops.
        assert closed.wait(5)
        wait_for(lambda: fake.stats.connections_open == 0)
        stream.connection._Connection__transport._thread.join(5)
