"""The one credential check (app/api/auth.py): static tokens, JWTs, WebSocket admission."""

from __future__ import annotations

import time

import jwt
import pytest
from litestar import Litestar, WebSocket, websocket
from litestar.testing import TestClient
from litestar.exceptions import WebSocketDisconnect

from app.api.auth import Verifier, admit_websocket, auth_token, bearer_token
from app.config import Settings

SECRET = "jwt-signing-key-for-tests-" + "0123456789abcdef" * 3


def _jwt(exp_in: float, secret: str = SECRET, **claims) -> str:
    payload = {"sub": "user", **claims}
    if exp_in is not None:
        payload["exp"] = int(time.time() + exp_in)
    return jwt.encode(payload, secret, algorithm="HS256")


def test_nothing_configured_requires_nothing():
    verifier = Verifier.from_settings(Settings())
    assert not verifier.required
    assert not verifier.verify("anything")


def test_static_tokens_and_ws_token_are_one_list():
    verifier = Verifier.from_settings(Settings(api_tokens="alpha, beta,", ws_token="legacy"))
    assert verifier.required
    assert all(verifier.verify(t) for t in ("alpha", "beta", "legacy"))
    for bad in ("", "alph", "alpha ", "ALPHA", "alpha,beta", "x" * 10_000, "\ud800"):
        assert not verifier.verify(bad)
    assert "alpha" not in repr(verifier) and "legacy" not in repr(verifier)


def test_jwts_need_the_secret_the_algorithm_and_a_future_exp():
    verifier = Verifier.from_settings(Settings(api_jwt_secret=SECRET))
    assert verifier.required
    assert verifier.verify(_jwt(60))
    assert not verifier.verify(_jwt(-60))  # expired
    assert not verifier.verify(jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"))  # no exp
    assert not verifier.verify(_jwt(60, secret="another-key-" * 8))
    assert not verifier.verify(jwt.encode({"exp": int(time.time()) + 60}, SECRET * 2, algorithm="HS512"))
    unsigned = jwt.encode({"exp": int(time.time()) + 60}, None, algorithm="none")
    assert not verifier.verify(unsigned)
    assert not verifier.verify("a.b.c")


def test_bearer_header_and_auth_op_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    assert auth_token('{"op":"auth","token":"t"}') == "t"
    assert auth_token(b'{"op":"auth","token":"t"}') == "t"
    assert auth_token('{"op":"auth"}') == ""
    assert auth_token('{"op":"subscribe","channel":"board"}') is None
    assert auth_token("not json") is None
    assert auth_token('{"op":"auth","token":5}') is None
    assert auth_token(b"\xff\xfe") is None


def _app(verifier: Verifier, speaks_first: bool) -> Litestar:
    @websocket("/s")
    async def handler(socket: WebSocket) -> None:
        admission = await admit_websocket(socket, verifier, timeout=0.5, client_speaks_first=speaks_first)
        if not admission:
            return
        await socket.send_json({"admitted": True, "pending": admission.pending})
        await socket.close()

    return Litestar([handler])


def _closed_with(client: TestClient, url: str, *messages: str) -> int:
    with client.websocket_connect(url) as ws:
        for message in messages:
            ws.send_text(message)
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        return info.value.code


def test_websocket_admission_when_required():
    verifier = Verifier(["good"], SECRET)
    with TestClient(_app(verifier, speaks_first=True)) as client:
        with client.websocket_connect("/s?token=good") as ws:
            assert ws.receive_json() == {"admitted": True, "pending": None}
        with client.websocket_connect("/s") as ws:
            ws.send_text('{"op":"auth","token":"good"}')
            assert ws.receive_json() == {"admitted": True, "pending": None}
        with client.websocket_connect("/s") as ws:
            ws.send_text('{"op":"auth","token":"%s"}' % _jwt(60))
            assert ws.receive_json()["admitted"]
        assert _closed_with(client, "/s?token=bad") == 1008
        assert _closed_with(client, "/s?token=") == 1008
        assert _closed_with(client, "/s", '{"op":"auth","token":"bad"}') == 1008
        assert _closed_with(client, "/s", '{"op":"auth","token":"%s"}' % _jwt(-5)) == 1008
        assert _closed_with(client, "/s", '{"op":"subscribe","channel":"board"}') == 1008
        assert _closed_with(client, "/s") == 1008  # silence past the timeout


def test_websocket_admission_when_nothing_is_required_hands_back_the_first_message():
    verifier = Verifier()
    with TestClient(_app(verifier, speaks_first=True)) as client:
        with client.websocket_connect("/s") as ws:
            ws.send_text('{"op":"subscribe","channel":"board"}')
            assert ws.receive_json() == {"admitted": True, "pending": '{"op":"subscribe","channel":"board"}'}
        with client.websocket_connect("/s") as ws:
            ws.send_text('{"op":"auth","token":"whatever"}')  # consumed, not handed back
            assert ws.receive_json() == {"admitted": True, "pending": None}
        with client.websocket_connect("/s") as ws:  # a client that stays silent is let in
            assert ws.receive_json() == {"admitted": True, "pending": None}
    with TestClient(_app(verifier, speaks_first=False)) as client:
        with client.websocket_connect("/s") as ws:  # push channels: no wait at all
            assert ws.receive_json() == {"admitted": True, "pending": None}
