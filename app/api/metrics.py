"""Prometheus text exposition: pipeline counters from Redis, fan-out counters of this node."""

from __future__ import annotations

from redis.asyncio import Redis

from app import keys as K
from app.projections.read import newest_session
from app.projections.stream import oldest_position, stream_position


async def projector_lag_ms(redis: Redis, session: str | None = None) -> int | None:
    """Time between the newest frame and the newest folded one (None: no session)."""
    session = session or await newest_session(redis)
    if session is None:
        return None
    last, checkpoint = await stream_position(redis, session)
    if last is None:
        return 0
    if checkpoint is None:
        # Nothing folded yet: lag since the oldest frame.
        first = await oldest_position(redis, session)
        return max(0, last.ms - first.ms) + 1 if first else 0
    return max(0, last.ms - checkpoint.ms)


async def render(redis: Redis, hub) -> str:
    """The metrics page."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    session = await newest_session(redis)
    if session is not None:
        keys = K.SessionKeys(session)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xlen(keys.frames)
            pipe.hmget(keys.meta, "entries", "dead")
            ingested, (entries, dead) = await pipe.execute()
        label = f'{{session="{session}"}}'
        metric("stock_tracker_frames_ingested", "gauge", "Stream entries of the current session", [(label, ingested)])
        metric("stock_tracker_frames_folded", "gauge", "Stream entries folded into projections", [(label, int(entries or 0))])
        metric("stock_tracker_frames_dead_lettered", "gauge", "Frames refused to the dead-letter stream", [(label, int(dead or 0))])
        lag = await projector_lag_ms(redis, session)
        metric("stock_tracker_projector_lag_ms", "gauge", "Newest frame minus newest folded frame (ms)", [(label, lag or 0)])
    metric(
        # What holds a per-address slot, not only who is subscribed: a dropped client
        # counts until its connection is gone.
        "stock_tracker_ws_clients", "gauge", "WebSocket connections holding a slot on this node",
        [(f'{{channel="{c}"}}', n) for c, n in hub.metrics.connections.items()],
    )
    metric(
        "stock_tracker_ws_pushes_total", "counter", "State pushes by this node",
        [(f'{{channel="{c}"}}', n) for c, n in hub.metrics.pushes.items()]
        + ([('{channel="ws"}', hub.live.pushes)] if hub.live is not None else []),
    )
    metric(
        "stock_tracker_ws_drops_total", "counter", "Clients dropped for not keeping up",
        [(f'{{channel="{c}"}}', n) for c, n in hub.metrics.drops.items()],
    )
    metric("stock_tracker_pubsub_reconnects_total", "counter", "Pub/sub reconnections", [("", hub.metrics.pubsub_reconnects)])
    metric("stock_tracker_pubsub_up", "gauge", "Pub/sub connected", [("", int(hub.pubsub_up))])
    if hub.feed_connected is not None:
        metric("stock_tracker_feed_connected", "gauge", "Feed connection state", [("", int(hub.feed_connected))])
    return "\n".join(lines) + "\n"
