"""No secret in any log line, error or repr, at every log level (DESIGN.md §3, Auth).

The secrets: static API tokens, WS_TOKEN, a JWT and its signing key, the SSI consumer
secret (and the access tokens the feed hands out), the Redis password, and wrong
tokens a client tried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest
import websockets
from redis import Redis as SyncRedis
from redis.exceptions import AuthenticationError
from websockets.exceptions import ConnectionClosed

from app import keys as K
from app import logs, redact
from app.config import Settings, mask_password
from app.ingest.live import run_live
from app.ingest.signalr import FeedConfig
from app.ingest.writer import StreamWriter
from app.local_redis import free_port, private_redis_server
from app.store import connect, redis_from_url
from tests.apiserver import ApiServer, until
from tests.test_feed import DAY, RunningFake

pytestmark = pytest.mark.anyio

REDIS_PW = "redis-pass-Qm47xR"
SSI_SECRET = "ssi-consumer-secret-7Hq2"
WS_TOKEN = "ws-legacy-token-Zr81"
API_TOKEN = "api-static-token-Kd55"
JWT_SECRET = "jwt-signing-key-" + "9f3a" * 8
BAD_TOKEN = "wrong-token-Xy12ab"
BAD_PW = "wrong-redis-pass-Lp09"


def _jwt(secret: str = JWT_SECRET) -> str:
    return jwt.encode({"sub": "dashboard", "exp": int(time.time()) + 600}, secret, algorithm="HS256")


@contextmanager
def redis_with_password(redis_binary: str, password: str = REDIS_PW):
    """A private redis-server that wants ``password`` (requirepass); yields its port."""
    with private_redis_server(redis_binary) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with SyncRedis(host="127.0.0.1", port=port) as admin:
            admin.config_set("requirepass", password)
        yield port


@contextmanager
def logs_captured(caplog, settings: Settings):
    """Our logging as production sets it up (at DEBUG), with caplog's handler after ours."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.setup("kv", "DEBUG", settings=settings)
    root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        redact.install(())
        sys.excepthook = sys.__excepthook__


# ---- unit: each finding -------------------------------------------------------------


def test_feed_config_repr_hides_the_consumer_secret():
    config = FeedConfig(consumer_id="me", consumer_secret=SSI_SECRET)
    for text in (repr(config), str(config), f"{[config]}"):
        assert SSI_SECRET not in text
        assert "consumer_secret='***'" in text and "consumer_id='me'" in text
    assert "consumer_secret=''" in repr(FeedConfig())  # nothing set shows as nothing


@pytest.mark.parametrize("url, shown", [
    ("redis://user:pw1234@h:6379/0", "redis://user:***@h:6379/0"),
    ("redis://:pw1234@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://pw1234@h/0", "redis://***@h/0"),
    ("redis://h:6379/0?password=pw1234", "redis://h:6379/0?password=***"),
    ("rediss://h/0?db=1&Password=pw1234&x=1", "rediss://h/0?db=1&Password=***&x=1"),
    ("unix:///run/redis.sock?password=pw1234", "unix:///run/redis.sock?password=***"),
    ("redis://h:6379/0", "redis://h:6379/0"),
])
def test_mask_password_masks_userinfo_and_query(url, shown):
    assert mask_password(url) == shown


def test_secrets_of_settings_include_every_token_and_the_redis_password():
    s = Settings(redis_url=f"redis://h/0?password={REDIS_PW}", ws_token=WS_TOKEN, api_tokens=f"{API_TOKEN}, other-tok",
                 api_jwt_secret=JWT_SECRET, ssi_consumer_secret=SSI_SECRET)
    assert set(redact.secrets_of(s)) == {REDIS_PW, WS_TOKEN, API_TOKEN, "other-tok", JWT_SECRET, SSI_SECRET}
    assert redact.redis_password("redis://:p%40ss-word@h/0") == "p@ss-word"


def test_every_logger_and_traceback_is_redacted(caplog, capsys):
    token = _jwt()
    settings = Settings(ws_token=WS_TOKEN, api_jwt_secret=JWT_SECRET, redis_url=f"redis://:{REDIS_PW}@h/0")
    with logs_captured(caplog, settings):
        # uvicorn's own lines, as it logs them (format and args)
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", f"/ws/market?token={WS_TOKEN}")
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" 403', "127.0.0.1:5", f"/ws?token={BAD_TOKEN}")
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                                                 f"/api/market/snapshot?access_token={BAD_TOKEN}", "1.1", 200)
        logging.getLogger("websockets.client").debug("> Authorization: Bearer %s", token)
        logging.getLogger("uvicorn.error").debug("< TEXT %r [%d bytes]", json.dumps({"op": "auth", "token": BAD_TOKEN}), 40)
        logging.getLogger("httpx").warning("HTTP Request: GET http://h/signalr/start?connectionToken=%s", BAD_TOKEN)
        logging.getLogger("stock_tracker.x").info("event=x url=%s config=%r", f"redis://:{REDIS_PW}@h/0", FeedConfig(consumer_secret=SSI_SECRET))
        logging.getLogger("stock_tracker.x").info("event=y key=%s", JWT_SECRET)  # a value, whatever its place
        try:
            raise RuntimeError(f"refused {WS_TOKEN} at redis://u:{REDIS_PW}@h")
        except RuntimeError:
            logging.getLogger("stock_tracker.x").exception("event=boom")
    err = capsys.readouterr().err
    for text in (err, caplog.text, *(r.getMessage() for r in caplog.records)):
        for secret in (WS_TOKEN, BAD_TOKEN, token, JWT_SECRET, REDIS_PW, SSI_SECRET):
            assert secret not in text
    assert '"WebSocket /ws/market?token=***" [accepted]' in err
    assert "Authorization: Bearer ***" in err and "RuntimeError: refused ***" in err
    assert "event=y key=***" in err


def test_json_log_lines_are_redacted_too(capsys):
    try:
        logs.setup("json", "DEBUG", secrets=[WS_TOKEN])
        logging.getLogger("uvicorn.error").info('"WebSocket /ws?token=%s" [accepted]', WS_TOKEN)
        try:
            raise ValueError(WS_TOKEN)
        except ValueError:
            logging.getLogger("stock_tracker.x").exception("event=boom")
    finally:
        logs.setup("kv", "WARNING")
        redact.install(())
    err = capsys.readouterr().err
    assert WS_TOKEN not in err
    lines = [json.loads(line) for line in err.strip().splitlines()]
    assert "ValueError: ***" in lines[-1]["exc"]


def test_an_uncaught_traceback_is_masked():
    code = ("from app import logs; logs.setup(secrets=['zq-secret-value']); "
            "raise RuntimeError('refused zq-secret-value with Authorization: Bearer abc.def')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "RuntimeError: refused *** with Authorization: Bearer ***" in done.stderr
    assert "zq-secret-value" not in done.stderr and "abc.def" not in done.stderr


async def test_uvicorn_with_its_own_log_config_is_masked_too(single_redis):
    """``uvicorn app.api.app:create_app --factory``: uvicorn's loggers keep their own handlers."""
    port = free_port()
    log = tempfile.TemporaryFile()
    env = {**os.environ, "REDIS_URL": single_redis.url, "WS_TOKEN": WS_TOKEN, "LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "app.api.app:create_app", "--port", str(port)],
                            env=env, stdout=log, stderr=log)
    try:
        async def healthy() -> bool:
            assert proc.poll() is None
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"http://127.0.0.1:{port}/healthz?token={BAD_TOKEN}", timeout=0.5)).status_code == 200
            except httpx.HTTPError:
                return False

        await until(healthy, timeout=30, interval=0.05)
        assert (await _ws_outcome(f"ws://127.0.0.1:{port}/ws/market?token={WS_TOKEN}"))[0] == "open"
    finally:
        proc.terminate()
        proc.wait(10)
    log.seek(0)
    text = log.read().decode(errors="replace")
    assert "WebSocket /ws/market?token=***" in text and "/healthz?token=***" in text
    assert WS_TOKEN not in text and BAD_TOKEN not in text


def test_ordinary_lines_are_left_alone():
    r = redact.Redactor(["s3cret-value"])
    for line in ("event=token_issued expires_in_s=28799", "event=fault_expire_tokens tokens=3 sockets=1",
                 "event=fake_ssi_listen url=http://127.0.0.1:8900/ consumer=demo",
                 "event=redis_wait url=redis://127.0.0.1:6379/0 error=ConnectionError"):
        assert r(line) == line


# ---- a wrong Redis password: one line and a non-zero exit, not an outage -------------


def _ingest_file(url: str, frames: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "REDIS_URL": url, "REDIS_WAIT_S": "20", "LOG_LEVEL": "DEBUG"}
    return subprocess.run([sys.executable, "-m", "app", "ingest", "--file", str(frames)],
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("form", ["userinfo", "query", "none"])
def test_ingest_file_with_a_wrong_redis_password_ends_at_once_with_one_line(redis_binary, tmp_path, form):
    frames = tmp_path / "frames.jsonl"
    frames.write_text('{"DataType":"X-QUOTE","Content":"{}"}\n')
    with redis_with_password(redis_binary) as port:
        url = {"userinfo": f"redis://:{BAD_PW}@127.0.0.1:{port}/0",
               "query": f"redis://127.0.0.1:{port}/0?password={BAD_PW}",
               "none": f"redis://127.0.0.1:{port}/0"}[form]
        started = time.monotonic()
        done = _ingest_file(url, frames)
    assert done.returncode != 0
    assert time.monotonic() - started < 15  # REDIS_WAIT_S is 20: it did not wait as for an outage
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("stock-tracker: Redis at ") and "refused our credentials" in lines[-1]
    assert "Traceback" not in done.stderr and BAD_PW not in done.stderr


async def test_a_one_shot_writer_stops_at_a_refused_password_a_long_running_one_logs_it_once(redis_binary, caplog):
    with redis_with_password(redis_binary) as port:
        url = f"redis://:{BAD_PW}@127.0.0.1:{port}/0"
        one_shot = redis_from_url(url)
        try:
            writer = StreamWriter(one_shot, give_up_after_s=30)
            async with asyncio.timeout(5):  # not the 30 s an outage gets
                with pytest.raises(AuthenticationError):
                    await _append_one(writer)
        finally:
            await one_shot.aclose()
        caplog.set_level(logging.INFO, logger="stock_tracker.ingest")
        live = redis_from_url(url)
        writer = StreamWriter(live, give_up_after_s=None)
        task = asyncio.create_task(_append_one(writer))
        try:
            await until(lambda: _true(writer.retries >= 6), timeout=20)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await live.aclose()
    refused = [r for r in caplog.records if "redis_auth_refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.ERROR
    assert not [r for r in caplog.records if "redis_unavailable" in r.getMessage()]
    assert BAD_PW not in caplog.text


async def _append_one(writer: StreamWriter) -> None:
    await writer.append([('{"DataType":"X-QUOTE","Content":"{}"}', 1_764_000_000_000)], session=DAY.isoformat())
    await writer.flush()


async def _true(value) -> bool:
    return bool(value)


# ---- everything at once: node, feed client, fake SSI, at DEBUG -----------------------


async def _ws_outcome(url: str, first: str | None = None, then: str | None = None) -> tuple[str, list[str]]:
    """``("open", messages)`` or ``("closed <code>", messages)`` for one WebSocket visit."""
    seen: list[str] = []
    try:
        async with websockets.connect(url, open_timeout=10) as ws:
            if first is not None:
                await ws.send(first)
            if then is not None:
                await ws.send(then)
            async with asyncio.timeout(10):
                seen.append(str(await ws.recv()))
            return "open", seen
    except ConnectionClosed as exc:
        received = exc.rcvd
        return f"closed {received.code if received else None} {received.reason if received else ''}", seen


async def test_no_secret_in_any_log_or_response_with_everything_running(redis_binary, caplog, capsys):
    good_jwt, bad_jwt = _jwt(), _jwt("another-signing-key-" + "0" * 24)
    with redis_with_password(redis_binary) as port:
        redis_url = f"redis://:{REDIS_PW}@127.0.0.1:{port}/0"
        async with RunningFake(consumer_secret=SSI_SECRET) as fake:
            settings = Settings(
                redis_url=redis_url, ssi_url=fake.url, ssi_stream_url=fake.url, ssi_consumer_id="demo",
                ssi_consumer_secret=SSI_SECRET, ws_token=WS_TOKEN, api_tokens=f"{API_TOKEN},second-token-Vb3",
                api_jwt_secret=JWT_SECRET, log_level="DEBUG", projector_block_ms=50,
            )
            bodies: list[str] = []
            outcomes: dict[str, str] = {}
            with logs_captured(caplog, settings):
                redis = await connect(redis_url)
                stop = asyncio.Event()
                ingest = asyncio.create_task(run_live(redis, settings, stop))
                node = ApiServer(
                    redis_url, log_to_file=True, LOG_LEVEL="DEBUG", WS_TOKEN=WS_TOKEN,
                    API_TOKENS=f"{API_TOKEN},second-token-Vb3", API_JWT_SECRET=JWT_SECRET,
                    SSI_CONSUMER_ID="demo", SSI_CONSUMER_SECRET=SSI_SECRET,
                )
                try:
                    frames_key = K.SessionKeys(DAY.isoformat()).frames
                    await until(lambda: _frames_at_least(redis, frames_key, 20), timeout=30)
                    await node.astart()
                    market = node.ws + "/ws/market"
                    for name, token in (("ws_token", WS_TOKEN), ("api_token", API_TOKEN), ("jwt", good_jwt),
                                        ("bad", BAD_TOKEN), ("bad_jwt", bad_jwt)):
                        outcomes[f"query {name}"], seen = await _ws_outcome(f"{market}?token={token}")
                        bodies += seen
                    subscribe = json.dumps({"op": "subscribe", "channel": "indices"})
                    for name, token in (("api_token", API_TOKEN), ("jwt", good_jwt), ("bad", BAD_TOKEN)):
                        auth = json.dumps({"op": "auth", "token": token})
                        outcomes[f"first {name}"], seen = await _ws_outcome(node.ws + "/ws", auth, subscribe)
                        bodies += seen
                    async with httpx.AsyncClient(base_url=node.http, timeout=10) as client:
                        for token in (API_TOKEN, WS_TOKEN, good_jwt, BAD_TOKEN, bad_jwt, None):
                            headers = {"Authorization": f"Bearer {token}"} if token else {}
                            for path in ("/api/market/snapshot", "/metrics", "/api/sessions"):
                                res = await client.get(path, headers=headers)
                                good = token in (API_TOKEN, WS_TOKEN, good_jwt)
                                assert (res.status_code == 401) is not good, (path, res.status_code)
                                assert res.status_code < 500, (path, res.status_code)
                                bodies.append(res.text + json.dumps(dict(res.headers)))
                finally:
                    node.stop()
                    stop.set()
                    await asyncio.wait_for(ingest, 20)
                    await redis.aclose()
                logging.getLogger("stock_tracker.test").debug("event=settings %r", settings)
    node_log = node.stderr()
    ours = capsys.readouterr().err
    # The good credentials got in, the bad ones were shut out.
    for name in ("query ws_token", "query api_token", "query jwt", "first api_token", "first jwt"):
        assert outcomes[name] == "open", (name, outcomes[name])
    for name in ("query bad", "query bad_jwt", "first bad"):
        assert outcomes[name].startswith("closed 1008"), (name, outcomes[name])
    secrets = (REDIS_PW, SSI_SECRET, WS_TOKEN, API_TOKEN, "second-token-Vb3", JWT_SECRET, good_jwt, bad_jwt, BAD_TOKEN)
    texts = {"node stderr": node_log, "our stderr": ours, "caplog": caplog.text, "responses": "\n".join(bodies),
             **{f"record {i}": r.getMessage() for i, r in enumerate(caplog.records)}}
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:6]}... in {where}"
    # The fake's access tokens (JWTs it issued) are masked as well.
    assert "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." not in caplog.text + ours
    # The lines that used to carry them are there, masked.
    assert '"WebSocket /ws/market?token=***" [accepted]' in node_log
    assert "Authorization: Bearer ***" in caplog.text and "connectionToken=***" in caplog.text
    assert "event=feed_connected" in caplog.text


async def _frames_at_least(redis, key: str, n: int) -> bool:
    return await redis.xlen(key) >= n


def test_project_and_the_api_name_a_refused_password_as_such(redis_binary, tmp_path):
    # Both wait an outage out; a refused password is not one, and their log says so.
    log_path = tmp_path / "project.log"
    with redis_with_password(redis_binary) as port, open(log_path, "w") as log_file:
        url = f"redis://:{BAD_PW}@127.0.0.1:{port}/0"
        env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "INFO", "PROJECTOR_BLOCK_MS": "50"}
        project = subprocess.Popen([sys.executable, "-m", "app", "project"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log_file)
        node = ApiServer(url, log_to_file=True, LOG_LEVEL="INFO").start()
        try:
            answer = httpx.get(node.http + "/api/market/foreign", timeout=5)
            assert answer.status_code == 503
            asyncio.run(until(lambda: _true("redis_auth_refused" in log_path.read_text()), timeout=20))
        finally:
            node.stop()
            project.terminate()
            project.wait(timeout=10)
    project_log = log_path.read_text()
    assert "event=redis_auth_refused" in project_log and "level=ERROR" in project_log
    assert "event=redis_auth_refused" in node.stderr()
    assert BAD_PW not in project_log + node.stderr()
