"""Work sent ahead: a task whose result (or error) its owner awaits later."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def ahead(work: Awaitable[T]) -> asyncio.Future[T]:
    """Start ``work`` now; its owner awaits it later and gets its error there.

    An owner dropped before that (a worker that lost its lease, a writer after the first
    error) must not have asyncio log "exception was never retrieved" for it as well.
    """
    future = asyncio.ensure_future(work)
    future.add_done_callback(_retrieve)
    return future


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
