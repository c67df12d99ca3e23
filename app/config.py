"""Typed settings, read once from environment variables."""

from __future__ import annotations

import os
import re

import msgspec

from app.ssi_protocol import DEFAULT_STREAM_URL, DEFAULT_URL


_SECRET_FIELDS = ("ssi_consumer_secret", "ws_token", "api_tokens", "api_jwt_secret")
# RFC 7518 §3.2: an HS256 key shorter than the hash (32 bytes) can be guessed offline from
# any one token a browser holds, so a shorter API_JWT_SECRET is refused at start.
JWT_SECRET_MIN_BYTES = 32


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    """Everything the service reads from its environment: each field from the variable
    of its name in upper case (``ws_throttle_ms`` from ``WS_THROTTLE_MS``).

    ``redis_url`` empty means "embedded": an in-process store for demos.
    """

    redis_url: str = ""
    redis_wait_s: float = 30.0  # how long one-shot commands wait for an unreachable Redis
    stream_retention_days: int = 7
    archive_dir: str = ""  # set: retention archives each session here before deleting it
    projector_batch: int = 1000
    projector_block_ms: int = 1000
    projector_lease_ms: int = 10_000
    # A batch changing more fields than this is written in several script calls (each
    # atomic, with its own checkpoint), so no call holds Redis more than a few ms.
    projector_write_fields: int = 2000
    ingest_max_batch: int = 1000
    ws_throttle_ms: int = 100
    ws_token: str = ""  # one more static token (the seed's name), for REST and WebSockets alike
    api_tokens: str = ""  # comma-separated static tokens; any credential set makes auth required
    api_jwt_secret: str = ""  # HS256 key of the JWTs (with exp) the operator's backend issues
    ws_max_per_ip: int = 10
    # Peers whose X-Forwarded-For is believed (addresses or networks, comma-separated; *
    # for any): set it to the proxy in front, else every client shares the proxy's limits.
    forwarded_allow_ips: str = ""
    api_rate_limit: int = 50  # REST requests per second per client address, per node; 0: no limit
    http_header_timeout_s: float = 10.0  # a client that has not sent its request head by then is dropped
    http_keepalive_s: float = 5.0  # an idle keep-alive connection is closed after this
    cors_origins: str = ""  # comma-separated origins allowed to call the REST API from a browser; * any
    ws_allowed_origins: str = ""  # comma-separated Origins a WebSocket may come from; empty: any
    ws_heartbeat_s: float = 30.0
    ws_send_timeout_s: float = 5.0
    ws_max_message_bytes: int = 4096
    ws_max_subs: int = 100  # subscriptions per /ws connection
    ws_max_symbols: int = 2000  # symbols in one /ws board subscription
    ready_max_lag_ms: int = 5000
    tape_length: int = 1000  # trades kept per symbol for time and sales (change it only between sessions)
    ssi_url: str = DEFAULT_URL
    ssi_stream_url: str = DEFAULT_STREAM_URL
    ssi_consumer_id: str = ""
    ssi_consumer_secret: str = ""
    ssi_channels: str = ""  # ';'-separated SwitchChannels specs; empty = the default set
    ssi_switch_mode: str = "joined"
    futures_naming: str = "legacy"
    log_format: str = "kv"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        from app.api.addresses import TrustedProxies  # a pure parser; checked at load, not at the first request

        TrustedProxies.parse(self.forwarded_allow_ips)
        if self.api_jwt_secret and len(self.api_jwt_secret.encode()) < JWT_SECRET_MIN_BYTES:
            # The message gives the length needed, never the secret.
            raise ValueError(f"API_JWT_SECRET must be at least {JWT_SECRET_MIN_BYTES} bytes (HS256)")

    def __repr__(self) -> str:
        # Settings may end up in a log line or a traceback: never show secrets.
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in _SECRET_FIELDS and value:
                value = "***"
            elif name == "redis_url":
                value = mask_password(value)
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"


def mask_password(url: str) -> str:
    """redis://user:secret@host -> redis://user:***@host; ``?password=`` masked too.

    A userinfo without a colon is masked whole: some clients read it as the password.
    """
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and "/" not in creds:
        user, colon, _ = creds.partition(":")
        rest = f"{user}:***@{host}" if colon else f"***@{host}"
    return scheme + sep + _QUERY_PASSWORD.sub(r"\1***", rest)


_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from ``environ`` (default: ``os.environ``); bad values raise."""
    env = os.environ if environ is None else environ
    raw = {var: env[var] for var in _VARIABLES if var in env}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        # msgspec names the variable as `$.WS_THROTTLE_MS`: show it as the user wrote it.
        text = str(exc).replace("`$.", "").replace("`", "")
        raise SystemExit(f"invalid setting: {text}") from None


_VARIABLES = tuple(f.encode_name for f in msgspec.structs.fields(Settings))
