"""``GET /api/feed``: the feed side's status, and whether the market shown is simulated.

Both live in the ``st:feed`` hash: the live feed keeps ``connected``/``since``/``gaps``
there, ``stock-tracker demo`` adds the :class:`Simulation` fields, so the dashboard can
say the market is simulated and which day it plays.
"""

from __future__ import annotations

import msgspec
from litestar import get

from app import keys as K
from app.projections.hashes import from_hash
from app.api.deps import RedisDep
from app.api.openapi_errors import BEARER, errors

CATCH_UP = "catch_up"  # the day's start is being played flat out, up to the simulated now
LIVE = "live"  # frames now come through the fake FastConnect, paced


class Simulation(msgspec.Struct, kw_only=True):
    """What the demo adds to ``st:feed`` (absent: a real feed)."""

    simulated: bool = True
    sim_date: str  # YYYY-MM-DD, the simulated trading day
    sim_from: str  # HH:MM:SS, where the paced (live) part starts
    speed: float  # simulated seconds per real second
    phase: str = CATCH_UP


SIMULATION_FIELDS = tuple(Simulation.__struct_fields__)


class FeedView(msgspec.Struct, kw_only=True):
    """The route's answer; every field null when nothing is kept."""

    connected: bool | None = None
    since: str | None = None
    gaps: int | None = None
    simulated: bool = False
    sim_date: str | None = None
    sim_from: str | None = None
    speed: float | None = None
    phase: str | None = None


@get("/api/feed", tags=["ops"], summary="Feed status, and whether the market shown is simulated (demo)",
     responses=errors(), security=BEARER)
async def feed_status(redis: RedisDep) -> FeedView:
    raw = await redis.hgetall(K.FEED_STATUS)
    try:
        return from_hash(raw, FeedView) if raw else FeedView()
    except msgspec.ValidationError:
        # A hand-edited or foreign hash must not break the page that asks.
        return FeedView()
