"""Unexpected errors: logged once with their traceback and a request id, answered 500.

Litestar runs with ``logging_config=None`` (our one-line logs), so without this an
unhandled exception left no trace at all. The id in the 500's body is the one in the log
line, so a user's report finds the traceback.
"""

from __future__ import annotations

import logging
import secrets

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import Scope

from app.store import REDIS_DOWN

log = logging.getLogger("stock_tracker.api")

_ID = "stock_tracker_request_id"


async def log_unexpected(exc: Exception, scope: Scope) -> None:
    """``after_exception`` hook: every exception that is not an HTTP answer is logged."""
    if isinstance(exc, (HTTPException, *REDIS_DOWN)):
        return  # an answer, or an outage (logged once by its own handler, answered 503)
    request_id = secrets.token_hex(8)
    scope.setdefault("state", {})[_ID] = request_id
    log.error(
        "event=unhandled_error request_id=%s type=%s path=%s error=%s",
        request_id, scope.get("type"), scope.get("path"), type(exc).__name__, exc_info=exc,
    )


def internal_error(request: Request, exc: Exception) -> Response:
    """The 500 answer: a JSON body with the request id of the logged traceback."""
    request_id = request.scope.get("state", {}).get(_ID, "")
    return Response(
        {"status_code": 500, "detail": "Internal Server Error", "request_id": request_id},
        status_code=500, headers={"X-Request-ID": request_id},
    )
