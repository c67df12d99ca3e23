"""SSI FastConnect Data client: classic ASP.NET SignalR 2.x over WebSockets.

The handshake of docs/ssi.md (SignalR connection): AccessToken -> negotiate -> connect -> start ->
SwitchChannels, then a receive loop that hands every Broadcast argument, unchanged,
to the ingest. A watchdog reconnects when nothing (keep-alives included) arrives
within the server's KeepAliveTimeout; reconnects back off exponentially with jitter,
fetch a fresh token when the current one is close to expiry, and subscribe again
(subscriptions belong to a connection). Whatever the server sends while no connection
is up is lost to us, so each connection that ends other than by ``stop`` is counted and
logged as a gap (``event=feed_gap``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote, urlencode

import httpx
import msgspec
import orjson
import websockets

from app.ssi_protocol import (
    ACCESS_TOKEN_PATH, BROADCAST, DEFAULT_STREAM_URL, DEFAULT_URL, HUB, INDEX_COMPONENTS_PATH, SIGNALR_PATH,
    SWITCH_CHANNELS,
)

log = logging.getLogger("stock_tracker.signalr")

CLIENT_PROTOCOL = "1.5"
TOKEN_REFRESH_MARGIN_S = 600  # refresh 10 minutes before expiry, like SSI's .NET client


class FeedError(Exception):
    """The feed refused us or broke the protocol; the message is safe to log."""


class AuthError(FeedError):
    """Credentials or token refused."""


class FeedConfig(msgspec.Struct, frozen=True, kw_only=True):
    url: str = DEFAULT_URL
    stream_url: str = DEFAULT_STREAM_URL
    consumer_id: str = ""
    consumer_secret: str = ""
    channels: tuple[str, ...] = ()
    # "joined": one SwitchChannels with a comma list; "separate": one call per channel.
    switch_mode: str = "joined"
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    watchdog_default_s: float = 20.0
    connect_timeout_s: float = 10.0

    def __repr__(self) -> str:
        # A config may end up in a log line or a traceback: never the secret.
        shown = (
            f"{name}={'***' if name == 'consumer_secret' and value else value!r}"
            for name, value in ((n, getattr(self, n)) for n in self.__struct_fields__)
        )
        return f"FeedConfig({', '.join(shown)})"


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT (unverified: only to know when to refresh)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(payload.replace("+", "-").replace("/", "_")))["exp"])
    except (IndexError, KeyError, ValueError, TypeError):
        return None


class TokenSource:
    """AccessToken with the consumer id/secret, cached until shortly before expiry."""

    def __init__(self, config: FeedConfig, http: httpx.AsyncClient, clock: Callable[[], float] = time.time):
        self.config = config
        self.http = http
        self.clock = clock
        self._token: str | None = None
        self._expires: float | None = None

    def invalidate(self) -> None:
        self._token = None

    async def get(self) -> str:
        if self._token and (self._expires is None or self._expires - self.clock() > TOKEN_REFRESH_MARGIN_S):
            return self._token
        url = self.config.url.rstrip("/") + ACCESS_TOKEN_PATH
        try:
            res = await self.http.post(
                url, json={"consumerID": self.config.consumer_id, "consumerSecret": self.config.consumer_secret}
            )
            body = res.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise FeedError(f"AccessToken request failed: {type(exc).__name__}") from None
        data = body.get("data") if isinstance(body, dict) else None
        if res.status_code != 200 or body.get("status") != 200 or not isinstance(data, dict) or not data.get("accessToken"):
            message = body.get("message") if isinstance(body, dict) else None
            raise AuthError(f"AccessToken refused (HTTP {res.status_code}): {str(message)[:200]}")
        self._token = data["accessToken"]
        self._expires = _jwt_expiry(self._token)
        log.info("event=token_issued expires_in_s=%s", int(self._expires - self.clock()) if self._expires else "unknown")
        return self._token


async def fetch_index_components(config: FeedConfig, tokens: TokenSource, index: str = "VN30") -> list[str]:
    """Constituent symbols of an index from the REST IndexComponents endpoint."""
    url = config.url.rstrip("/") + INDEX_COMPONENTS_PATH
    token = await tokens.get()
    res = await tokens.http.get(
        url,
        params={"indexCode": index, "pageIndex": 1, "pageSize": 100},
        headers={"Authorization": f"Bearer {token}"},
    )
    if res.status_code == 401:
        tokens.invalidate()
        raise AuthError("IndexComponents: token refused")
    res.raise_for_status()
    return parse_index_components(res.json(), index)


def parse_index_components(body: object, index: str = "VN30") -> list[str]:
    """Symbols from an IndexComponents response, field names in any case.

    The data is one object per index with the constituents nested in
    ``IndexComponent`` (the 2020 spec: ``dataList`` / ``indexcomponentList``).
    """

    def field(obj: object, *names: str):
        if not isinstance(obj, dict):
            return None
        lowered = {k.lower(): v for k, v in obj.items() if isinstance(k, str)}
        for name in names:
            if name.lower() in lowered:
                return lowered[name.lower()]
        return None

    data = field(body, "data", "dataList")
    if not isinstance(data, list):
        raise FeedError("IndexComponents: no data list")
    symbols: list[str] = []
    for entry in data:
        code = field(entry, "IndexCode")
        if code is not None and str(code).upper() != index.upper():
            continue
        for item in field(entry, "IndexComponent", "indexcomponentList") or []:
            symbol = field(item, "StockSymbol")
            if isinstance(symbol, str) and symbol.strip() and symbol.strip() not in symbols:
                symbols.append(symbol.strip())
    if not symbols:
        raise FeedError(f"IndexComponents: no constituents for {index}")
    return symbols


def default_channels(symbols: Sequence[str], futures: Sequence[str], indices: Sequence[str]) -> tuple[str, ...]:
    """X-QUOTE, X-TRADE and R for the stocks and futures; MI for the indices."""
    targets = "-".join([*symbols, *futures])
    return (f"X-QUOTE:{targets}", f"X-TRADE:{targets}", f"R:{targets}", f"MI:{'-'.join(indices)}")


class _Negotiation(msgspec.Struct):
    ConnectionToken: str
    ProtocolVersion: str = CLIENT_PROTOCOL
    KeepAliveTimeout: float | None = None
    DisconnectTimeout: float | None = None


class FastConnectStream:
    """One SSI stream, kept connected until ``stop`` is set.

    ``frames_by_connection`` counts the Broadcast strings of each WebSocket, in order;
    ``gaps`` counts the WebSockets that ended without ``stop`` (drop, watchdog, token, server).
    """

    def __init__(
        self,
        config: FeedConfig,
        on_frame: Callable[[str], Awaitable[None]],
        on_status: Callable[[bool], Awaitable[None]] | None = None,
        http: httpx.AsyncClient | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        self.config = config
        self.on_frame = on_frame
        self.on_status = on_status
        self.http = http or httpx.AsyncClient(timeout=config.connect_timeout_s)
        self.tokens = tokens or TokenSource(config, self.http)
        self.connected = False
        self.connects = 0
        self.failures = 0
        self.frames = 0
        self.frames_by_connection: list[int] = []
        self.gaps = 0
        self._gap: tuple[int, int, float] | None = None  # (connection, frames, ended at): not yet logged
        self._invocation = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, stream, reconnect with backoff and jitter, until ``stop``."""
        try:
            await self._run(stop)
        finally:
            if self._gap is not None:  # stopped before the feed came back
                self._log_gap(reconnected=False)

    async def _run(self, stop: asyncio.Event) -> None:
        backoff = self.config.backoff_initial_s
        while not stop.is_set():
            started = time.monotonic()
            opened = self.connects
            try:
                await self._session(stop)
            except asyncio.CancelledError:
                raise
            except AuthError as exc:
                self.failures += 1
                self.tokens.invalidate()
                self._ended(opened)
                log.warning("event=feed_auth_failed detail=%s", exc)
            except (FeedError, OSError, httpx.HTTPError, websockets.WebSocketException, asyncio.TimeoutError) as exc:
                self.failures += 1
                self._ended(opened)
                log.warning("event=feed_disconnected error=%s detail=%s", type(exc).__name__, str(exc)[:200])
            finally:
                await self._set_connected(False)
            if stop.is_set():
                break
            if time.monotonic() - started > 60:
                backoff = self.config.backoff_initial_s  # it had been up for a while
            delay = backoff * random.uniform(0.5, 1.5)
            log.info("event=feed_reconnect_in seconds=%.2f", delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, self.config.backoff_max_s)

    def _ended(self, opened: int) -> None:
        """An attempt failed: a gap if it had opened a WebSocket (counted now, logged once back up)."""
        if self.connects == opened:
            return  # no socket: still the outage of an earlier gap, or not connected yet
        self.gaps += 1
        self._gap = (self.connects, self.frames_by_connection[-1], time.monotonic())

    def _log_gap(self, reconnected: bool) -> None:
        assert self._gap is not None
        connection, frames, ended = self._gap
        self._gap = None
        log.warning(
            "event=feed_gap connection=%d frames=%d seconds_down=%.2f reconnected=%s",
            connection, frames, time.monotonic() - ended, "true" if reconnected else "false",
        )

    async def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            if self.on_status is not None:
                try:
                    await self.on_status(connected)
                except Exception as exc:  # status reporting must not kill the feed
                    log.warning("event=status_publish_failed error=%s", type(exc).__name__)

    async def _session(self, stop: asyncio.Event) -> None:
        token = await self.tokens.get()
        base = self.config.stream_url.rstrip("/") + SIGNALR_PATH
        connection_data = json.dumps([{"name": HUB}])
        headers = {"Authorization": f"Bearer {token}"}
        res = await self.http.get(
            base + "/negotiate",
            params={"connectionData": connection_data, "clientProtocol": CLIENT_PROTOCOL},
            headers=headers,
        )
        if res.status_code == 401:
            raise AuthError("negotiate: token refused")
        if res.status_code != 200:
            raise FeedError(f"negotiate: HTTP {res.status_code}")
        try:
            neg = msgspec.json.decode(res.content, type=_Negotiation)
        except msgspec.MsgspecError as exc:
            raise FeedError(f"negotiate: unexpected body ({exc})") from None
        query = {
            "transport": "webSockets",
            "connectionToken": neg.ConnectionToken,
            "connectionData": connection_data,
            "clientProtocol": neg.ProtocolVersion,
        }
        ws_url = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/connect?" + urlencode(query, quote_via=quote)
        watchdog = neg.KeepAliveTimeout or self.config.watchdog_default_s
        async with websockets.connect(
            ws_url,
            additional_headers=headers,
            open_timeout=self.config.connect_timeout_s,
            max_size=None,
            ping_interval=None,  # SignalR has its own keep-alives; the watchdog reads them
        ) as ws:
            self.connects += 1
            self.frames_by_connection.append(0)
            if self._gap is not None:
                self._log_gap(reconnected=True)
            await self._start(base, query, headers)
            await self._subscribe(ws)
            await self._set_connected(True)
            log.info("event=feed_connected channels=%d watchdog_s=%.0f", len(self.config.channels), watchdog)
            await self._receive(ws, watchdog, stop)

    async def _start(self, base: str, query: dict, headers: dict) -> None:
        # SSI's own Python SDK never calls /start and data flows anyway: best effort.
        try:
            await self.http.get(base + "/start", params=query, headers=headers)
        except httpx.HTTPError as exc:
            log.info("event=start_skipped error=%s", type(exc).__name__)

    async def _subscribe(self, ws) -> None:
        specs = list(self.config.channels)
        calls = [",".join(specs)] if self.config.switch_mode == "joined" else specs
        for spec in calls:
            invocation = {"H": HUB, "M": SWITCH_CHANNELS, "A": [spec], "I": self._invocation}
            self._invocation += 1
            await ws.send(json.dumps(invocation))

    async def _receive(self, ws, watchdog: float, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait({receiving, stopping}, timeout=watchdog, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    receiving.cancel()
                    return
                if receiving not in done:
                    receiving.cancel()
                    raise FeedError(f"no frame for {watchdog:.0f} s (keep-alives included)")
                await self._handle(receiving.result())
        finally:
            stopping.cancel()

    async def _handle(self, text: str | bytes) -> None:
        if text in ("{}", b"{}"):
            return  # keep-alive
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.warning("event=feed_bad_frame size=%d", len(text))
            return
        if not isinstance(message, dict):
            return
        if "E" in message:
            log.warning("event=feed_server_error invocation=%s detail=%s", message.get("I"), str(message["E"])[:200])
        if message.get("T") == 1:
            raise FeedError("server asked the client to reconnect")
        for invocation in message.get("M") or ():
            if not isinstance(invocation, dict) or str(invocation.get("H", "")).lower() != HUB.lower():
                continue
            method = invocation.get("M")
            if method == BROADCAST:
                for arg in invocation.get("A") or ():
                    if isinstance(arg, str):
                        self.frames += 1
                        self.frames_by_connection[-1] += 1
                        await self.on_frame(arg)
            elif method == "Error":
                log.warning("event=feed_hub_error detail=%s", str(invocation.get("A"))[:200])
