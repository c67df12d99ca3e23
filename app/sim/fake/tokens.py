"""Access tokens: HS256-signed JWTs the fake issues, and their expiry."""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time as _time
import uuid

from app.sim.fake.stats import FakeStats

__all__ = ["TokenIssuer"]

_JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}


class TokenIssuer:
    """HS256-signed JWT access tokens and their expiry times."""

    def __init__(self, consumer_id: str, ttl_s: float, stats: FakeStats) -> None:
        self.consumer_id = consumer_id
        self.ttl_s = ttl_s
        self.stats = stats
        self._signing_key = secrets.token_bytes(32)
        self._tokens: dict[str, float] = {}  # access token -> exp (epoch seconds)

    def issue(self) -> str:
        wall = _time.time()
        now = int(wall)
        # Whole seconds as usual; sub-minute test TTLs keep their fraction (NumericDate allows it).
        exp: float = int(wall + self.ttl_s) if self.ttl_s >= 60 else round(wall + self.ttl_s, 3)
        claims = {"sub": self.consumer_id, "iss": "fake-fc-data", "jti": uuid.uuid4().hex,
                  "iat": now, "nbf": now, "exp": exp}
        # Some clients decode the payload as standard base64, some as base64url: keep it to
        # [A-Za-z0-9] so both read it (docs/ssi.md, AccessToken).
        for n in itertools.count():
            claims["n"] = n
            payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
            if payload.isalnum():
                break
        signing_input = f"{_JWT_HEADER}.{payload}"
        sig = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).hexdigest()
        token = f"{signing_input}.{sig}"
        if len(self._tokens) > 10_000:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > wall}
        self._tokens[token] = float(exp)
        self.stats.tokens_issued += 1
        return token

    def valid(self, token: str) -> bool:
        exp = self._tokens.get(token)
        return exp is not None and _time.time() < exp

    def revoke_all(self) -> int:
        """Forget every token issued so far; how many there were."""
        n = len(self._tokens)
        self._tokens.clear()
        return n


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")
