"""The browser dashboard (app/api/static) in headless Chromium against a real API node.

Needs the ``playwright`` package and Debian's Chromium at /usr/bin/chromium (or
CHROMIUM_BIN); `playwright install` is never used, so no browser is downloaded.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
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


DAY_BEFORE = "2026-11-24"


def quote(sym: str, bids, asks, time: str = "09:20:00", date: str = F.DATE, **extra) -> str:
    """An X-QUOTE with up to three book levels and the day's price band."""
    content = {"TradingDate": date, "Time": time, "Exchange": "HOSE", "Symbol": sym, "RType": "X-QUOTE",
               "TradingSession": "LO", **F.book(bids, asks), **extra}
    return F.broadcast("X-QUOTE", content)


def frames() -> list[str]:
    band = {
        "ACB": dict(RefPrice=22800.0, Ceiling=24350.0, Floor=21250.0),
        "FPT": dict(RefPrice=118000.0, Ceiling=126200.0, Floor=109800.0),
        "VNM": dict(RefPrice=61000.0, Ceiling=65200.0, Floor=56800.0),
        "HPG": dict(RefPrice=27000.0, Ceiling=28850.0, Floor=25150.0),
        "MWG": dict(RefPrice=60000.0, Ceiling=64200.0, Floor=55800.0),
    }
    return [
        quote("ACB", [(22900, 1000), (22850, 2000), (22800, 300)], [(22950, 500), (23000, 700), (23050, 900)], **band["ACB"]),
        F.trade("ACB", 22950, 100, 1000, time="09:20:01"),  # at the ask: active buy
        F.trade("ACB", 22900, 300, 1300, time="09:20:02"),  # at the bid: active sell
        quote("FPT", [(126100, 50)], [(126200, 10)], **band["FPT"]),
        F.trade("FPT", 126200, 500, 500, time="09:20:03"),  # at the ceiling
        F.trade("FPT", 126200, 200, 700, time="09:21:03"),
        F.trade("FPT", 126200, 100, 800, time="09:22:03"),
        quote("VNM", [(56800, 900)], [(56900, 100)], **band["VNM"]),
        F.trade("VNM", 56800, 200, 200, time="09:20:04"),  # at the floor
        quote("HPG", [(26950, 10)], [(27000, 10)], **band["HPG"]),
        F.trade("HPG", 27000, 100, 100, time="09:20:04"),  # at the reference
        quote("MWG", [(59000, 10)], [(59100, 10)], **band["MWG"]),
        F.trade("MWG", 59000, 100, 100, time="09:20:04"),  # below the reference
        F.foreign("ACB", 1000, 200, "09:20:05"),  # the baseline: flow is counted from here
        F.foreign("ACB", 1500, 200, "09:21:05"),
        F.foreign("ACB", 1500, 600, "09:22:05"),
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
    return f'#indices [data-index="{index_id}"] [data-field="{field}"]'


async def classes(page, selector: str) -> set[str]:
    return set((await page.get_attribute(selector, "class") or "").split())


async def board_order(page) -> list[str]:
    return await page.eval_on_selector_all("#board-body tr[data-symbol]", "rs => rs.map(r => r.dataset.symbol)")


async def painted(page) -> None:
    """Until the browser has laid out and painted twice: layout, resize observers, redraws."""
    await page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


async def wait_chart(page, selector: str, count: int, **data) -> None:
    """Until the chart says it drew ``count`` items (and, say, for which symbol)."""
    await page.wait_for_function(
        """([sel, count, data]) => {
            const el = document.querySelector(sel);
            return !!el && el.dataset.value === String(count)
                && Object.entries(data).every(([k, v]) => el.dataset[k] === v);
        }""",
        arg=[selector, count, data],
        timeout=WAIT_MS,
    )


def by_change_pct(rows: dict, descending: bool) -> list[str]:
    """The page's order: known values by change_pct, ties by symbol; unknown last."""
    known = [r for r in rows.values() if r["change_pct"] is not None]
    known.sort(key=lambda r: r["symbol"])
    known.sort(key=lambda r: r["change_pct"], reverse=descending)
    unknown = sorted(r["symbol"] for r in rows.values() if r["change_pct"] is None)
    return [r["symbol"] for r in known] + unknown


async def test_dashboard_shows_the_live_market(redis, settings, redis_server, tmp_path):
    await project(redis, settings, frames())
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as server:
        api = httpx.Client(base_url=server.http, timeout=5)
        page_response = api.get("/")
        assert page_response.status_code == 200 and 'src="/static/app.js"' in page_response.text
        # Nothing from the internet: the page must work offline.
        assert "http://" not in page_response.text and "https://" not in page_response.text
        for asset in ("/static/app.js", "/static/style.css"):
            assert api.get(asset).status_code == 200, asset
        snap = api.get("/api/market/snapshot").json()
        rows = api.get("/api/market/board").json()["rows"]
        stocks = {s: r for s, r in rows.items() if r["exchange"] != "DER"}
        acb = rows["ACB"]
        assert (acb["mua_chu_dong_volume"], acb["ban_chu_dong_volume"]) == (100, 300)

        async with playwright_api.async_playwright() as pw:
            browser = await launch(pw)
            try:
                page = await browser.new_page(viewport={"width": 1440, "height": 900})
                errors = watch_errors(page)
                await page.goto(server.http + "/")

                # The board: the REST row, cell by cell.
                await wait_value(page, board("ACB", "last_price"), acb["last_price"])
                assert await board_order(page) == sorted(stocks)  # futures have their own card
                assert float(await value(page, board("ACB", "change"))) == acb["change"] == 100
                assert float(await value(page, board("ACB", "change_pct"))) == acb["change_pct"]
                assert (await page.inner_text(board("ACB", "last_price"))).strip() == "22.90"  # thousand VND
                assert (await page.inner_text(board("ACB", "change"))).strip() == "+0.10"
                for field in ("ref_price", "ceiling", "floor", "total_volume", "market_volume",
                              "mua_chu_dong_volume", "ban_chu_dong_volume", "buy_ratio"):
                    assert float(await value(page, board("ACB", field))) == acb[field], field
                assert acb["buy_ratio"] == 0.25 and (await page.inner_text(board("ACB", "buy_ratio"))).strip() == "25.0 %"
                for i in range(3):
                    for side in ("bid", "ask"):
                        price, volume = acb[side][i]
                        assert float(await value(page, board("ACB", f"{side}{i + 1}_price"))) == price
                        assert float(await value(page, board("ACB", f"{side}{i + 1}_volume"))) == volume
                # Board colours: ceiling, floor, reference, up, down; a level's volume as its price.
                assert "ceil" in await classes(page, board("FPT", "last_price"))
                assert "floor" in await classes(page, board("VNM", "last_price"))
                assert "ref" in await classes(page, board("HPG", "last_price"))
                assert "up" in await classes(page, board("ACB", "last_price"))
                assert "down" in await classes(page, board("MWG", "last_price"))
                assert "down" in await classes(page, board("MWG", "change_pct"))
                assert "ref" in await classes(page, board("ACB", "bid3_price"))  # 22,800 is the reference
                assert "ref" in await classes(page, board("ACB", "bid3_volume"))
                assert "ceil" in await classes(page, f'#board-body tr[data-symbol="FPT"] th.sym')

                # Sorting by a header: biggest first, then the other way; unknown last both ways.
                await page.click('#board thead th[data-sort="change_pct"]')
                assert await board_order(page) == by_change_pct(stocks, descending=True)
                assert await page.get_attribute('#board thead th[data-sort="change_pct"]', "aria-sort") == "descending"
                await page.click('#board thead th[data-sort="change_pct"]')
                assert await board_order(page) == by_change_pct(stocks, descending=False)
                await page.click('#board thead th[data-sort="symbol"]')
                assert await board_order(page) == sorted(stocks)

                # The first symbol is open; a click opens another: its candles and tape.
                await wait_value(page, "#detail-symbol", "ACB")
                fpt_1m = api.get("/api/history/candles/FPT?interval=1m").json()["candles"]
                fpt_5m = api.get("/api/history/candles/FPT?interval=5m").json()["candles"]
                tape = api.get("/api/market/trades/FPT?limit=60").json()["trades"]
                assert len(fpt_1m) == 3 and len(fpt_5m) == 1 and len(tape) == 3
                await page.click('#board-body tr[data-symbol="FPT"] .sym-btn')
                await wait_chart(page, "#candle-chart", len(fpt_1m), symbol="FPT", interval="1m")
                assert await page.locator("#candle-chart .candle").count() == len(fpt_1m)
                assert await page.get_attribute('#board-body tr[data-symbol="FPT"]', "class") == "selected"
                assert float(await value(page, '#detail [data-field="last_price"]')) == rows["FPT"]["last_price"]
                await wait_value(page, "#tape", len(tape))
                sides = await page.eval_on_selector_all("#tape tbody tr", "rs => rs.map(r => r.dataset.side)")
                assert sides == [t["side"] for t in tape]
                first_price = float(await value(page, '#tape tbody tr:first-child [data-field="price"]'))
                assert first_price == tape[0]["price"]
                await page.click('#intervals [data-interval="5m"]')
                await wait_chart(page, "#candle-chart", len(fpt_5m), symbol="FPT", interval="5m")
                assert await page.locator("#candle-chart .candle").count() == len(fpt_5m)
                await page.click('#intervals [data-interval="1m"]')
                await wait_chart(page, "#candle-chart", len(fpt_1m), symbol="FPT", interval="1m")

                # Market-wide charts, each as long as its REST answer.
                vn30_bars = api.get("/api/history/index/VN30").json()["candles"]
                foreign_minutes = api.get("/api/history/foreign").json()["minutes"]
                basis = api.get("/api/history/basis").json()["points"]
                assert len(vn30_bars) == 2 and len(foreign_minutes) == 2 and len(basis) == 1
                await wait_chart(page, "#index-chart", len(vn30_bars))
                assert await page.locator("#index-chart .candle").count() == len(vn30_bars)
                await wait_chart(page, "#foreign-chart", len(foreign_minutes))
                assert await page.locator("#foreign-chart rect.bar").count() == len(foreign_minutes)
                await wait_chart(page, "#basis-chart", len(basis))
                # Breadth of the picked index, from the snapshot.
                await page.click('#index-tabs [data-index="HNXIndex"]')
                await wait_value(page, '#index-panel [data-field="advances"]', 3)
                assert float(await value(page, '#index-panel [data-field="declines"]')) == 9
                assert float(await value(page, '#index-panel [data-field="no_changes"]')) == 4
                hnx_bars = api.get("/api/history/index/HNXIndex").json()["candles"]
                await wait_chart(page, "#index-chart", len(hnx_bars))

                # The snapshot's cards, as before.
                assert set(await page.eval_on_selector_all("#indices [data-index]", "cs => cs.map(c => c.dataset.index)")) == set(snap["indices"])
                assert float(await value(page, index_card("VN30", "value"))) == snap["indices"]["VN30"]["value"]
                assert float(await value(page, index_card("VN30", "advance_ratio"))) == snap["indices"]["VN30"]["advance_ratio"]
                assert float(await value(page, index_card("HNXIndex", "change"))) == snap["indices"]["HNXIndex"]["change"]
                assert int(await value(page, index_card("VN30", "intraday"))) == len(snap["indices"]["VN30"]["intraday"]) == 2
                deriv = snap["derivatives"]
                assert float(await value(page, '#futures [data-field="basis"]')) == deriv["basis"] == 5.0
                assert "Premium" in await page.inner_text('#futures [data-field="is_premium"]')
                assert await value(page, '#futures [data-field="symbol"]') == deriv["symbol"]
                assert await page.locator('#futures-flow tr[data-symbol="VN30F2612"]').count() == 1
                foreign = snap["foreign"]
                assert float(await value(page, '#foreign [data-field="total_net_value"]')) == foreign["total_net_value"]
                assert await page.get_attribute("#foreign-top-buy tbody tr[data-rank='1']", "data-symbol") == "ACB"
                assert await page.get_attribute("#foreign-top-sell tbody tr[data-rank='1']", "data-symbol") == "FPT"
                assert await page.get_attribute("#socket-status", "data-state") == "open"
                assert await value(page, "#session-date") == F.SESSION
                entities = (*snap["quotes"].values(), *snap["indices"].values(), deriv, *foreign["top_buy"], *foreign["top_sell"])
                stamps = [x["last_updated"] for x in entities]
                assert await value(page, "#last-update") == max(stamps)
                assert (await page.inner_text("#last-update")) == max(stamps)[11:19]

                # New frames: the same row updates in place, the open symbol's chart grows.
                await page.eval_on_selector('#board-body tr[data-symbol="ACB"]', "r => { r.__probe = 1; }")
                await project(redis, settings, [
                    F.index("VN30", 1950.5, "09:40:00"),
                    F.trade("ACB", 22950, 200, 1500, time="09:40:01"),
                    F.trade("FPT", 126100, 300, 1100, time="09:40:02"),
                ])
                after = api.get("/api/market/board").json()["rows"]
                assert after["ACB"]["mua_chu_dong_volume"] == 300 and after["ACB"]["last_price"] == 22950
                await wait_value(page, board("ACB", "mua_chu_dong_volume"), 300)
                await wait_value(page, board("ACB", "last_price"), 22950)
                await wait_value(page, board("FPT", "last_price"), 126100)
                assert "up" in await classes(page, board("FPT", "last_price"))  # off the ceiling now
                assert float(await value(page, board("ACB", "buy_ratio"))) == after["ACB"]["buy_ratio"] == 0.5
                assert await page.eval_on_selector('#board-body tr[data-symbol="ACB"]', "r => r.__probe") == 1
                fpt_now = api.get("/api/history/candles/FPT?interval=1m").json()["candles"]
                await wait_chart(page, "#candle-chart", len(fpt_now), symbol="FPT")
                assert len(fpt_now) == 4
                await wait_value(page, index_card("VN30", "value"), 1950.5)
                await wait_value(page, '#futures [data-field="basis"]', 1905.0 - 1950.5)
                assert "Discount" in await page.inner_text('#futures [data-field="is_premium"]')

                # Feed status from the node's status messages.
                await redis.publish(K.FEED_STATUS_CHANNEL, json.dumps({"connected": False}))
                await page.wait_for_selector('#feed-status[data-state="disconnected"]', timeout=WAIT_MS)
                assert "mất kết nối" in await page.inner_text("#feed-status")
                assert await page.get_attribute("#socket-status", "data-state") == "open"

                shot = tmp_path / "dashboard.png"
                await page.screenshot(path=str(shot), full_page=True, animations="disabled")
                width, _ = is_png(shot)
                assert width == 1440
                # At a laptop's width the whole board fits: no sideways scroll even inside it.
                assert await page.evaluate("document.documentElement.scrollWidth") <= 1440
                if BENCH_OUT.is_dir():
                    (BENCH_OUT / "dashboard.png").write_bytes(shot.read_bytes())

                await redis.publish(K.FEED_STATUS_CHANNEL, json.dumps({"connected": True}))
                await page.wait_for_selector('#feed-status[data-state="connected"]', timeout=WAIT_MS)
                assert errors == []

                # A phone: cards stack, the page never scrolls sideways, the board scrolls in its box.
                phone = await browser.new_page(viewport={"width": 420, "height": 900})
                phone_errors = watch_errors(phone)
                await phone.goto(server.http + "/")
                await wait_value(phone, board("ACB", "last_price"), 22950)
                await wait_chart(phone, "#candle-chart", len(api.get("/api/history/candles/ACB").json()["candles"]), symbol="ACB")
                await wait_chart(phone, "#foreign-chart", len(foreign_minutes))
                await wait_chart(phone, "#basis-chart", len(api.get("/api/history/basis").json()["points"]))
                await painted(phone)
                assert await phone.evaluate("document.documentElement.scrollWidth") <= 420
                wrap = await phone.eval_on_selector(".board-wrap", "w => [w.scrollWidth, w.clientWidth]")
                assert wrap[0] > wrap[1]  # the board's own container takes the width
                rights = await phone.eval_on_selector_all(".card", "cs => cs.map(c => c.getBoundingClientRect().right)")
                assert rights and max(rights) <= 420, rights
                lefts = await phone.eval_on_selector_all(".panels .card", "cs => cs.map(c => Math.round(c.getBoundingClientRect().left))")
                assert len(set(lefts)) == 1  # one column
                phone_shot = tmp_path / "dashboard-phone.png"
                await phone.screenshot(path=str(phone_shot), full_page=True, animations="disabled")
                assert is_png(phone_shot)[0] == 420
                if BENCH_OUT.is_dir():
                    (BENCH_OUT / "dashboard-phone.png").write_bytes(phone_shot.read_bytes())
                assert phone_errors == []
            finally:
                await browser.close()
                api.close()


async def test_the_session_picker_shows_an_earlier_day_and_pauses_live(redis, settings, redis_server):
    before = F.SESSION.replace("25", "24")
    assert before == DAY_BEFORE
    day_before = [
        quote("ACB", [(21900, 10)], [(22000, 10)], date="24/11/2026", RefPrice=22000.0, Ceiling=23500.0, Floor=20500.0),
        F.trade("ACB", 22000, 700, 700, time="10:00:01", date="24/11/2026"),
        F.trade("ACB", 21900, 100, 800, time="10:05:01", date="24/11/2026"),
        F.index("VN30", 1880.0, "10:00:05", date="24/11/2026"),
    ]
    writer = StreamWriter(redis)
    await writer.append([(f, RECEIVED) for f in day_before])
    await writer.close_session(DAY_BEFORE, RECEIVED)
    await writer.flush()
    await worker.drain(redis, settings)
    await project(redis, settings, frames())
    with ApiServer(redis_server.url, WS_THROTTLE_MS="50") as server:
        api = httpx.Client(base_url=server.http, timeout=5)
        assert api.get("/api/sessions").json()["current"] == F.SESSION
        old = api.get("/api/market/board", params={"date": DAY_BEFORE}).json()
        assert old["session"] == {"date": DAY_BEFORE, "closed": True} and old["rows"]["ACB"]["last_price"] == 21900
        old_candles = api.get("/api/history/candles/ACB", params={"date": DAY_BEFORE}).json()["candles"]
        assert len(old_candles) == 2
        async with playwright_api.async_playwright() as pw:
            browser = await launch(pw)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                errors = watch_errors(page)
                asked: list[str] = []
                page.on("request", lambda r: asked.append(r.url) if "/api/" in r.url else None)
                await page.goto(server.http + "/")
                await wait_value(page, board("ACB", "last_price"), 22900)
                await page.wait_for_selector(f'#session-picker option[value="{DAY_BEFORE}"]', state="attached", timeout=WAIT_MS)
                assert await page.is_hidden("#history-bar")

                # An earlier day: every fetch carries its date, the page shows that day.
                asked.clear()
                await page.select_option("#session-picker", DAY_BEFORE)
                await wait_value(page, board("ACB", "last_price"), 21900)
                await wait_value(page, "#session-date", DAY_BEFORE)
                await wait_chart(page, "#candle-chart", len(old_candles), symbol="ACB")
                assert await page.is_visible("#history-bar") and await page.is_visible("#session-closed")
                assert f"date={DAY_BEFORE}" in page.url
                assert await board_order(page) == ["ACB"]
                assert float(await value(page, index_card("VN30", "value"))) == 1880.0
                dated = [u for u in asked if "/api/sessions" not in u and "/api/feed" not in u]
                assert dated and all(f"date={DAY_BEFORE}" in u for u in dated), dated

                # Live pushes still arrive, and are not shown.
                pushes = int(await page.get_attribute("#socket-status", "data-rx"))
                asked.clear()
                await project(redis, settings, [F.trade("ACB", 23000, 100, 1400, time="09:50:00")])
                await page.wait_for_function(
                    "n => Number(document.querySelector('#socket-status').dataset.rx) > n", arg=pushes, timeout=WAIT_MS)
                await painted(page)
                assert float(await value(page, board("ACB", "last_price"))) == 21900
                assert float(await value(page, index_card("VN30", "value"))) == 1880.0
                assert not [u for u in asked if "/api/market/board" in u], asked

                # Back to live: today's board, with what came meanwhile.
                await page.click("#back-live")
                await wait_value(page, board("ACB", "last_price"), 23000)
                await wait_value(page, "#session-date", F.SESSION)
                assert await page.is_hidden("#history-bar") and "date=" not in page.url
                assert await page.input_value("#session-picker") == ""
                assert sorted(await board_order(page)) == ["ACB", "FPT", "HPG", "MWG", "VNM"]
                assert errors == []

                # A link to an earlier day opens on it.
                linked = await browser.new_page()
                await linked.goto(server.http + f"/?date={DAY_BEFORE}")
                await wait_value(linked, board("ACB", "last_price"), 21900)
                assert await linked.input_value("#session-picker") == DAY_BEFORE
            finally:
                await browser.close()
                api.close()


async def test_dashboard_reconnects_and_sends_the_token_as_its_first_message(redis, settings, redis_server):
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
                sockets: list = []
                first_frames: list[str] = []

                deflated: list[bytes] = []

                def opened(ws) -> None:
                    sockets.append(ws.url)
                    ws.on("framesent", lambda payload: first_frames.append(payload) if len(first_frames) < len(sockets) else None)
                    ws.on("framereceived", lambda payload: deflated.append(payload) if isinstance(payload, bytes) and payload[:1] == b"\x00" else None)

                requests: list = []
                page.on("websocket", opened)
                page.on("request", lambda r: requests.append(r))
                await page.goto(server.http + "/?token=s3cret&date=")
                await wait_value(page, board("ACB", "mua_chu_dong_volume"), 100)
                assert await page.get_attribute("#socket-status", "data-state") == "open"
                # The token travels in the first message on /ws, never in its URL; the page
                # asks for compressed data and shows it (the board above came that way).
                assert sockets and all(url.endswith("/ws?compression=deflate") for url in sockets), sockets
                assert deflated and json.loads(zlib.decompress(deflated[0], -15))["type"] == "snapshot"
                assert json.loads(first_frames[0]) == {"op": "auth", "token": "s3cret"}
                # It is gone from the address bar at once (the rest of the address kept), and
                # every REST call carries it as a bearer token, no other request at all.
                assert "token" not in page.url and "date=" in page.url, page.url
                rest = [r for r in requests if "/api/" in r.url]
                assert {r.url.split("?")[0].split("/api/")[1] for r in rest} >= {"feed", "sessions"}
                for r in requests[1:]:  # after the page's own address, which the user typed
                    headers = await r.all_headers()
                    assert "s3cret" not in r.url and "s3cret" not in headers.get("referer", ""), r.url
                    assert headers.get("authorization") == ("Bearer s3cret" if r in rest else None), r.url
                # A reload of the stripped address keeps the token (this tab's storage).
                first_frames.clear()
                sockets.clear()
                await page.reload()
                await page.wait_for_selector('#socket-status[data-state="open"]', timeout=WAIT_MS)
                assert json.loads(first_frames[0]) == {"op": "auth", "token": "s3cret"}

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
