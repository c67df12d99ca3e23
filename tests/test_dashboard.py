"""The browser dashboard (app/api/static) in headless Chromium against a real API node.

Needs the ``playwright`` package and Debian's Chromium at /usr/bin/chromium (or
CHROMIUM_BIN); `playwright install` is never used, so no browser is downloaded.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import httpx
import pytest

from app import keys as K
from app.ingest.writer import StreamWriter
from app.projections import worker
from tests import factory as F
from tests.apiserver import ApiServer

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BENCH_OUT = Path(__file__).resolve().parent.parent / "bench" / "out"
RECEIVED = 1_795_600_000_000
WAIT_MS = 10_000

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed (pip install playwright)"
)
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def frames() -> list[str]:
    return [
        F.quote("ACB", 22900, 22950, time="09:20:00"),
        F.trade("ACB", 22950, 100, 1000, time="09:20:01"),  # at the ask: active buy
        F.trade("ACB", 22900, 300, 1300, time="09:20:02"),  # at the bid: active sell
        F.quote("FPT", 118000, 118100, time="09:20:00"),
        F.trade("FPT", 118100, 500, 500, time="09:20:03"),
        F.quote("VNM", 61000, 61100, time="09:20:00"),
        F.trade("VNM", 61000, 200, 200, time="09:20:04"),
        F.foreign("ACB", 1000, 200, "09:20:05"),
        F.foreign("FPT", 100, 900, "09:20:05", buy_val=1e8, sell_val=9e8),
        F.index("VN30", 1890.0, "09:19:05"),
        F.index("VN30", 1900.0, "09:20:05"),
        F.index("VNINDEX", 1700.0, "09:20:06"),
        F.index("HNXIndex", 240.0, "09:20:06", advances=3, declines=9, no_changes=4),
        F.trade("VN30F2612", 1905.0, 4, 4, time="09:21:11"),
        F.quote("VN30F2612", 1904.9, 1905.1, time="09:21:12"),
    ]


async def project(redis, settings, batch: list[str]) -> None:
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED) for f in batch])
    await writer.flush()
    await worker.drain(redis, settings)


async def launch(playwright):
    return await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def watch_errors(page) -> list[str]:
    """JavaScript exceptions and console errors: the page must produce none."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    return errors


async def wait_value(page, selector: str, value) -> None:
    """Until the element's data-value reads ``value`` (numbers compared as numbers)."""
    await page.wait_for_function(
        """([sel, want]) => {
            const el = document.querySelector(sel);
            if (!el) return false;
            const got = el.dataset.value;
            return typeof want === "number" ? got !== "" && Number(got) === want : got === String(want);
        }""",
        arg=[selector, value],
        timeout=WAIT_MS,
    )


async def value(page, selector: str) -> str:
    return await page.get_attribute(selector, "data-value")


def is_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0 and height > 0 and len(data) > 10_000, (width, height, len(data))
    return width, height


def board(sym: str, field: str) -> str:
    return f'#board-body tr[data-symbol="{sym}"] [data-field="{field}"]'


def index_card(index_id: str, field: str) -> str:
    return f'[data-index="{index_id}"] [data-field="{field}"]'


async def test_dashboard_shows_the_live_market(redis, settings, redis_server, tmp_path):
    await project(redis, settings, frames())
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as server:
        page_response = httpx.get(server.http + "/", timeout=5)
        assert page_response.status_code == 200 and 'src="/static/app.js"' in page_response.text
        for asset in ("/static/app.js", "/static/style.css"):
            assert httpx.get(server.http + asset, timeout=5).status_code == 200, asset
        snap = httpx.get(server.http + "/api/market/snapshot", timeout=5).json()
        acb = snap["quotes"]["ACB"]
        assert (acb["mua_chu_dong_volume"], acb["ban_chu_dong_volume"]) == (100, 300)

        async with playwright_api.async_playwright() as pw:
            browser = await launch(pw)
            try:
                page = await browser.new_page(viewport={"width": 1440, "height": 900})
                errors = watch_errors(page)
                await page.goto(server.http + "/")

                # Live numbers, equal to the REST snapshot.
                await wait_value(page, board("ACB", "mua_chu_dong_volume"), acb["mua_chu_dong_volume"])
                assert float(await value(page, board("ACB", "ban_chu_dong_volume"))) == acb["ban_chu_dong_volume"]
                assert float(await value(page, board("ACB", "total_volume"))) == acb["total_volume"]
                assert float(await value(page, board("ACB", "buy_ratio"))) == 0.25
                assert "down" in await page.get_attribute(board("ACB", "buy_ratio"), "class")  # < 45 %
                assert (await page.inner_text(board("ACB", "buy_ratio"))).strip() == "25.0 %"
                assert float(await value(page, board("FPT", "mua_chu_dong_value"))) == snap["quotes"]["FPT"]["mua_chu_dong_value"]
                assert "up" in await page.get_attribute(board("FPT", "buy_ratio"), "class")  # 100 %
                rows = await page.eval_on_selector_all("#board-body tr[data-symbol]", "rs => rs.map(r => r.dataset.symbol)")
                assert rows == sorted(s for s in snap["quotes"] if not s.startswith("VN30F"))
                assert await page.locator('#futures-flow tr[data-symbol="VN30F2612"]').count() == 1

                assert set(await page.eval_on_selector_all("[data-index]", "cs => cs.map(c => c.dataset.index)")) == set(snap["indices"])
                assert float(await value(page, index_card("VN30", "value"))) == snap["indices"]["VN30"]["value"]
                assert float(await value(page, index_card("VN30", "advance_ratio"))) == snap["indices"]["VN30"]["advance_ratio"]
                assert float(await value(page, index_card("HNXIndex", "change"))) == snap["indices"]["HNXIndex"]["change"]
                assert int(await value(page, index_card("VN30", "intraday"))) == len(snap["indices"]["VN30"]["intraday"]) == 2
                points = await page.get_attribute(index_card("VN30", "intraday"), "points")
                assert len(points.split()) == 2

                deriv = snap["derivatives"]
                assert float(await value(page, '#futures [data-field="basis"]')) == deriv["basis"] == 5.0
                assert "Premium" in await page.inner_text('#futures [data-field="is_premium"]')
                assert await value(page, '#futures [data-field="symbol"]') == deriv["symbol"]

                foreign = snap["foreign"]
                assert float(await value(page, '#foreign [data-field="total_net_value"]')) == foreign["total_net_value"]
                assert await page.get_attribute("#foreign-top-buy tbody tr[data-rank='1']", "data-symbol") == "ACB"
                assert await page.get_attribute("#foreign-top-sell tbody tr[data-rank='1']", "data-symbol") == "FPT"

                assert await page.get_attribute("#socket-status", "data-state") == "open"
                entities = (*snap["quotes"].values(), *snap["indices"].values(), deriv, *foreign["top_buy"], *foreign["top_sell"])
                stamps = [x["last_updated"] for x in entities]
                assert await value(page, "#last-update") == max(stamps)
                assert (await page.inner_text("#last-update")) == max(stamps)[11:19]

                # New frames: the same row and card update in place.
                await page.eval_on_selector('#board-body tr[data-symbol="ACB"]', "r => { r.__probe = 1; }")
                await project(redis, settings, [
                    F.index("VN30", 1950.5, "09:40:00"),
                    F.trade("ACB", 22950, 200, 1500, time="09:40:01"),
                ])
                await wait_value(page, index_card("VN30", "value"), 1950.5)
                await wait_value(page, board("ACB", "mua_chu_dong_volume"), 300)
                await wait_value(page, '#futures [data-field="basis"]', 1905.0 - 1950.5)
                assert "Discount" in await page.inner_text('#futures [data-field="is_premium"]')
                assert float(await value(page, board("ACB", "buy_ratio"))) == 0.5
                assert await page.eval_on_selector('#board-body tr[data-symbol="ACB"]', "r => r.__probe") == 1
                after = httpx.get(server.http + "/api/market/snapshot", timeout=5).json()
                assert after["quotes"]["ACB"]["mua_chu_dong_volume"] == 300
                assert after["indices"]["VN30"]["value"] == 1950.5

                # Feed status from the node's status messages.
                await redis.publish(K.FEED_STATUS_CHANNEL, json.dumps({"connected": False}))
                await page.wait_for_selector('#feed-status[data-state="disconnected"]', timeout=WAIT_MS)
                assert "mất kết nối" in await page.inner_text("#feed-status")
                assert await page.get_attribute("#socket-status", "data-state") == "open"

                shot = tmp_path / "dashboard.png"
                await page.screenshot(path=str(shot), full_page=True, animations="disabled")
                width, _ = is_png(shot)
                assert width == 1440
                if BENCH_OUT.is_dir():
                    (BENCH_OUT / "dashboard.png").write_bytes(shot.read_bytes())

                await redis.publish(K.FEED_STATUS_CHANNEL, json.dumps({"connected": True}))
                await page.wait_for_selector('#feed-status[data-state="connected"]', timeout=WAIT_MS)
                assert errors == []
            finally:
                await browser.close()


async def test_dashboard_reconnects_and_passes_the_token(redis, settings, redis_server):
    await project(redis, settings, frames())
    server = ApiServer(redis_server.url, WS_THROTTLE_MS="50", WS_TOKEN="s3cret").start()
    try:
        async with playwright_api.async_playwright() as pw:
            browser = await launch(pw)
            try:
                # Without the token the node closes with 1008, and the page stops retrying.
                page = await browser.new_page()
                await page.goto(server.http + "/")
                await page.wait_for_selector('#socket-status[data-state="closed"]', timeout=WAIT_MS)
                assert "1008" in await page.inner_text("#socket-status")
                assert await page.locator("#board-body tr[data-symbol]").count() == 0
                await page.close()

                page = await browser.new_page()
                await page.goto(server.http + "/?token=s3cret")
                await wait_value(page, board("ACB", "mua_chu_dong_volume"), 100)
                assert await page.get_attribute("#socket-status", "data-state") == "open"

                # The node goes away and comes back on the same port: the page
                # notices, backs off, reconnects by itself and shows new data.
                server.stop()
                await page.wait_for_selector('#socket-status[data-state="closed"]', timeout=WAIT_MS)
                await project(redis, settings, [F.trade("ACB", 22950, 700, 2000, time="09:45:00")])
                server.start()
                await page.wait_for_selector('#socket-status[data-state="open"]', timeout=20_000)
                await wait_value(page, board("ACB", "mua_chu_dong_volume"), 800)
            finally:
                await browser.close()
    finally:
        server.stop()
