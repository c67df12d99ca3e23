"""Settings from the environment, secrets kept out of reprs and logs, log line formats."""

from __future__ import annotations

import json
import logging

import pytest

from app import logs
from app.config import Settings, load_settings


def test_settings_come_from_the_environment_with_numbers_as_text():
    s = load_settings({"REDIS_URL": "redis://h:1/2", "WS_THROTTLE_MS": "250", "WS_HEARTBEAT_S": "1.5"})
    assert (s.redis_url, s.ws_throttle_ms, s.ws_heartbeat_s) == ("redis://h:1/2", 250, 1.5)
    assert load_settings({}) == Settings()


def test_a_bad_setting_stops_with_a_clear_message():
    with pytest.raises(SystemExit, match="invalid setting"):
        load_settings({"WS_THROTTLE_MS": "fast"})


def test_a_jwt_secret_shorter_than_hs256_needs_is_refused_without_showing_it():
    short = "only-31-bytes-of-jwt-secret-xyz"
    assert len(short) == 31
    with pytest.raises(SystemExit, match="API_JWT_SECRET must be at least 32 bytes") as caught:
        load_settings({"API_JWT_SECRET": short})
    assert short not in str(caught.value)
    assert load_settings({"API_JWT_SECRET": short + "!"}).api_jwt_secret == short + "!"


def test_secrets_never_show_in_a_repr():
    s = Settings(ssi_consumer_secret="s3cr3t", ws_token="t0ken", redis_url="redis://user:pa55@host:6379/0")
    text = repr(s)
    assert "s3cr3t" not in text and "t0ken" not in text and "pa55" not in text
    assert "redis://user:***@host:6379/0" in text


def test_json_logs_are_one_object_per_line(capsys):
    logs.setup("json", "INFO")
    logging.getLogger("stock_tracker.test").info("event=thing date=2026-11-25 frames=3")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "thing" and record["frames"] == "3" and record["level"] == "INFO"
    logs.setup("kv", "INFO")
    logging.getLogger("stock_tracker.test").info("event=other")
    err = capsys.readouterr().err
    assert "level=INFO" in err and "logger=stock_tracker.test event=other" in err
