"""The command line speaks to people: an expected failure is one line and a non-zero exit.

Every case runs ``python -m app`` as a subprocess with a controlled environment: no
traceback on stderr, the right exit code, and a line that says what is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis as redis_sync

from app.cli import build_parser
from app.local_redis import free_port, private_redis_server, stop_process
from app.store import redis_from_url
from tests import factory as F
from tests.apiserver import ApiServer

ROOT = Path(__file__).resolve().parent.parent


def cli_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The parent's environment without any Redis, SSI or log settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SSI_", "LOG_", "WS_"))}
    return {**env, "REDIS_URL": redis_url, "REDIS_WAIT_S": "1", **extra}


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def closed_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def one_line(result: subprocess.CompletedProcess, code: int) -> str:
    """The single ``stock-tracker: ...`` line a failed command printed (asserted)."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stock-tracker: "), lines[0]
    return lines[0]


def usage_error(result: subprocess.CompletedProcess, option: str) -> str:
    """argparse's error line for ``option`` (exit 2, no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert f"error: argument {option}:" in last, last
    return last


@pytest.fixture
def clean_redis(redis_server):
    client = redis_sync.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


def two_sessions_file(path: Path) -> Path:
    lines = [
        F.quote("ACB", 22900, 22950, time="09:20:00", date="24/11/2026"),
        F.trade("ACB", 22950, 100, 1000, time="09:20:01", date="24/11/2026"),
        F.quote("ACB", 22900, 22950, time="09:20:00", date="25/11/2026"),
        F.trade("ACB", 22950, 100, 1000, time="09:20:01", date="25/11/2026"),
        F.trade("ACB", 23000, 200, 1200, time="09:20:02", date="25/11/2026"),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- files --------------------------------------------------------------------


def test_ingest_of_a_missing_file_is_one_line_before_any_redis(tmp_path):
    started = time.monotonic()
    line = one_line(run_cli("ingest", "--file", str(tmp_path / "nope.jsonl"), env=cli_env(closed_url())), 1)
    assert "no such file" in line and "nope.jsonl" in line
    assert time.monotonic() - started < 20  # did not sit waiting for the closed Redis


def test_ingest_of_a_directory_is_one_line(tmp_path):
    line = one_line(run_cli("ingest", "--file", str(tmp_path), env=cli_env(closed_url())), 1)
    assert "is a directory" in line and str(tmp_path) in line


def test_record_into_a_missing_directory_is_one_line(tmp_path):
    env = cli_env(closed_url(), SSI_CONSUMER_ID="x", SSI_CONSUMER_SECRET="y")
    line = one_line(run_cli("record", "--out", str(tmp_path / "no" / "rec.jsonl"), env=env), 1)
    assert "no such directory" in line


# ---- Redis away ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["snapshot"],
        ["project", "--drain"],
        ["replay", "--date", "2026-11-24"],
        ["replay", "--date", "2026-11-24", "--verify"],
        ["ingest", "--simulate", "--frames", "10"],
        ["ingest", "--file", str(Path(__file__))],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_one_shot_commands_give_up_on_redis_after_redis_wait_s(args):
    url = closed_url()
    started = time.monotonic()
    result = run_cli(*args, env=cli_env(url, REDIS_WAIT_S="1"), timeout=30)
    elapsed = time.monotonic() - started
    line = one_line(result, 1)
    assert line == f"stock-tracker: cannot reach Redis at {url} after 1 s (REDIS_URL)"
    assert elapsed < 15, elapsed  # it gives up; the line says after how long


def test_a_redis_password_is_masked_in_the_message():
    port = free_port()
    line = one_line(run_cli("snapshot", env=cli_env(f"redis://app:hunter2@127.0.0.1:{port}/0")), 1)
    assert "hunter2" not in line
    assert f"redis://app:***@127.0.0.1:{port}/0" in line


def test_a_bad_setting_names_its_variable():
    line = one_line(run_cli("snapshot", env=cli_env(closed_url(), REDIS_WAIT_S="soon")), 2)
    assert "REDIS_WAIT_S" in line and "invalid setting" in line


def test_a_short_jwt_secret_is_one_line_that_does_not_show_it():
    line = one_line(run_cli("snapshot", env=cli_env(closed_url(), API_JWT_SECRET="short-secret-4f2a")), 2)
    assert "API_JWT_SECRET must be at least 32 bytes" in line and "short-secret-4f2a" not in line


def test_a_writer_told_to_give_up_raises_instead_of_retrying_forever():
    import asyncio

    from app.ingest.writer import UNAVAILABLE, StreamWriter

    async def attempt() -> float:
        client = redis_from_url(closed_url())
        writer = StreamWriter(client, give_up_after_s=0.3)
        started = time.monotonic()
        with pytest.raises(UNAVAILABLE):
            await writer.append([(F.quote("ACB", 1, 2), 1_795_600_000_000)])
            await writer.flush()
        await client.aclose()
        return time.monotonic() - started

    assert 0.3 <= asyncio.run(attempt()) < 10


# ---- dates --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["2026-13-45", "yesterday", "2026-02-30", "20261125"])
def test_snapshot_refuses_a_date_that_is_not_a_calendar_day(bad):
    line = usage_error(run_cli("snapshot", "--date", bad, env=cli_env(closed_url())), "--date")
    assert "real calendar date YYYY-MM-DD" in line and repr(bad) in line


def test_replay_verify_of_an_impossible_date_is_never_identical():
    result = run_cli("replay", "--date", "2026-02-30", "--verify", env=cli_env(closed_url()))
    usage_error(result, "--date")
    assert "identical" not in result.stdout


def test_simulate_refuses_a_malformed_date():
    usage_error(run_cli("ingest", "--simulate", "--date", "2026-13-45", env=cli_env(closed_url())), "--date")


def test_replay_of_a_session_that_does_not_exist_fails(clean_redis, redis_server, tmp_path):
    env = cli_env(redis_server.url)
    for args in (["replay", "--date", "2026-11-23"], ["replay", "--date", "2026-11-23", "--verify"]):
        result = run_cli(*args, env=env)
        line = one_line(result, 1)
        assert "no session 2026-11-23" in line and "no sessions at all" in line
        assert "identical" not in result.stdout
    assert clean_redis.dbsize() == 0  # nothing was "rebuilt"

    assert run_cli("ingest", "--file", str(two_sessions_file(tmp_path / "f.jsonl")), env=env).returncode == 0
    line = one_line(run_cli("replay", "--date", "2026-11-23", "--verify", env=env), 1)
    assert "newest: 2026-11-25, 2026-11-24" in line


def test_replay_with_no_session_at_all_says_so(clean_redis, redis_server):
    line = one_line(run_cli("replay", env=cli_env(redis_server.url)), 1)
    assert "no session to replay" in line


def test_api_answers_400_json_for_a_date_that_is_not_a_calendar_day(clean_redis, redis_server):
    with ApiServer(redis_server.url) as node:
        for path in ("/api/market/snapshot", "/api/market/foreign", "/api/market/indices",
                     "/api/market/derivatives", "/api/market/trade-analysis/ACB"):
            res = httpx.get(node.http + path, params={"date": "2026-13-45"}, timeout=10)
            assert res.status_code == 400, (path, res.text)
            assert res.headers["content-type"].startswith("application/json")
            body = res.json()
            assert body["status_code"] == 400
            assert body["detail"] == "date must be a real calendar date YYYY-MM-DD: '2026-13-45'"
        assert httpx.get(node.http + "/api/market/snapshot", params={"date": "2026-11-25"}, timeout=10).status_code == 200


# ---- SSI ----------------------------------------------------------------------


@pytest.mark.parametrize("args", [["record", "--out", "rec.jsonl"], ["ingest", "--ssi"]], ids=lambda a: a[0])
def test_live_commands_without_credentials_say_which_variables(args, tmp_path):
    started = time.monotonic()
    env = cli_env(closed_url())
    out = [str(tmp_path / a) if a.endswith(".jsonl") else a for a in args]
    line = one_line(run_cli(*out, env=env), 1)
    assert "SSI_CONSUMER_ID" in line and "SSI_CONSUMER_SECRET" in line
    assert time.monotonic() - started < 20  # at once: neither SSI nor Redis was waited for

    line = one_line(run_cli(*out, env={**env, "SSI_CONSUMER_ID": "someone"}), 1)
    assert "SSI_CONSUMER_SECRET" in line and "SSI_CONSUMER_ID and" not in line


class FakeSsi:
    """``stock-tracker fake-ssi`` as a process on a free port."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "fake-ssi", "--port", str(self.port), *args],
            env=cli_env(closed_url(), LOG_LEVEL="WARNING"), cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def __enter__(self) -> "FakeSsi":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fake-ssi exited: " + self.proc.stderr.read().decode()[-2000:])
            try:
                httpx.get(self.url, timeout=0.5)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("fake-ssi did not come up")

    def __exit__(self, *exc) -> None:
        stop_process(self.proc, 15)


def test_refused_credentials_and_a_busy_port_are_one_line(tmp_path):
    with FakeSsi("--start-time", "10:30") as fake:
        env = cli_env(closed_url(), SSI_URL=fake.url, SSI_STREAM_URL=fake.url,
                      SSI_CONSUMER_ID="demo", SSI_CONSUMER_SECRET="wrong-secret")
        line = one_line(run_cli("record", "--out", str(tmp_path / "rec.jsonl"), env=env), 1)
        assert "refused the credentials" in line and "wrong-secret" not in line
        line = one_line(run_cli("ingest", "--ssi", env=env), 1)
        assert "refused the credentials" in line and "wrong-secret" not in line

        line = one_line(run_cli("fake-ssi", "--port", str(fake.port), env=cli_env(closed_url())), 1)
        assert f"port {fake.port}" in line and "already in use" in line
        line = one_line(run_cli("serve", "--port", str(fake.port), env=cli_env(closed_url())), 1)
        assert f"port {fake.port}" in line and "already in use" in line
        assert fake.proc.poll() is None  # the first server is untouched


# ---- option values ------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--frames", "-5", "must be a whole number >= 1"),
        ("--frames", "0", "must be a whole number >= 1"),
        ("--speed", "fast", "must be a number > 0 or 'max'"),
        ("--speed", "-1", "must be a number > 0 or 'max'"),
        ("--days", "0", "must be a whole number >= 1"),
        ("--activity", "0", "must be a number > 0"),
        ("--activity", "nan", "must be a number > 0"),
        ("--channels", "X,FOO", "unknown channels FOO"),
    ],
)
def test_simulate_refuses_bad_option_values(option, value, message):
    line = usage_error(run_cli("ingest", "--simulate", f"{option}={value}", env=cli_env(closed_url())), option)
    assert message in line and repr(value) in line or "unknown channels" in line


@pytest.mark.parametrize("command", [["ingest", "--simulate"], ["fake-ssi"], ["demo"]])
def test_universe_option_parses_and_refuses_an_unknown_one(command):
    parser = build_parser()
    assert parser.parse_args(command).universe == "vn30"
    for name in ("vn30", "hose", "hnx", "upcom", "all"):
        assert parser.parse_args([*command, "--universe", name.upper()]).universe == name
    line = usage_error(run_cli(*command, "--universe", "nyse", env=cli_env(closed_url())), "--universe")
    assert "must be one of vn30, hose, hnx, upcom, all, got 'nyse'" in line


@pytest.mark.parametrize("value", ["25:00", "10", "noon", "10:61"])
def test_fake_ssi_refuses_a_bad_start_time(value):
    line = usage_error(run_cli("fake-ssi", "--start-time", value, env=cli_env(closed_url())), "--start-time")
    assert "HH:MM" in line


def test_fake_ssi_help_lists_defaults_and_start_time():
    result = run_cli("fake-ssi", "--help", env=cli_env(closed_url()))
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for shown in ("--host HOST bind address (default: 127.0.0.1)", "--port PORT port (default: 8900)",
                  "(default: 1)", "(default: 1.0)", "(default: legacy)", "--start-time HH:MM[:SS]"):
        assert shown in text, shown


def test_every_option_with_a_default_shows_it_in_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"ingest", "project", "snapshot", "demo", "record", "fake-ssi", "serve", "replay"} <= set(commands)
    for name, sub in commands.items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            if action.default in (None, False, argparse.SUPPRESS):
                continue
            assert f"(default: {action.default})" in text, (name, action.option_strings)


# ---- what works says what it did ----------------------------------------------


def test_ingest_ends_with_a_summary_line(clean_redis, redis_server, tmp_path):
    env = cli_env(redis_server.url, LOG_LEVEL="WARNING")
    result = run_cli("ingest", "--file", str(two_sessions_file(tmp_path / "f.jsonl")), env=env)
    assert result.returncode == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("stock-tracker: ingested 5 frames into 2 sessions (2026-11-24, 2026-11-25) in ")
    assert summary.endswith(" s")

    result = run_cli("ingest", "--simulate", "--frames", "300", "--date", "2026-11-26", env=env)
    assert result.returncode == 0, result.stderr
    assert "ingested 300 frames into 1 session (2026-11-26) in " in result.stderr
    assert clean_redis.xlen("st:{2026-11-26}:frames") == 300


def test_scripts_replay_runs_as_the_readme_shows(clean_redis, redis_server, tmp_path):
    env = cli_env(redis_server.url, LOG_LEVEL="WARNING")
    assert run_cli("ingest", "--file", str(two_sessions_file(tmp_path / "f.jsonl")), env=env).returncode == 0
    assert run_cli("project", "--drain", env=env).returncode == 0
    script = ROOT / "scripts" / "replay.py"
    ways = [[sys.executable, str(script)]]
    if (ROOT / ".venv" / "bin" / "python").exists():  # the shebang's trampoline needs it (or python3 with the deps)
        ways.append([str(script)])
    for way in ways:
        result = subprocess.run([*way, "--date", "2026-11-25", "--verify"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (way, result.stderr)
        assert result.stdout.strip().endswith("2026-11-25: identical (0 differences)")
        result = subprocess.run([*way, "--date", "2026-11-23"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert "no session 2026-11-23" in one_line(result, 1)


# ---- the private redis-server -------------------------------------------------


@pytest.mark.parametrize("how", ["exits", "missing binary", "port taken"])
def test_a_private_redis_server_that_fails_to_start_leaves_nothing(how, redis_binary, redis_server, tmp_path):
    if how == "exits":
        fake = tmp_path / "redis-server"
        fake.write_text("#!/bin/sh\nexit 7\n")
        fake.chmod(0o755)
        server = private_redis_server(str(fake))
    elif how == "missing binary":
        server = private_redis_server(str(tmp_path / "no-such-redis-server"))
    else:
        server = private_redis_server(redis_binary, port=redis_server.port)
    assert os.path.isdir(server.dir)
    with pytest.raises((RuntimeError, OSError)):
        server.start()
    assert not os.path.exists(server.dir)
    assert server.proc is None or server.proc.poll() is not None
    assert redis_sync.Redis.from_url(redis_server.url).ping()  # the server holding the port is fine
