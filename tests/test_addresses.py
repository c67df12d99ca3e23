"""Client addresses for per-address limits: the socket peer unless it is a trusted proxy."""

import pytest

from app.api.addresses import UNKNOWN, TrustedProxies


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored():
    # Loopback is not trusted by default (uvicorn's default trusts it).
    proxies = TrustedProxies.parse("")
    assert proxies.client("127.0.0.1", "203.0.113.9") == "127.0.0.1"
    assert proxies.client("198.51.100.7", "203.0.113.9") == "198.51.100.7"


def test_a_trusted_proxy_gives_the_last_hop_not_what_the_client_wrote():
    proxies = TrustedProxies.parse("10.0.0.0/8, 127.0.0.1")
    # The client wrote "1.2.3.4"; the proxy appended the address it saw.
    assert proxies.client("10.1.2.3", "1.2.3.4, 203.0.113.9") == "203.0.113.9"
    assert proxies.client("127.0.0.1", "2001:db8::1") == "2001:db8::1"
    # Behind the proxy, two clients are two buckets.
    assert proxies.client("10.1.2.3", "203.0.113.10") != proxies.client("10.1.2.3", "203.0.113.9")


def test_a_trusted_proxy_without_a_usable_header_is_the_client():
    proxies = TrustedProxies.parse("*")
    assert proxies.client("10.1.2.3", None) == "10.1.2.3"
    assert proxies.client("10.1.2.3", "not-an-ip") == "10.1.2.3"
    assert proxies.client(None, "203.0.113.9") == UNKNOWN


def test_a_bad_entry_is_named():
    with pytest.raises(ValueError, match="FORWARDED_ALLOW_IPS"):
        TrustedProxies.parse("10.0.0.0/8, nonsense")
