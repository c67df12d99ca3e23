"""/ws subscription benchmarks for bench/api.py: board, `*`, candles and trades clients on a
full-market session, and the node's CPU when nothing subscribed changes.

Probes are trades of symbols of their own, whose figures carry a sequence number:
- the board probe ``PRBBOARD``: its row's ``market_volume`` (the largest TotalVol) is the
  sequence number, so a board client finds ``"PRBBOARD":{`` and reads ``"market_volume":``;
- the history probes ``PRB000``..: a trade at price ``10000 + 10 * seq``, so a candles or
  trades client reads the largest ``"close":`` / ``"price":`` of a message. Each probe tick
  trades one group of them (``HISTORY_GROUPS``), so a symbol sees every tenth probe.
The clients themselves are in bench/ws_clients.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import string
import time
from datetime import date

from children import ClientProcess
from ws_clients import BOARD_PROBE, HISTORY_GROUPS, HISTORY_PROBES

FULL_MARKET = 1600
# The day after the other API benches' session: a session of its own, and the current one.
FULL_DATE = date(2026, 11, 26)


def universe(n: int = FULL_MARKET) -> list[str]:
    """A full market's symbols: the VN30 names, then three-letter codes (deterministic)."""
    from app.sim.universe import VN30_SYMBOLS

    names = list(VN30_SYMBOLS)
    for letters in itertools.product(string.ascii_uppercase, repeat=3):
        if len(names) >= n:
            break
        code = "".join(letters)
        if code not in names and not code.startswith("PRB"):
            names.append(code)
    return names


def probe_trade(symbol: str, price: float, last_vol: int, total_vol: int, hms: str, day: str) -> bytes:
    content = json.dumps({
        "RType": "X-TRADE", "TradingDate": day, "Time": hms, "Symbol": symbol, "LastPrice": float(price),
        "LastVol": float(last_vol), "TotalVol": float(total_vol), "MarketId": "HOSE", "Exchange": "HOSE",
        "TradingSession": "LO", "Side": "BU",
    }, separators=(",", ":"))
    return json.dumps({"DataType": "X-TRADE", "Content": content}, separators=(",", ":")).encode()


class MarketFeed:
    """Full-market simulated frames plus the probes above, appended with StreamWriter;
    ``sent`` maps each probe's sequence number to when it was handed to ingest."""

    def __init__(self, redis, seed: int, symbols: list[str]) -> None:
        from app.ingest.writer import StreamWriter
        from app.sim import MarketSimulator

        self.writer = StreamWriter(redis)
        self.day = FULL_DATE.strftime("%d/%m/%Y")
        try:  # the simulator's own full market, where it has one
            sim = MarketSimulator(seed=seed, start=FULL_DATE, universe="all")
        except TypeError:
            sim = MarketSimulator(seed=seed, start=FULL_DATE, symbols=symbols)
        self.events = (ev for ev in sim.events() if ev.frame is not None)
        self.seq = 0
        self.hms = "09:15:00"
        self.frames = 0
        self.sent: dict[int, float] = {}

    async def append(self, n_sim: int, probe: bool = True, history: bool = False) -> None:
        ms = int(time.time() * 1000)
        batch = [(ev.frame, ms) for ev in itertools.islice(self.events, n_sim)]
        if batch:
            at = batch[-1][0].find('Time\\":\\"')
            if at >= 0:
                self.hms = batch[-1][0][at + 9 : at + 17]
        if probe:
            self.seq += 1
            seq = self.seq
            batch.append((probe_trade(BOARD_PROBE, 10_000, 1, seq, self.hms, self.day), ms))
            # Only in the phase that reads them: 50 symbols traded per tick would otherwise
            # be most of every '*' update (and nearly double the frame rate).
            if history:
                price, total = 10_000 + 10 * seq, seq // HISTORY_GROUPS + 1
                for symbol in HISTORY_PROBES[seq % HISTORY_GROUPS :: HISTORY_GROUPS]:
                    batch.append((probe_trade(symbol, price, 1, total, self.hms, self.day), ms))
            self.sent[seq] = time.time()
        self.frames += len(batch)
        await self.writer.append(batch)

    async def pace(self, every: float, n_sim: int, seconds: float, history: bool = False) -> range:
        loop = asyncio.get_running_loop()
        first = self.seq + 1
        start = loop.time()
        i = 0
        while loop.time() - start < seconds:
            await self.append(n_sim, history=history)
            i += 1
            await asyncio.sleep(max(0.0, start + i * every - loop.time()))
        await self.writer.flush()
        return range(first, self.seq + 1)


def history_seqs(symbol: str, seqs: range) -> list[int]:
    """The probes that traded ``symbol``."""
    group = HISTORY_PROBES.index(symbol) % HISTORY_GROUPS
    return [s for s in seqs if s % HISTORY_GROUPS == group]




class Clients(ClientProcess):
    """One `_subs` client process of one mode."""

    dump_timeout = 120.0

    @classmethod
    async def start(cls, children, port: int, n: int, mode: str, seed: int) -> "Clients":
        args = ("_subs", str(port), str(n), mode, str(seed), os.path.join(children.logdir, NAMES))
        return await cls.spawn(children, f"a /ws client process ({mode})", 300, *args)


async def caught_up(redis, timeout: float = 120.0) -> None:
    from app import keys as K

    keys = K.SessionKeys(FULL_DATE.isoformat())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = await redis.xrevrange(keys.frames, count=1)
        if last and await redis.hget(keys.meta, "checkpoint") == last[0][0]:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the projector did not catch up with the full-market session")


NAMES = "symbols.json"  # the session's board symbols, for the client processes to pick from


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_many(children, port: int, n: int, mode: str, per_process: int) -> list[Clients]:
    sizes = [min(per_process, n - i) for i in range(0, n, per_process)]
    return list(await asyncio.gather(*(
        Clients.start(children, port, k, mode, seed=1000 * i + 7) for i, k in enumerate(sizes)
    )))


async def phase(groups: dict[str, list[Clients]], feed: MarketFeed, every: float, n_sim: int,
                seconds: float, settle: float, node_pid: int) -> dict:
    """Probes for ``seconds``; per mode: lag percentiles, bytes per client per second."""
    from harness.probe import lags_ms, percentile

    everyone = [c for cs in groups.values() for c in cs]
    client_cpu0 = 0.0
    for c in everyone:
        client_cpu0 += (await c.dump())["cpu_s"]  # and drop what connecting brought (snapshots)
    frames0, cpu0, started = feed.frames, cpu_seconds(node_pid), time.perf_counter()
    seqs = await feed.pace(every, n_sim, seconds, history="history" in groups)
    paced = time.perf_counter() - started
    await asyncio.sleep(settle)
    elapsed = time.perf_counter() - started
    node_cpu = (cpu_seconds(node_pid) - cpu0) / elapsed
    out: dict = {"node_cpu": node_cpu, "probes": len(seqs), "seconds": elapsed,
                 "frames_per_s": (feed.frames - frames0) / paced, "load": os.getloadavg()}
    client_cpu = -client_cpu0
    for mode, clients in groups.items():
        lags: list[float] = []
        missing = received = messages = board_rows = count = 0
        closed: dict[str, int] = {}
        for c in clients:
            got = await c.dump()
            client_cpu += got["cpu_s"]
            for client, symbol in zip(got["clients"], got["symbols"]):
                count += 1
                received += client["bytes"]
                messages += client["messages"]
                board_rows += client.get("rows", 0)
                wanted = history_seqs(symbol, seqs) if symbol else seqs
                if mode != "market":
                    these, lost = lags_ms(client["records"], feed.sent, wanted)
                    lags += these
                    missing += lost
            for code, k in got["closed"].items():
                closed[code] = closed.get(code, 0) + k
        out[mode] = {
            "clients": count, "samples": len(lags), "missing": missing, "closed": closed,
            "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99),
            "bytes_per_client_s": received / max(1, count) / elapsed,
            "messages_per_client_s": messages / max(1, count) / elapsed,
            "rows_per_message": board_rows / max(1, messages),
        }
    out["client_cpu"] = client_cpu / elapsed  # cores the client processes took meanwhile
    return out


async def stop_all(groups: list["Clients"]) -> None:
    """End a phase: its clients leave, and the node's next full collection
    (app.gctune.collect_forever, every FULL_COLLECTION_S once clients left) frees them
    before the next phase starts. Thousands of sockets leaving at once cost one pause of
    ~0.2-0.3 s on this VM, which would otherwise land inside the next phase's window and be
    counted as its latency."""
    from app.gctune import FULL_COLLECTION_S

    for c in groups:
        await c.stop()
    await asyncio.sleep(FULL_COLLECTION_S + 1.0)


async def measure(children, redis, port: int, node_pid: int, *, throttle_ms: int, rate: int, seconds: float,
                  seed: int, board_clients: int, star_clients: int, history_clients: int, per_process: int,
                  log=print) -> dict:
    """Every /ws figure of the issue, on one full-market session, one after the other."""
    feed = MarketFeed(redis, seed, universe())
    every = (throttle_ms + 10) / 1000
    n_sim = max(1, round(rate * every))
    settle = max(1.0, 3 * throttle_ms / 1000)
    while feed.frames < 40_000:  # a board with (nearly) every symbol quoted
        await feed.append(1000, probe=False)
    await feed.writer.flush()
    await feed.pace(every, n_sim, 1.0)
    await caught_up(redis)
    from app.projections.read_history import read_board

    names = sorted(s for s in await read_board(redis, FULL_DATE.isoformat()) if not s.startswith("PRB"))
    with open(os.path.join(children.logdir, NAMES), "w") as f:
        json.dump(names, f)
    results: dict = {"symbols": len(names), "rate": n_sim / every, "push_ms": every * 1000}
    results["builds"] = await measure_builds(redis, names)

    log(f"  /ws: no clients, then {star_clients} clients on symbols that never change ...")
    results["idle"] = await phase({}, feed, every, n_sim, seconds, settle, node_pid)
    quiet = await start_many(children, port, star_clients, "quiet", per_process)
    results["quiet"] = await phase({"quiet": quiet}, feed, every, n_sim, seconds, settle, node_pid)
    await stop_all(quiet)

    log(f"  /ws: {board_clients} clients on 30-symbol boards ...")
    boards = await start_many(children, port, board_clients, "board30", per_process)
    results["board30"] = await phase({"board30": boards}, feed, every, n_sim, seconds, settle, node_pid)
    await stop_all(boards)

    # The '*' clients ask for ?compression=deflate (docs/ws.md); 5 plain ones beside them
    # show what the same updates weigh as text.
    log(f"  /ws: {star_clients} clients on '*' (deflate), beside 5 plain ones and 5 on /ws/market ...")
    stars = await start_many(children, port, star_clients, "star_deflate", per_process)
    plain = await start_many(children, port, 5, "star", per_process)
    market = await start_many(children, port, 5, "market", per_process)
    results["star"] = await phase({"star_deflate": stars, "star": plain, "market": market}, feed, every, n_sim,
                                  seconds, settle, node_pid)
    await stop_all([*stars, *plain, *market])

    log(f"  /ws: {history_clients} clients on candles or trades of random symbols ...")
    history = await start_many(children, port, history_clients, "history", per_process)
    results["history"] = await phase({"history": history}, feed, every, n_sim, seconds, settle, node_pid)
    await stop_all(history)
    return results


def rows(r: dict, throttle: int) -> list[tuple[str, str, str, str, str, str]]:
    """Table rows: figure, ours, baseline, ratio, target, met."""
    def ms(v: float) -> str:
        return "n/a" if v != v else f"{v:,.1f} ms"

    def note(m: dict) -> str:
        return f" ({m['missing']:,} probes missed, closed {m['closed']})" if m["missing"] or m["closed"] else ""

    def within(m: dict, limit: float) -> str:
        ok = m["p99_ms"] == m["p99_ms"] and m["p99_ms"] <= limit and not m["missing"] and not m["closed"]
        return "yes" if ok else "**no**"

    def load(phase: str) -> str:  # the 1-minute load average as the phase ended
        return f"; load {r[phase]['load'][0]:.2f}" if "load" in r[phase] else ""

    def clients(phase: str) -> str:
        return f"{r[phase]['client_cpu']:.2f}" if "client_cpu" in r[phase] else "?"

    b, s, h = r["board30"]["board30"], r["star"]["star"], r["history"]["history"]
    market, builds = r["star"]["market"], r["builds"]
    z = r["star"].get("star_deflate")  # runs before compression had only plain '*' clients
    share = s["bytes_per_client_s"] / max(1.0, market["bytes_per_client_s"])
    extra_cpu = r["quiet"]["node_cpu"] - r["idle"]["node_cpu"]
    stars = []
    if z is not None:
        zshare = z["bytes_per_client_s"] / max(1.0, market["bytes_per_client_s"])
        stars += [
            (f"/ws p99, {z['clients']:,} clients on '*' (deflate)", ms(z["p99_ms"]) + note(z),
             f"p50 {ms(z['p50_ms'])}; {s['clients']} plain beside them: p99 {ms(s['p99_ms'])}{load('star')}", "",
             f"<= {throttle + 150} ms", within(z, throttle + 150)),
            ("/ws '*' bytes per client (deflate)", f"{z['bytes_per_client_s'] / 1e3:,.1f} kB/s",
             f"{market['bytes_per_client_s'] / 1e3:,.1f} kB/s (/ws/market, same phase)", f"{zshare:.3f}x",
             "<= 0.10x", "yes" if zshare <= 0.10 else "**no**"),
            (f"/ws '*' bytes per client (plain text, {s['clients']} clients)", f"{s['bytes_per_client_s'] / 1e3:,.1f} kB/s",
             f"{market['bytes_per_client_s'] / 1e3:,.1f} kB/s (/ws/market, same phase)", f"{share:.3f}x",
             "<= 0.10x", "yes" if share <= 0.10 else "**no**"),
            ("/ws '*' update (deflate)", f"{z['rows_per_message']:,.1f} rows, {_per_row(z):,.0f} B a row on the wire",
             f"{z['messages_per_client_s']:.2f} updates/s per client", "", "", ""),
        ]
    else:
        stars += [
            (f"/ws p99, {s['clients']:,} clients on '*'", ms(s["p99_ms"]) + note(s), f"p50 {ms(s['p50_ms'])}{load('star')}",
             "", f"<= {throttle + 150} ms", within(s, throttle + 150)),
            ("/ws '*' bytes per client", f"{s['bytes_per_client_s'] / 1e3:,.1f} kB/s",
             f"{market['bytes_per_client_s'] / 1e3:,.1f} kB/s (/ws/market, same phase)", f"{share:.3f}x",
             "<= 0.10x", "yes" if share <= 0.10 else "**no**"),
        ]
    if "rows_per_message" in s:
        stars.append(("/ws '*' update" + (" (plain text)" if z is not None else ""),
                      f"{s['rows_per_message']:,.1f} rows of {_per_row(s):,.0f} B",
                      f"{s['messages_per_client_s']:.2f} updates/s per client", "", "", ""))
    return [
        (f"/ws p99, {b['clients']:,} clients on 30-symbol boards", ms(b["p99_ms"]) + note(b),
         f"p50 {ms(b['p50_ms'])}{load('board30')}", "", f"<= {throttle + 100} ms", within(b, throttle + 100)),
        *stars,
        (f"/ws p99, {h['clients']:,} clients on candles or trades", ms(h["p99_ms"]) + note(h),
         f"p50 {ms(h['p50_ms'])}{load('history')}", "", f"<= {throttle + 100} ms", within(h, throttle + 100)),
        ("node CPU, clients on unchanged symbols only", f"{r['quiet']['node_cpu']:.3f} cores",
         f"{r['idle']['node_cpu']:.3f} cores (no clients){load('quiet')}", f"{extra_cpu:+.3f}", "~ +0",
         "yes" if extra_cpu <= 0.02 else "**no**"),
        (f"seed snapshot build, full market, {builds['changed']} symbols changed",
         f"{builds['snapshot_ms']:.1f} ms", f"{builds['snapshot_seed_ms']:.1f} ms (read and encode all)",
         f"{builds['snapshot_ms'] / builds['snapshot_seed_ms']:.2f}x", "<= 15 ms",
         "yes" if builds["snapshot_ms"] <= 15 else "**no**"),
        ("live board build (GET /api/market/board), full market",
         f"{builds['board_ms']:.1f} ms", f"{builds['board_seed_ms']:.1f} ms (read and encode all)",
         f"{builds['board_ms'] / builds['board_seed_ms']:.2f}x", "", ""),
        ("node CPU, 30-symbol boards / '*' / candles+trades" + (" ('*' with deflate)" if z is not None else ""),
         f"{r['board30']['node_cpu']:.2f} / {r['star']['node_cpu']:.2f} / {r['history']['node_cpu']:.2f} cores",
         f"client processes {clients('board30')} / {clients('star')} / {clients('history')} cores", "", "", ""),
    ]


def _per_row(m: dict) -> float:
    """Bytes per board row received (the message around the rows included)."""
    rows = m["rows_per_message"] * m["messages_per_client_s"]
    return m["bytes_per_client_s"] / rows if rows else float("nan")


async def measure_builds(redis, names: list[str], changed: int = 50, rounds: int = 30) -> dict:
    """The seed's snapshot and the live board, built whole (read and encode every row: the
    baseline) and from the node's caches after a notice naming ``changed`` symbols."""
    import msgspec

    from app.api.live import Live
    from app.contracts import Notice
    from app.projections import read, read_history
    from app.schemas import Board

    date = FULL_DATE.isoformat()
    live = Live(redis, 100, 1000)
    ref = await read.resolve_session(redis, None)
    rng = random.Random(5)
    encode = msgspec.json.Encoder().encode

    async def timed(build) -> float:
        times = []
        for _ in range(rounds):
            picked = rng.sample(names, min(changed, len(names)))
            live.on_notice(Notice(date, ["stats", "quote"], names={"stats": picked, "quote": picked}))
            started = time.perf_counter()
            await build()
            times.append((time.perf_counter() - started) * 1000)
        return sorted(times)[len(times) // 2]

    async def seed_snapshot() -> None:
        encode(await read.market_snapshot(redis))

    async def seed_board() -> None:
        encode(Board(session=ref, rows=await read_history.read_board(redis, date)))

    await live.market_text()
    await live.board_text(ref, None, None)
    return {
        "changed": changed,
        "snapshot_ms": await timed(live.market_text), "snapshot_seed_ms": await timed(seed_snapshot),
        "board_ms": await timed(lambda: live.board_text(ref, None, None)), "board_seed_ms": await timed(seed_board),
        "snapshot_bytes": len(await live.market_text()),
    }
