"""The ``stock-tracker`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from datetime import date

import msgspec

from app import gctune, logs
from app.config import Settings, load_settings
from app.store import open_redis

log = logging.getLogger("stock_tracker.cli")


def _speed(text: str) -> float:
    if text in ("max", "0"):
        return 0.0
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0, or 'max'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stock-tracker",
        description="Real-time Vietnamese market data: SSI FastConnect frames -> Redis stream -> projections.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ing = sub.add_parser(
        "ingest",
        help="append feed frames to the session streams",
        description="Append every frame, unchanged, to the Redis stream of its trading day.",
    )
    src = ing.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", metavar="FRAMES.jsonl", help="JSONL of Broadcast strings, one per line; exit when done")
    src.add_argument("--simulate", action="store_true", help="generate a deterministic simulated market")
    src.add_argument(
        "--ssi", action="store_true",
        help="the live SSI FastConnect feed (SSI_CONSUMER_ID / SSI_CONSUMER_SECRET; SSI_URL, SSI_STREAM_URL)",
    )
    ing.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    ing.add_argument(
        "--speed", type=_speed, default=0.0,
        help="simulated seconds per real second; 'max' (default) = as fast as possible, 1 = real time",
    )
    ing.add_argument("--frames", type=int, default=None, help="stop after N simulated frames")
    ing.add_argument("--date", type=date.fromisoformat, default=None, help="first simulated trading date (default today)")
    ing.add_argument("--days", type=int, default=1, help="simulated trading days (default 1)")
    ing.add_argument("--activity", type=float, default=1.0, help="simulated trading intensity (default 1.0)")
    ing.add_argument("--channels", default=None, help="simulated DataTypes, comma list (default X-QUOTE,X-TRADE,R,MI,F)")
    ing.add_argument("--futures-naming", choices=("legacy", "krx"), default="legacy", help="VN30 futures codes")

    proj = sub.add_parser(
        "project",
        help="fold the streams into projection hashes",
        description="Run a projection worker: fold session streams into Redis hashes, exactly once.",
    )
    proj.add_argument("--drain", action="store_true", help="fold until every stream is consumed, then exit")

    snap = sub.add_parser(
        "snapshot",
        help="print the MarketSnapshot JSON",
        description="Print the MarketSnapshot JSON (as /api/market/snapshot serves it).",
    )
    snap.add_argument("--date", default=None, help="session YYYY-MM-DD (default: the current session)")

    demo = sub.add_parser(
        "demo",
        help="run everything in one process on a simulated market, with the dashboard",
        description=(
            "A fake SSI FastConnect with a simulated market, our live-feed client, the projector "
            "and the API with its dashboard, in one process; prints the URL. Without REDIS_URL it "
            "runs on an embedded store (a private redis-server when one is on the PATH, else "
            "in-process fakeredis; the log says which). Ctrl-C stops everything."
        ),
    )
    demo.add_argument("--host", default="127.0.0.1", help="API bind address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    demo.add_argument("--speed", type=_speed, default=1.0, help="simulated seconds per real second (default 1)")
    demo.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")

    rec = sub.add_parser(
        "record",
        help="record the live feed to a JSONL file",
        description="Write every Broadcast string the SSI feed sends, one per line, for a later `ingest --file`.",
    )
    rec.add_argument("--out", required=True, metavar="FILE", help="JSONL file to append to")

    fake = sub.add_parser(
        "fake-ssi",
        help="run a fake SSI FastConnect server driven by the simulator",
        description=(
            "Serve SSI FastConnect Data's REST and SignalR endpoints with simulated market data, "
            "for demos and tests without an SSI account (consumer id/secret: demo/demo)."
        ),
    )
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8900)
    fake.add_argument("--seed", type=int, default=1)
    fake.add_argument("--speed", type=_speed, default=1.0, help="simulated seconds per real second (default 1)")
    fake.add_argument("--activity", type=float, default=1.0)
    fake.add_argument("--date", type=date.fromisoformat, default=None, help="simulated trading date (default today)")
    fake.add_argument("--futures-naming", choices=("legacy", "krx"), default="legacy")

    srv = sub.add_parser(
        "serve",
        help="serve REST and WebSockets",
        description="Serve the REST API and the /ws/market, /ws/foreign, /ws/index channels (Litestar on uvicorn).",
    )
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    rep = sub.add_parser(
        "replay",
        help="rebuild or verify a session from its stream",
        description="Rebuild one session's projections from its stream, or --verify the live ones.",
    )
    rep.add_argument("--date", default=None, help="session YYYY-MM-DD (default: the current session)")
    rep.add_argument("--verify", action="store_true", help="compare with the live projection; exit 1 on any difference")
    return parser


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from app.ingest.run import ingest_file, ingest_simulated

    async with open_redis(settings) as redis:
        if args.ssi:
            from app.ingest.live import run_live

            stream = await run_live(redis, settings, _stop_on_signals())
            log.info("event=ingest_done frames=%d connects=%d", stream.frames, stream.connects)
            return 0
        if args.file:
            n = await ingest_file(redis, settings, args.file)
        else:
            n = await ingest_simulated(redis, settings, args)
    log.info("event=ingest_done frames=%d", n)
    return 0


async def _project(args: argparse.Namespace, settings: Settings) -> int:
    from app.projections import worker

    async with open_redis(settings) as redis:
        if args.drain:
            n = await worker.drain(redis, settings)
            log.info("event=drain_done entries=%d", n)
            return 0
        await worker.run(redis, settings, _stop_on_signals())
    return 0


async def _snapshot(args: argparse.Namespace, settings: Settings) -> int:
    from app.projections.read import market_snapshot

    async with open_redis(settings) as redis:
        snapshot = await market_snapshot(redis, args.date)
    sys.stdout.buffer.write(msgspec.json.encode(snapshot) + b"\n")
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from app import replay
    from app.progress import Progress
    from app.projections.read import current_session

    async with open_redis(settings) as redis:
        session = args.date or await current_session(redis)
        if session is None:
            print("no session to replay", file=sys.stderr)
            return 2
        total = await redis.xlen(f"st:{{{session}}}:frames")
        progress = Progress(total, f"replay {session}")
        started = time.perf_counter()
        if args.verify:
            diff = await replay.verify(redis, session, progress)
            progress.close()
            for line in diff.lines():
                print(line)
            print(f"{session}: {'DIFFERENT' if diff else 'identical'} ({len(diff.lines())} differences)")
            return 1 if diff else 0
        state = await replay.rebuild(redis, session, progress)
        progress.close()
        print(
            f"{session}: rebuilt {state.meta.entries} entries in {time.perf_counter() - started:.2f} s "
            f"(frames={state.meta.frames} dead={state.meta.dead} skipped={state.meta.skipped})"
        )
    return 0


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.demo import run_demo

    await run_demo(settings, host=args.host, port=args.port, speed=args.speed or 1000.0, seed=args.seed)
    return 0


async def _record(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from app.ingest.live import record

    n = await record(settings, Path(args.out), _stop_on_signals())
    log.info("event=record_done frames=%d out=%s", n, args.out)
    return 0


async def _fake_ssi(args: argparse.Namespace, settings: Settings) -> int:
    from app.ingest.fake_ssi import serve_fake

    await serve_fake(
        args.host, args.port, seed=args.seed, speed=args.speed, activity=args.activity,
        start=args.date, futures_naming=args.futures_naming,
    )
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    uvicorn.run(
        "app.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ws_max_size=max(settings.ws_max_message_bytes * 4, 65536),
        # Compression would be per client: it undoes encoding each push once per node.
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
    )
    return 0


COMMANDS = {"demo": _demo, "fake-ssi": _fake_ssi, "record": _record, "ingest": _ingest, "project": _project, "snapshot": _snapshot, "replay": _replay}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gctune.tune()
    settings = load_settings()
    logs.setup(settings.log_format, settings.log_level)
    try:
        if args.command == "serve":  # uvicorn runs its own event loop (and processes)
            return _serve(args, settings)
        return asyncio.run(COMMANDS[args.command](args, settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
