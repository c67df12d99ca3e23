"""`stock-tracker demo` as a newcomer runs it: no REDIS_URL, no SSI account."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from app.store import free_port


def test_demo_serves_a_live_market_and_stops_cleanly_on_ctrl_c():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "demo", "--port", str(port), "--speed", "20"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        snapshot = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            try:
                snapshot = httpx.get(f"http://127.0.0.1:{port}/api/market/snapshot", timeout=2).json()
            except httpx.HTTPError:
                snapshot = {}
            if snapshot.get("quotes") and snapshot.get("indices"):
                break
            time.sleep(0.2)
        assert snapshot.get("quotes"), "no trades reached the API within 60 s"
        assert {"VN30", "VNINDEX", "HNXIndex"} <= set(snapshot["indices"])
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-3000:]
        assert f"http://127.0.0.1:{port}/" in out
        assert "event=store kind=" in err and "event=demo_stop" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
