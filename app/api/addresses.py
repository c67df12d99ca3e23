"""The client address a per-address limit counts: the socket peer, unless it is a proxy we trust.

A peer listed in ``FORWARDED_ALLOW_IPS`` (addresses or networks, comma-separated; ``*``
for any) is a proxy: the client is then the last hop of ``X-Forwarded-For``, the address
that proxy saw. Anything earlier in that header was written by the client and is not
believed. From any other peer the header is ignored, so a client cannot pick its bucket.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

UNKNOWN = "unknown"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose ``X-Forwarded-For`` is believed."""

    def __init__(self, spec: str = "") -> None:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.any = "*" in items
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in items if item != "*"
        )

    @classmethod
    def parse(cls, spec: str) -> "TrustedProxies":
        """From ``FORWARDED_ALLOW_IPS``; a bad entry raises ValueError naming it."""
        try:
            return cls(spec)
        except ValueError as exc:
            raise ValueError(f"FORWARDED_ALLOW_IPS: {exc}") from None

    def trusts(self, peer: str) -> bool:
        if self.any:
            return True
        if not self.networks:
            return False
        address = _address(peer)
        return address is not None and any(address in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address from the socket peer and its ``X-Forwarded-For`` value."""
        if not peer:
            return UNKNOWN
        if not forwarded_for or not self.trusts(peer):
            return peer
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        return last if _address(last) is not None else peer


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(connection, proxies: TrustedProxies) -> str:
    """The address of a Litestar ``Request`` or ``WebSocket`` (anything with ``client``
    and ``headers``) as the per-address limits count it."""
    peer = connection.client.host if connection.client else None
    return proxies.client(peer, connection.headers.get("x-forwarded-for"))
