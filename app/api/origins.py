"""Which pages may open a WebSocket to this node: ``WS_ALLOWED_ORIGINS``.

A browser sends the page's origin (``scheme://host[:port]``) with every WebSocket
handshake, and, unlike a fetch, a WebSocket is not held to the same-origin rule: any page
a user opens could otherwise connect with the user's cookies or network position. With
``WS_ALLOWED_ORIGINS`` set (comma-separated origins, e.g.
``https://board.example.com,http://localhost:8000``) a handshake whose ``Origin`` is not
listed is closed with 1008 before anything is sent; the node's own dashboard must be
listed too when it is used. A handshake without ``Origin`` (a service, a script: not a
browser) is let in, and so is every origin when the setting is empty (the default).

Refused after the upgrade, not with an HTTP 403: a browser reports a refused handshake to
the page only as close code 1006 with no reason, where a close frame shows the page 1008
and the reason, as for a bad credential.
"""

from __future__ import annotations

REASON = "origin not allowed"


def _normal(origin: str) -> str:
    # Scheme and host are case-insensitive; a listed origin may end in "/".
    return origin.strip().rstrip("/").lower()


class AllowedOrigins:
    """The origins a WebSocket may come from (none listed: any)."""

    def __init__(self, spec: str = "") -> None:
        self.origins = frozenset(_normal(item) for item in spec.split(",") if item.strip())

    def allows(self, scope: dict) -> bool:
        """True unless the handshake names an origin (any of its ``Origin`` headers)
        that is not listed."""
        if not self.origins:
            return True
        return all(
            _normal(value.decode("latin-1")) in self.origins
            for name, value in scope.get("headers", ())
            if name.lower() == b"origin"
        )

    def __repr__(self) -> str:
        return f"AllowedOrigins({sorted(self.origins)})"
