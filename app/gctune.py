"""Python's cyclic garbage collector, tuned for this service.

Folding and fan-out allocate millions of short-lived, acyclic objects; at the default
threshold (700) the collector runs so often that it costs a quarter of the fold's
throughput and four times the p99 of a push to 1,000 WebSockets. So young
collections are made rare. Full ones then almost never come by themselves, which is
right for ingest and the projector but not where WebSockets are served: each
connection is a reference cycle (uvicorn's protocol and its transport), so an API
node also collects everything on a timer, or it keeps every client that left.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

FULL_COLLECTION_S = 5.0


def tune() -> None:
    """Collect the young generations far less often."""
    gc.set_threshold(100_000, 50, 1000)


async def collect_forever(departures: Callable[[], int], interval_s: float = FULL_COLLECTION_S) -> None:
    """Every ``interval_s``, a full collection if clients left since the last one.

    Only then: a full collection pauses the node for tens of milliseconds with
    thousands of clients connected, which a steady fan-out should not pay.
    """
    gc.freeze()  # what start-up built lives for good: keep it out of every collection
    seen = departures()
    while True:
        await asyncio.sleep(interval_s)
        now = departures()
        if now != seen:
            seen = now
            gc.collect()
