"""Per-address REST rate limit: Litestar's rate-limit middleware, keyed by our client address.

``API_RATE_LIMIT`` requests per second per client address (app.api.addresses: the socket
peer, or the last hop a trusted proxy saw), per node; 0 turns it off. Over it: 429 with
``Retry-After`` (seconds until the window resets) besides the draft ``RateLimit-*`` headers.
Health probes and static files are not counted: a load balancer or a page load must not
use up a client's budget.
"""

from __future__ import annotations

from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware

from app.api.addresses import TrustedProxies, client_address
from app.api.auth import NOT_LIMITED


class _Middleware(RateLimitMiddleware):
    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except TooManyRequestsException as exc:
            reset = exc.headers.get(self.config.rate_limit_reset_header_key) if exc.headers else None
            retry = max(1, int(reset)) if reset and reset.lstrip("-").isdigit() else 1
            exc.headers = {**(exc.headers or {}), "Retry-After": str(retry)}
            exc.detail = "too many requests from this address, retry shortly"
            raise


def rate_limit(per_second: int, proxies: TrustedProxies) -> RateLimitConfig | None:
    """The middleware config, or None when the limit is off (0)."""
    if per_second <= 0:
        return None
    return RateLimitConfig(
        rate_limit=("second", per_second),
        identifier_for_request=lambda request: client_address(request, proxies),
        exclude_opt_key=NOT_LIMITED,
        middleware_class=_Middleware,
    )

