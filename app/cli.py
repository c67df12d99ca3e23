"""The ``stock-tracker`` command line.

Expected failures (bad input, a missing file, Redis or SSI away, a busy port) end
with one line, ``stock-tracker: <what is wrong>``, and a non-zero exit; only bugs
show a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import os
import sys
import time
from pathlib import Path

import msgspec

from app import cli_types as types
from app import gctune, logs
from app.config import Settings, load_settings
from app.errors import RedisUnavailable, UserError
from app.local_redis import check_port
from app.store import REDIS_AUTH, REDIS_DOWN, auth_failure, auth_refused, open_redis, redis_url_shown, wait_for_redis

log = logging.getLogger("stock_tracker.cli")

PROG = "stock-tracker"


# ---- option types: a bad value is an argparse error (exit 2) naming the option ----


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default; options with nothing to show say it in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Real-time Vietnamese market data: SSI FastConnect frames -> Redis stream -> projections.",
        epilog="One-shot commands wait up to REDIS_WAIT_S seconds (default 30) for an unreachable Redis.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=_Help, **kwargs)

    ing = command(
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
    ing.add_argument("--seed", type=int, default=1, help="simulator seed")
    ing.add_argument(
        "--speed", type=types.speed, default="max",
        help="simulated seconds per real second; 'max' = as fast as possible, 1 = real time",
    )
    ing.add_argument("--frames", type=types.positive_int, default=None, help="stop after N simulated frames (default: no limit)")
    ing.add_argument("--date", type=types.sim_date, default=None, help="first simulated trading date YYYY-MM-DD (default: today)")
    ing.add_argument("--days", type=types.positive_int, default=1, help="simulated trading days")
    ing.add_argument("--activity", type=types.positive_float, default=1.0, help="simulated trading intensity")
    ing.add_argument(
        "--channels", type=types.channels, default=None,
        help="simulated DataTypes, comma list (default: X-QUOTE,X-TRADE,R,MI,F)",
    )
    ing.add_argument("--futures-naming", choices=("legacy", "krx"), default="legacy", help="VN30 futures codes")
    ing.add_argument("--universe", type=types.universe, default="vn30", metavar="vn30|hose|hnx|upcom|all",
                     help="simulated stocks: the VN30 (vn30), one board (hose, hnx, upcom) or the full market (all)")

    proj = command(
        "project",
        help="fold the streams into projection hashes",
        description="Run a projection worker: fold session streams into Redis hashes, exactly once.",
    )
    proj.add_argument("--drain", action="store_true", help="fold until every stream is consumed, then exit")

    snap = command(
        "snapshot",
        help="print the MarketSnapshot JSON",
        description="Print the MarketSnapshot JSON (as /api/market/snapshot serves it).",
    )
    snap.add_argument("--date", type=types.session_date, default=None, help="session YYYY-MM-DD (default: the current session)")

    demo = command(
        "demo",
        help="run everything in one process on a simulated market, with the dashboard",
        description=(
            "A fake SSI FastConnect with a simulated market, our live-feed client, the projector "
            "and the API with its dashboard, in one process; prints the URL. Without REDIS_URL it "
            "runs on an embedded store (a private redis-server when one is on the PATH, else "
            "in-process fakeredis; the log says which). Ctrl-C stops everything."
        ),
    )
    demo.add_argument("--host", default="127.0.0.1", help="API bind address")
    demo.add_argument("--port", type=types.port, default=8000, help="API port")
    demo.add_argument("--speed", type=types.speed, default="1", help="simulated seconds per real second ('max' = flat out)")
    demo.add_argument("--seed", type=int, default=1, help="simulator seed")
    demo.add_argument("--universe", type=types.universe, default="vn30", metavar="vn30|hose|hnx|upcom|all",
                      help="simulated stocks: the VN30 (vn30), one board (hose, hnx, upcom) or the full market (all); "
                           "beyond vn30 the feed client subscribes ALL")

    rec = command(
        "record",
        help="record the live feed to a JSONL file",
        description="Write every Broadcast string the SSI feed sends, one per line, for a later `ingest --file`.",
    )
    rec.add_argument("--out", required=True, metavar="FILE", help="JSONL file to append to")

    fake = command(
        "fake-ssi",
        help="run a fake SSI FastConnect server driven by the simulator",
        description=(
            "Serve SSI FastConnect Data's REST and SignalR endpoints with simulated market data, "
            "for demos and tests without an SSI account (consumer id/secret: demo/demo)."
        ),
    )
    fake.add_argument("--host", default="127.0.0.1", help="bind address")
    fake.add_argument("--port", type=types.port, default=8900, help="port")
    fake.add_argument("--seed", type=int, default=1, help="simulator seed")
    fake.add_argument("--speed", type=types.speed, default="1", help="simulated seconds per real second ('max' = flat out)")
    fake.add_argument("--activity", type=types.positive_float, default=1.0, help="simulated trading intensity")
    fake.add_argument("--date", type=types.sim_date, default=None, help="simulated trading date YYYY-MM-DD (default: today)")
    fake.add_argument(
        "--start-time", type=types.start_time, default=None, metavar="HH:MM[:SS]",
        help="simulated time of day to start from; the morning before it is skipped (default: the start of the day)",
    )
    fake.add_argument("--futures-naming", choices=("legacy", "krx"), default="legacy", help="VN30 futures codes")
    fake.add_argument("--universe", type=types.universe, default="vn30", metavar="vn30|hose|hnx|upcom|all",
                      help="simulated stocks: the VN30 (vn30), one board (hose, hnx, upcom) or the full market (all)")

    srv = command(
        "serve",
        help="serve REST and WebSockets",
        description="Serve the REST API and the /ws/market, /ws/foreign, /ws/index channels (Litestar on uvicorn).",
    )
    srv.add_argument("--host", default="127.0.0.1", help="bind address")
    srv.add_argument("--port", type=types.port, default=8000, help="port")
    srv.add_argument("--workers", type=types.positive_int, default=1, help="worker processes")

    rep = command(
        "replay",
        help="rebuild or verify a session from its stream",
        description="Rebuild one session's projections from its stream, or --verify the live ones.",
    )
    rep.add_argument("--date", type=types.session_date, default=None, help="session YYYY-MM-DD (default: the current session)")
    rep.add_argument("--verify", action="store_true", help="compare with the live projection; exit 1 on any difference")

    arc = sub.add_parser(
        "archive",
        help="write a session's stream to a compressed file",
        description=(
            "Write one session's stream (receive times, frames, the close marker) as gzip'd JSON lines; "
            "`ingest --file` of the file restores the session exactly."
        ),
    )
    arc.add_argument("--date", type=types.session_date, required=True, help="session YYYY-MM-DD")
    arc.add_argument(
        "--out", default=None, metavar="FILE",
        help="file to write (default: stock-tracker-DATE.jsonl.gz in ARCHIVE_DIR, else the current directory)",
    )
    return parser


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def ingest_summary(frames: int, sessions: list[str], seconds: float) -> str:
    """``ingested 12,345 frames into 2 sessions (2026-11-24, 2026-11-25) in 1.23 s``."""
    if len(sessions) > 4:
        listed = f" ({sessions[0]} .. {sessions[-1]})"
    else:
        listed = f" ({', '.join(sessions)})" if sessions else ""
    noun = "session" if len(sessions) == 1 else "sessions"
    return f"ingested {frames:,} frames into {len(sessions)} {noun}{listed} in {seconds:.2f} s"


async def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from app.ingest.run import check_readable_file, ingest_file, ingest_simulated
    from app.ingest.writer import UNAVAILABLE, StreamWriter

    if args.ssi:
        from app.ingest.live import require_credentials, run_live

        require_credentials(settings)
        async with open_redis(settings) as redis:  # run_live waits for Redis as long as it takes
            stream = await run_live(redis, settings, _stop_on_signals())
        log.info("event=ingest_done frames=%d connects=%d", stream.frames, stream.connects)
        return 0
    if args.file:
        check_readable_file(args.file)
    started = time.perf_counter()
    async with open_redis(settings) as redis:
        await wait_for_redis(redis, settings, settings.redis_wait_s)
        writer = StreamWriter(redis, settings.stream_retention_days, archive_dir=settings.archive_dir, give_up_after_s=settings.redis_wait_s)
        try:
            if args.file:
                n = await ingest_file(redis, settings, args.file, writer=writer)
            else:
                n = await ingest_simulated(redis, settings, args, writer=writer)
        except UNAVAILABLE as exc:
            if isinstance(exc, OSError) and exc.filename:
                raise
            if auth_refused(exc):
                raise auth_failure(settings, exc) from None
            raise RedisUnavailable(
                f"cannot reach Redis at {redis_url_shown(settings)} after {settings.redis_wait_s:g} s (REDIS_URL); "
                f"stopped after {writer.appended:,} frames"
            ) from None
    elapsed = time.perf_counter() - started
    log.info("event=ingest_done frames=%d sessions=%d seconds=%.2f", n, len(writer.sessions), elapsed)
    print(f"{PROG}: {ingest_summary(n, writer.sessions, elapsed)}", file=sys.stderr)
    return 0


async def _project(args: argparse.Namespace, settings: Settings) -> int:
    from app.projections import worker

    async with open_redis(settings) as redis:
        if args.drain:
            await wait_for_redis(redis, settings, settings.redis_wait_s)
            n = await worker.drain(redis, settings)
            log.info("event=drain_done entries=%d", n)
            return 0
        await worker.run(redis, settings, _stop_on_signals())
    return 0


async def _snapshot(args: argparse.Namespace, settings: Settings) -> int:
    from app.projections.read import market_snapshot

    async with open_redis(settings) as redis:
        await wait_for_redis(redis, settings, settings.redis_wait_s)
        snapshot = await market_snapshot(redis, args.date)
    sys.stdout.buffer.write(msgspec.json.encode(snapshot) + b"\n")
    return 0


async def _archive(args: argparse.Namespace, settings: Settings) -> int:
    from app.archive import archive_session, default_path

    out = args.out or default_path(settings.archive_dir or ".", args.date)
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise UserError(f"no such directory for {out}")
    started = time.perf_counter()
    async with open_redis(settings) as redis:
        await wait_for_redis(redis, settings, settings.redis_wait_s)
        n = await archive_session(redis, args.date, out)
    print(f"{args.date}: archived {n:,} entries to {out} ({os.path.getsize(out):,} bytes) "
          f"in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from app import replay
    from app.progress import Progress
    from app.projections.read import current_session

    async with open_redis(settings) as redis:
        await wait_for_redis(redis, settings, settings.redis_wait_s)
        session = args.date or await current_session(redis)
        if session is None:
            raise UserError("no session to replay: none has been folded yet (give --date YYYY-MM-DD)")
        total = await replay.check_session(redis, session)
        progress = Progress(total, f"replay {session}")
        started = time.perf_counter()
        if args.verify:
            diff = await replay.verify(redis, session, progress, tape_length=settings.tape_length)
            progress.close()
            for line in diff.lines():
                print(line)
            print(f"{session}: {'DIFFERENT' if diff else 'identical'} ({len(diff.lines())} differences)")
            return 1 if diff else 0
        state = await replay.rebuild(redis, session, progress, tape_length=settings.tape_length)
        progress.close()
        print(
            f"{session}: rebuilt {state.meta.entries} entries in {time.perf_counter() - started:.2f} s "
            f"(frames={state.meta.frames} dead={state.meta.dead} skipped={state.meta.skipped})"
        )
    return 0


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.demo import run_demo

    await run_demo(settings, host=args.host, port=args.port, speed=args.speed or 1000.0, seed=args.seed,
                   universe=args.universe)
    return 0


async def _record(args: argparse.Namespace, settings: Settings) -> int:
    from app.ingest.live import record, require_credentials

    require_credentials(settings)
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"{out} is a directory (--out wants a file to append to)")
    if not out.parent.is_dir():
        raise UserError(f"no such directory: {out.parent} (for --out {out})")
    n = await record(settings, out, _stop_on_signals())
    log.info("event=record_done frames=%d out=%s", n, args.out)
    return 0


async def _fake_ssi(args: argparse.Namespace, settings: Settings) -> int:
    from app.sim.fake import serve_fake

    check_port(args.host, args.port)
    await serve_fake(
        args.host, args.port, seed=args.seed, speed=args.speed, activity=args.activity,
        start=args.date, futures_naming=args.futures_naming, open_at=args.start_time, universe=args.universe,
    )
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.api.http_protocol import uvicorn_options

    check_port(args.host, args.port)
    uvicorn.run(
        "app.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ws_max_size=max(settings.ws_max_message_bytes * 4, 65536),
        **uvicorn_options(settings),
    )
    return 0


COMMANDS = {"demo": _demo, "fake-ssi": _fake_ssi, "record": _record, "ingest": _ingest, "project": _project, "snapshot": _snapshot, "replay": _replay, "archive": _archive}


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command; expected failures become one line on stderr and the exit code."""
    args = build_parser().parse_args(argv)
    gctune.tune()
    try:
        settings = load_settings()
        logs.setup(settings.log_format, settings.log_level, settings=settings)
    except SystemExit as exc:  # load_settings names the bad variable
        return _fail(str(exc.code), 2)
    except ValueError as exc:  # logging refuses an unknown level
        return _fail(f"invalid LOG_LEVEL: {exc}", 2)
    try:
        if args.command == "serve":  # uvicorn runs its own event loop (and processes)
            return _serve(args, settings)
        return asyncio.run(COMMANDS[args.command](args, settings))
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        return _fail(exc.message, exc.code)
    except REDIS_AUTH as exc:  # before REDIS_DOWN, which holds it: not an outage
        return _fail(auth_failure(settings, exc).message)
    except REDIS_DOWN as exc:  # a cluster between masters too
        return _fail(f"lost Redis at {redis_url_shown(settings)} (REDIS_URL): {exc}")
    except OSError as exc:
        if exc.filename is None:
            raise  # not a file we were given: a bug, keep the traceback
        return _fail(f"{exc.filename}: {exc.strerror}")
    except Exception as exc:
        # A FeedError can only come from a loaded signalr module; importing it here
        # would slow every other command's start-up.
        signalr = sys.modules.get("app.ingest.signalr")
        if signalr is not None and isinstance(exc, signalr.FeedError):  # its message is safe to show
            return _fail(f"SSI FastConnect at {settings.ssi_url} (SSI_URL): {exc}")
        raise


if __name__ == "__main__":
    sys.exit(main())
