"""A node's entity cache: a reset that overtakes a read never leaves its caller empty-handed."""

from __future__ import annotations

import asyncio

import pytest

from app.api.entities import EntityCache

pytestmark = pytest.mark.anyio

DAY = "2026-12-04"
ROWS = {"ACB": {"price": 22950}, "FPT": {"price": 118100}}


def reader_that_resets_once(cache_box: list[EntityCache], reads: list[tuple]):
    """A reader whose first read is overtaken by a reset, as when the node follows a new
    session (or pub/sub comes back) while a snapshot is being read."""
    async def read(redis, date, names):
        reads.append((date, names))
        await asyncio.sleep(0)
        if len(reads) == 1:
            cache_box[0].reset(None)
        return {n: v for n, v in ROWS.items() if names is None or n in names}
    return read


@pytest.mark.parametrize("names", [None, ["ACB", "FPT"]], ids=["every-entity", "named"])
async def test_a_read_overtaken_by_a_reset_is_read_again(names):
    box: list[EntityCache] = []
    reads: list[tuple] = []
    cache = EntityCache(("stats",), reader_that_resets_once(box, reads))
    box.append(cache)
    await cache.refresh(None, DAY, iter(names) if names else None)  # a one-shot iterable too
    # The overtaken read is thrown away and done again: the caller renders real rows.
    assert len(reads) == 2 and cache.date == DAY
    assert cache.render(["ACB", "FPT"]) == '{"ACB":{"price":22950},"FPT":{"price":118100}}'


async def test_a_read_not_overtaken_is_read_once():
    reads: list[tuple] = []

    async def read(redis, date, names):
        reads.append((date, names))
        return dict(ROWS)

    cache = EntityCache(("stats",), read)
    await cache.refresh(None, DAY)
    await cache.refresh(None, DAY)  # complete, nothing dirty: no second read
    assert reads == [(DAY, None)] and cache.names() == ["ACB", "FPT"]
