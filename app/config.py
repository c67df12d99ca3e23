"""Typed settings, read once from environment variables."""

from __future__ import annotations

import os

import msgspec


_SECRET_FIELDS = ("ssi_consumer_secret", "ws_token")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service reads from its environment.

    ``redis_url`` empty means "embedded": an in-process store for demos.
    """

    redis_url: str = ""
    redis_wait_s: float = 30.0  # how long one-shot commands wait for an unreachable Redis
    stream_retention_days: int = 7
    projector_batch: int = 1000
    projector_block_ms: int = 1000
    projector_lease_ms: int = 10_000
    ingest_max_batch: int = 1000
    ws_throttle_ms: int = 100
    ws_token: str = ""
    ws_max_per_ip: int = 10
    ws_heartbeat_s: float = 30.0
    ws_send_timeout_s: float = 5.0
    ws_max_message_bytes: int = 4096
    ready_max_lag_ms: int = 5000
    ssi_url: str = "https://fc-data.ssi.com.vn/"
    ssi_stream_url: str = "https://fc-datahub.ssi.com.vn/"
    ssi_consumer_id: str = ""
    ssi_consumer_secret: str = ""
    ssi_channels: str = ""  # ';'-separated SwitchChannels specs; empty = the default set
    ssi_switch_mode: str = "joined"
    futures_naming: str = "legacy"
    log_format: str = "kv"
    log_level: str = "INFO"

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
    """redis://user:secret@host -> redis://user:***@host."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


_ENV = {
    "redis_url": "REDIS_URL",
    "redis_wait_s": "REDIS_WAIT_S",
    "stream_retention_days": "STREAM_RETENTION_DAYS",
    "projector_batch": "PROJECTOR_BATCH",
    "projector_block_ms": "PROJECTOR_BLOCK_MS",
    "projector_lease_ms": "PROJECTOR_LEASE_MS",
    "ingest_max_batch": "INGEST_MAX_BATCH",
    "ws_throttle_ms": "WS_THROTTLE_MS",
    "ws_token": "WS_TOKEN",
    "ws_max_per_ip": "WS_MAX_PER_IP",
    "ws_heartbeat_s": "WS_HEARTBEAT_S",
    "ws_send_timeout_s": "WS_SEND_TIMEOUT_S",
    "ws_max_message_bytes": "WS_MAX_MESSAGE_BYTES",
    "ready_max_lag_ms": "READY_MAX_LAG_MS",
    "ssi_url": "SSI_URL",
    "ssi_stream_url": "SSI_STREAM_URL",
    "ssi_consumer_id": "SSI_CONSUMER_ID",
    "ssi_consumer_secret": "SSI_CONSUMER_SECRET",
    "ssi_channels": "SSI_CHANNELS",
    "ssi_switch_mode": "SSI_SWITCH_MODE",
    "futures_naming": "FUTURES_NAMING",
    "log_format": "LOG_FORMAT",
    "log_level": "LOG_LEVEL",
}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from ``environ`` (default: ``os.environ``); bad values raise."""
    env = os.environ if environ is None else environ
    raw = {field: env[var] for field, var in _ENV.items() if var in env}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        for field, var in _ENV.items():  # name the variable the user set, not our field
            text = text.replace(f"`$.{field}`", var)
        raise SystemExit(f"invalid setting: {text}") from None
