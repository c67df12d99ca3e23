"""Per-address REST rate limit: ``limits``' fixed window, keyed by our client address.

``API_RATE_LIMIT`` requests per second per client address (app.api.addresses: the socket
peer, or the last hop a trusted proxy saw), per node; 0 turns it off. Over it: 429 with
``Retry-After`` (whole seconds until the window resets). Handlers marked ``NOT_LIMITED``
(the probes, the page and its files) are not counted.

Litestar's own rate-limit middleware keeps every request's timestamp of the window per
address and JSON-encodes that list into its store under one global lock on each request:
it cut the REST rate of a node to 0.43x. ``limits`` counts in memory in about 3 us.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from app.api.addresses import TrustedProxies
from app.api.auth import NOT_LIMITED


class RateLimit(ASGIMiddleware):
    """Refuses (429) a client address's requests beyond ``per_second`` in a second.

    One instance serves every request, so its counters are the node's (as intended)."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = NOT_LIMITED

    def __init__(self, per_second: int, proxies: TrustedProxies) -> None:
        self.item = RateLimitItemPerSecond(per_second)
        self.limiter = FixedWindowRateLimiter(MemoryStorage())
        self.proxies = proxies

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        client = scope.get("client")
        forwarded = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"), None)
        address = self.proxies.client(client[0] if client else None, forwarded)
        if not self.limiter.hit(self.item, address):
            reset = self.limiter.get_window_stats(self.item, address).reset_time
            raise TooManyRequestsException(
                detail="too many requests from this address, retry shortly",
                headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))},
            )
        await next_app(scope, receive, send)


def rate_limit(per_second: int, proxies: TrustedProxies) -> RateLimit | None:
    """The middleware, or None when the limit is off (0)."""
    if per_second <= 0:
        return None
    return RateLimit(per_second, proxies)
