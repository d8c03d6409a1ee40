"""Which address counts for failed sign-ins behind a reverse proxy (``--trusted-proxies``)."""

from __future__ import annotations

from cheeseboard.http.client_address import TrustedProxies

PROXIES = TrustedProxies(["127.0.0.1", "10.8.0.0/16"])


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    """A client cannot pick its own address by sending the header itself."""
    assert PROXIES.client("203.0.113.9", ["198.51.100.7"]) == "203.0.113.9"
    assert TrustedProxies([]).client("127.0.0.1", ["198.51.100.7"]) == "127.0.0.1"


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    """Entries left of what our proxies appended were written by the client: not believed."""
    assert PROXIES.client("127.0.0.1", ["198.51.100.7"]) == "198.51.100.7"
    spoofed = ["198.51.100.7, 203.0.113.9"]  # the client sent "198.51.100.7" itself
    assert PROXIES.client("127.0.0.1", spoofed) == "203.0.113.9"
    chained = ["203.0.113.9", "10.8.3.4"]  # two headers; the inner proxy is trusted too
    assert PROXIES.client("127.0.0.1", chained) == "203.0.113.9"
    assert PROXIES.client("127.0.0.1", ["10.8.3.4"]) == "10.8.3.4"  # only proxies: the first


def test_a_missing_or_garbled_header_counts_the_proxy() -> None:
    """No made-up names become counting keys; the proxy's own address is used instead."""
    assert PROXIES.client("127.0.0.1", []) == "127.0.0.1"
    assert PROXIES.client("127.0.0.1", ["not-an-address"]) == "127.0.0.1"
    assert PROXIES.client("127.0.0.1", [" 2001:db8::1 "]) == "2001:db8::1"
