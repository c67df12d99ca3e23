"""The live feed: SSI FastConnect -> the session streams (or a JSONL recording).

The stream client hands each Broadcast string to an asyncio queue; one writer drains
whatever is queued into a single append (one frame when idle, hundreds in a burst).
The feed's connection state is kept in Redis and published, for the API's status
messages; the VN30 constituents are fetched at start-up and kept from the last good
fetch when SSI cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import httpx
import msgspec
from redis.asyncio import Redis

from app import keys as K
from app.clock import now_vn
from app.config import Settings
from app.contracts import FeedStatus
from app.errors import UserError
from app.futures import front_and_next
from app.ingest.signalr import (
    AuthError,
    FastConnectStream,
    FeedConfig,
    FeedError,
    TokenSource,
    default_channels,
    fetch_index_components,
)
from app.ingest.writer import StreamWriter, close_at_three, close_missed, drain_queue, now_ms
from app.projections.hashes import to_hash
from app.store import wait_for_redis

log = logging.getLogger("stock_tracker.live")

INDICES = ("VNINDEX", "VN30", "HNXIndex")
# The whole market: every stock, future and index (SSI_CHANNELS="X-QUOTE:ALL;X-TRADE:ALL;R:ALL;MI:ALL").
ALL_MARKET_CHANNELS = ("X-QUOTE:ALL", "X-TRADE:ALL", "R:ALL", "MI:ALL")
QUEUE_BOUND = 200_000  # frames; when full the socket is read more slowly, nothing is dropped


def feed_config(settings: Settings, channels: tuple[str, ...] = ()) -> FeedConfig:
    return FeedConfig(
        url=settings.ssi_url,
        stream_url=settings.ssi_stream_url,
        consumer_id=settings.ssi_consumer_id,
        consumer_secret=settings.ssi_consumer_secret,
        channels=channels,
        switch_mode=settings.ssi_switch_mode,
    )


def require_credentials(settings: Settings) -> None:
    """Fail at once, in one line, when the SSI credentials are not configured."""
    missing = [
        var for var, value in (("SSI_CONSUMER_ID", settings.ssi_consumer_id), ("SSI_CONSUMER_SECRET", settings.ssi_consumer_secret))
        if not value
    ]
    if missing:
        raise UserError(
            f"no SSI FastConnect credentials: set {' and '.join(missing)} "
            "(or try `stock-tracker demo`, or `stock-tracker fake-ssi` with SSI_URL / SSI_STREAM_URL)"
        )


async def authenticate(settings: Settings, tokens: TokenSource) -> bool:
    """Take a first AccessToken: refused credentials end the command (retrying will not
    fix them); SSI unreachable is left to the usual retries. True when a token was issued."""
    try:
        await tokens.get()
    except AuthError as exc:
        if "(HTTP 5" in str(exc):  # SSI itself failing, not a verdict on the credentials
            log.warning("event=feed_unreachable detail=%s", exc)
            return False
        raise UserError(f"SSI refused the credentials SSI_CONSUMER_ID / SSI_CONSUMER_SECRET at {settings.ssi_url}: {exc}") from None
    except FeedError as exc:
        log.warning("event=feed_unreachable detail=%s", exc)
        return False
    return True


async def vn30_components(redis: Redis, config: FeedConfig, tokens: TokenSource) -> list[str]:
    """Fetch the constituents and cache them; on failure, the last good list."""
    try:
        symbols = await fetch_index_components(config, tokens, "VN30")
    except Exception as exc:  # any failure: fall back to the cache below
        cached = await redis.hget(K.VN30_COMPONENTS, "symbols")
        log.warning("event=vn30_fetch_failed error=%s kept_cached=%s", type(exc).__name__, bool(cached))
        if not cached:
            raise FeedError("no VN30 constituents: the fetch failed and none are cached") from None
        return [s for s in cached.decode().split(",") if s]
    await redis.hset(
        K.VN30_COMPONENTS, mapping={"symbols": ",".join(symbols), "updated_at": now_vn().isoformat(timespec="seconds")}
    )
    log.info("event=vn30_fetched symbols=%d", len(symbols))
    return symbols


async def channels_for(settings: Settings, symbols: list[str], today: datetime | None = None) -> tuple[str, ...]:
    """SSI_CHANNELS when set (';'-separated), else the VN30, its futures and indices."""
    if settings.ssi_channels:
        return tuple(c.strip() for c in settings.ssi_channels.split(";") if c.strip())
    futures = front_and_next((today or now_vn()).date(), settings.futures_naming)
    return default_channels(symbols, futures, INDICES)


def status_publisher(redis: Redis, gaps: Callable[[], int] | None = None):
    """Keep ``st:feed`` and tell the API nodes when the feed connects or drops.

    ``gaps`` gives the feed's gap count so far (connections lost with frames possibly
    missed), kept in the hash for operators.
    """

    async def publish(connected: bool) -> None:
        status = FeedStatus(connected=connected, since=now_vn().isoformat(), gaps=gaps() if gaps else None)
        # Two calls: a cluster pipeline refuses PUBLISH (it goes to every node).
        await redis.hset(K.FEED_STATUS, mapping=to_hash(status))
        await redis.publish(K.FEED_STATUS_CHANNEL, msgspec.json.encode(FeedStatus(connected=connected)))
        log.info("event=feed_status connected=%s", connected)

    return publish


async def run_live(
    redis: Redis, settings: Settings, stop: asyncio.Event,
    clock: Callable[[], datetime] = now_vn, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> FastConnectStream:
    """Stream SSI into the session streams until ``stop``; 15:00 close markers included.

    ``clock`` and ``sleep`` tell the market's time (the demo's simulated one): the close
    marker and the futures contracts subscribed follow it.
    """
    require_credentials(settings)
    bootstrap = feed_config(settings)
    stream = FastConnectStream(bootstrap, on_frame=_noop)
    try:
        await authenticate(settings, stream.tokens)
        await wait_for_redis(redis, settings, None)  # after SSI: refused credentials must not wait for Redis
        symbols = await vn30_components(redis, bootstrap, stream.tokens)
    except BaseException:
        await stream.http.aclose()
        raise
    config = feed_config(settings, await channels_for(settings, symbols, clock()))
    writer = StreamWriter(redis, settings.stream_retention_days, archive_dir=settings.archive_dir)
    queue: asyncio.Queue = asyncio.Queue(QUEUE_BOUND)
    await close_missed(writer, clock())

    async def on_frame(frame: str) -> None:
        await queue.put((frame, now_ms()))

    stream = FastConnectStream(config, on_frame, http=stream.http, tokens=stream.tokens)
    stream.on_status = status_publisher(redis, lambda: stream.gaps)
    tasks = [
        asyncio.create_task(drain_queue(queue, writer, settings.ingest_max_batch)),
        asyncio.create_task(close_at_three(writer, clock, sleep)),
    ]
    try:
        await stream.run(stop)
        await asyncio.wait_for(queue.join(), timeout=30)  # what was received is appended
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stream.http.aclose()
    return stream


async def record(settings: Settings, out: Path, stop: asyncio.Event, symbols: list[str] | None = None) -> int:
    """Write what the feed sends, one Broadcast string per line (for ``ingest --file``)."""
    require_credentials(settings)
    bootstrap = feed_config(settings)
    probe = FastConnectStream(bootstrap, on_frame=_noop)
    if symbols is None:
        try:
            await authenticate(settings, probe.tokens)
            symbols = await fetch_index_components(bootstrap, probe.tokens, "VN30")
        except (FeedError, httpx.HTTPError) as exc:
            # Nothing cached to fall back on here: recording needs the constituents now.
            detail = str(exc) if isinstance(exc, FeedError) else type(exc).__name__
            raise UserError(f"cannot fetch the VN30 constituents from {settings.ssi_url} (SSI_URL): {detail}") from None
        finally:
            if symbols is None:
                await probe.http.aclose()
    config = feed_config(settings, await channels_for(settings, symbols))
    written = 0
    with open(out, "a", encoding="utf-8") as fh:
        last_flush = time.monotonic()

        async def on_frame(frame: str) -> None:
            nonlocal written, last_flush
            # One frame per line: a raw newline can only sit between JSON tokens,
            # where a space means the same.
            fh.write(frame.replace("\n", " ") if "\n" in frame else frame)
            fh.write("\n")
            written += 1
            if time.monotonic() - last_flush > 1.0:
                fh.flush()
                last_flush = time.monotonic()

        stream = FastConnectStream(config, on_frame, http=probe.http, tokens=probe.tokens)
        try:
            await stream.run(stop)
        finally:
            fh.flush()
            await stream.http.aclose()
    return written


async def _noop(frame: str) -> None:
    return None
