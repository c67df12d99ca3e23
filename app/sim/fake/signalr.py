"""The fake's SignalR 2.x transport: negotiate/connect/reconnect/start/ping/abort, and per-connection queues.

Each WebSocket has an ordered outbox: the market pump appends Broadcast invocations,
a sender task drains them in batches (keep-alives when idle), a receiver task
answers SwitchChannels. Only market frames are ever dropped, and only when a
connection's queue is full.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import uuid
from contextlib import suppress

import orjson
from litestar import Request, Response, WebSocket, route, websocket
from litestar.enums import HttpMethod, MediaType

from app.sim.fake.channels import parse_channels, spec_text
from app.sim.fake.rest import DENIED, authorized, bearer, denied, json_response
from app.sim.fake.state import Connection, FakeServer, Session, fake_of
from app.ssi_protocol import BROADCAST, HUB, SIGNALR_PATH, SWITCH_CHANNELS

__all__ = ["SIGNALR_HANDLERS", "broadcast_text", "cursor", "serve_socket"]

log = logging.getLogger("stock_tracker.fake_ssi")

_BROADCAST_HEAD = '{"H":"' + HUB + '","M":"' + BROADCAST + '","A":['
_BATCH = 100  # invocations per data frame when a backlog has built up
_MAX_SESSIONS = 10_000


def broadcast_text(frame: str) -> str:
    """A hub invocation of Broadcast carrying one simulator frame."""
    return _BROADCAST_HEAD + orjson.dumps(frame).decode() + "]}"


def cursor(cursor_id: str, seq: int) -> str:
    """The message id (``C``) SignalR clients echo back on reconnect."""
    return f"d-{cursor_id}-B,{seq}|C,0|D,1"


def _protocol(raw: str | None) -> str:
    # ProtocolResolver: unparseable or too old -> 1.2, too new -> 2.0, else the client's own.
    try:
        v = float(raw or "")
    except ValueError:
        return "1.2"
    if v < 1.2:
        return "1.2"
    if v > 2.0:
        return "2.0"
    return raw.strip()  # type: ignore[union-attr]


def _hubs_ok(connection_data: str | None) -> bool:
    if not connection_data:
        return True
    try:
        hubs = json.loads(connection_data)
        return isinstance(hubs, list) and all(str(h.get("name", "")).lower() == HUB.lower() for h in hubs)
    except (ValueError, AttributeError):
        return False


async def _sender(fake: FakeServer, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    send = conn.socket.send
    stats = fake.stats
    conn_id = conn.session.id
    record = conn.record
    conn.last_send = loop.time()
    try:
        while True:
            await fake.wait_unstalled()
            out = conn.out
            if out:
                seq, text, frame = out.popleft()
                if seq == 0:
                    await send({"type": "websocket.send", "text": text})
                else:
                    parts, frames = [text], [frame]
                    while out and out[0][0] and len(parts) < _BATCH:
                        seq, text, frame = out.popleft()
                        parts.append(text)
                        frames.append(frame)
                    conn.queued -= len(parts)
                    conn.overflowing = False
                    fake.note_drained()
                    message = '{"C":"' + cursor(fake._cursor_id, seq) + '","M":[' + ",".join(parts) + "]}"
                    # uvicorn's sans-I/O protocol (serve_fake pins it) waits for flow control,
                    # then writes to the transport without suspending again: once send returns
                    # the frames are the peer's to receive (closing flushes them), and a
                    # cancelled send wrote nothing. So these counts are what was delivered.
                    await send({"type": "websocket.send", "text": message})
                    n = len(parts)
                    conn.sent += n
                    record.frames += n
                    record.digest.update(("\0".join(frames) + "\0").encode())  # frames_digest, one update a batch
                    stats.frames_sent += n
                    stats.frames_sent_by_conn[conn_id] = stats.frames_sent_by_conn.get(conn_id, 0) + n
                conn.last_send = loop.time()
                continue
            idle_left = conn.last_send + fake.keepalive_s - loop.time()
            if idle_left <= 0:
                await send({"type": "websocket.send", "text": "{}"})
                stats.keepalives_sent += 1
                conn.last_send = loop.time()
                continue
            conn.wake.clear()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.wake.wait(), idle_left)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the peer went away mid-send
        log.debug("event=send_failed conn=%s error=%s", conn_id, type(exc).__name__)
        conn.done.set()


async def _receiver(fake: FakeServer, conn: Connection) -> None:
    try:
        while True:
            message = await conn.socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            _on_client_message(fake, conn, text)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("event=receive_failed conn=%s error=%s", conn.session.id, type(exc).__name__)
    finally:
        conn.done.set()


def _on_client_message(fake: FakeServer, conn: Connection, text: str) -> None:
    try:
        msg = json.loads(text)
    except ValueError:
        log.warning("event=client_bad_json conn=%s size=%d", conn.session.id, len(text))
        return
    if not isinstance(msg, dict) or msg.get("I") is None:
        log.warning("event=client_not_invocation conn=%s", conn.session.id)
        return
    rid = str(msg["I"])
    hub, method, args = msg.get("H"), msg.get("M"), msg.get("A")
    if not isinstance(hub, str) or hub.lower() != HUB.lower():
        return _reply_error(conn, rid, f"'{str(hub)[:40]}' Hub could not be resolved.")
    if not isinstance(method, str) or method.lower() != SWITCH_CHANNELS.lower():
        return _reply_error(conn, rid, f"'{str(method)[:40]}' method could not be resolved on hub '{HUB}'.")
    if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], str):
        return _reply_error(conn, rid, f"{SWITCH_CHANNELS} takes one string argument.")
    try:
        wanted = parse_channels(args[0])
    except ValueError as exc:
        return _reply_error(conn, rid, str(exc))
    session = conn.session
    if fake.switch_mode == "replace":
        sub = dict(wanted)
    else:
        sub = dict(session.sub)
        for ch, targets in wanted.items():
            have = sub.get(ch, frozenset())
            sub[ch] = None if targets is None or have is None else frozenset(have | targets)
    session.sub = sub
    conn.push(json.dumps({"I": rid}, separators=(",", ":")))
    fake.wake_market()  # a held market may start
    log.info("event=switch_channels conn=%s mode=%s channels=%s", session.id, fake.switch_mode,
             ",".join(spec_text(sub))[:300])


def _reply_error(conn: Connection, rid: str, error: str) -> None:
    conn.push(json.dumps({"I": rid, "E": error}, separators=(",", ":")))
    log.warning("event=invocation_error conn=%s id=%s error=%s", conn.session.id, rid[:20], error.replace(" ", "_")[:120])


async def _deny(socket: WebSocket, status: int, message: str) -> None:
    log.warning("event=ws_refused status=%d path=%s reason=%s", status, socket.url.path, message.replace(" ", "_"))
    if "websocket.http.response" in (socket.scope.get("extensions") or {}):
        await socket.receive()  # websocket.connect
        body = json.dumps({"Message": message}).encode()
        await socket.send({"type": "websocket.http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        ]})
        await socket.send({"type": "websocket.http.response.body", "body": body})
    else:  # the server can only refuse with 403
        await socket.close(code=1008, reason=message[:120])


async def serve_socket(fake: FakeServer, socket: WebSocket, reconnect: bool) -> None:
    q = socket.query_params
    session = fake._sessions.get(q.get("connectionToken") or "")
    token = bearer(socket.headers) or (session.bearer if session else None)
    if not fake.token_ok(token):
        return await _deny(socket, 401, DENIED)
    if (q.get("transport") or "").lower() != "websockets":
        return await _deny(socket, 400, "Only the webSockets transport is supported.")
    if session is None:
        return await _deny(socket, 400, "The connection token is not recognized.")
    if not _hubs_ok(q.get("connectionData")):
        return await _deny(socket, 400, "A hub in connectionData could not be resolved.")
    await socket.accept()
    session.bearer = token  # type: ignore[assignment]
    conn = Connection(session, socket, reconnect)
    conn.peer = f"{socket.client.host}:{socket.client.port}" if socket.client else "?"
    old = session.conn
    if old is not None:
        old.end(1000, "replaced by a new transport connection")
    if not reconnect:
        session.sub = {}
        conn.push(json.dumps({"C": cursor(fake._cursor_id, fake._seq), "S": 1, "M": []}, separators=(",", ":")))
    session.conn = conn
    fake._conns[session.id] = conn
    fake.stats.connections_open = len(fake._conns)
    fake.stats.connections_total += 1
    fake.stats.frames_sent_by_conn.setdefault(session.id, 0)
    fake.stats.sent_by_conn.append(conn.record)
    fake.wake_market()
    log.info("event=ws_connected conn=%s peer=%s reconnect=%d open=%d", session.id, conn.peer,
             reconnect, len(fake._conns))
    tasks = [asyncio.create_task(_sender(fake, conn)), asyncio.create_task(_receiver(fake, conn))]
    try:
        await conn.done.wait()
    finally:
        for task in tasks:
            task.cancel()
        # A send blocked on a full socket may not wind down promptly: don't wait on it.
        await asyncio.wait(tasks, timeout=1.0)
        log.info("event=ws_tasks_stopped conn=%s pending=%d", session.id, sum(not t.done() for t in tasks))
        if fake._conns.get(session.id) is conn:
            del fake._conns[session.id]
            fake.note_drained()  # a market waiting on this socket's backlog goes on
        if session.conn is conn:
            session.conn = None
        fake.stats.connections_open = len(fake._conns)
    mode = conn.close_mode
    log.info("event=ws_closed conn=%s how=%s frames_sent=%d dropped=%d open=%d", session.id,
             "client" if mode is None else ("abrupt" if mode[0] == 0 else f"close_{mode[0]}"),
             conn.sent, conn.dropped, len(fake._conns))
    if mode is not None and mode[0]:
        with suppress(Exception):
            await socket.close(code=mode[0], reason=mode[1])
    # With mode[0] == 0 the handler returns without a close frame: uvicorn then drops
    # the TCP connection, which is what an abrupt network failure looks like.


def _session_for(request: Request) -> Session | None:
    return fake_of(request)._sessions.get(request.query_params.get("connectionToken") or "")


@route(SIGNALR_PATH + "/negotiate", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
async def negotiate(request: Request) -> Response:
    fake = fake_of(request)
    auth = bearer(request.headers)
    if not fake.token_ok(auth):
        log.warning("event=negotiate_unauthorized")
        return denied()
    if not _hubs_ok(request.query_params.get("connectionData")):
        return json_response({"Message": "A hub in connectionData could not be resolved."}, 400)
    protocol = _protocol(request.query_params.get("clientProtocol"))
    # SignalR's connection tokens are protected blobs full of '+', '/' and '=': keep
    # them URL-unsafe so clients that forget to encode them fail here too.
    while True:
        token = base64.b64encode(secrets.token_bytes(6) + uuid.uuid4().bytes + secrets.token_bytes(8)).decode()
        if "+" in token or "/" in token:
            break
    session = Session(token, auth, protocol)  # type: ignore[arg-type]
    fake._sessions[token] = session
    while len(fake._sessions) > _MAX_SESSIONS:
        oldest = next(iter(fake._sessions))
        if fake._sessions[oldest].conn is not None:
            fake._sessions.move_to_end(oldest)
            break
        del fake._sessions[oldest]
    fake.stats.negotiations += 1
    log.info("event=negotiate conn=%s method=%s protocol=%s", session.id, request.method, protocol)
    return json_response({
        "Url": SIGNALR_PATH,
        "ConnectionToken": token,
        "ConnectionId": session.id,
        "KeepAliveTimeout": 2 * fake.keepalive_s,
        "DisconnectTimeout": 3 * fake.keepalive_s,
        "ConnectionTimeout": 110.0,
        "TryWebSockets": True,
        "ProtocolVersion": protocol,
        "TransportConnectTimeout": 5.0,
        "LongPollDelay": 0.0,
    })


@route(SIGNALR_PATH + "/start", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
async def start(request: Request) -> Response:
    session = _session_for(request)
    if not authorized(request, session):
        return denied()
    if session is None:
        return json_response({"Message": "The connection token is not recognized."}, 400)
    log.info("event=start conn=%s", session.id)
    return json_response({"Response": "started"})


@route(SIGNALR_PATH + "/ping", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
async def ping() -> Response:
    return json_response({"Response": "pong"})


@route(SIGNALR_PATH + "/abort", http_method=[HttpMethod.POST, HttpMethod.GET], status_code=200)
async def abort(request: Request) -> Response:
    session = _session_for(request)
    if not authorized(request, session):
        return denied()
    if session is None:
        return json_response({"Message": "The connection token is not recognized."}, 400)
    if session.conn is not None:
        session.conn.end(1000, "aborted")
    log.info("event=abort conn=%s", session.id)
    return Response(content=b"", status_code=200, media_type=MediaType.TEXT)


@websocket(SIGNALR_PATH + "/connect")
async def connect(socket: WebSocket) -> None:
    await serve_socket(fake_of(socket), socket, reconnect=False)


@websocket(SIGNALR_PATH + "/reconnect")
async def reconnect(socket: WebSocket) -> None:
    await serve_socket(fake_of(socket), socket, reconnect=True)


SIGNALR_HANDLERS = [negotiate, start, ping, abort, connect, reconnect]
