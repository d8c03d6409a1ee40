"""The outbound address policy (mirror/outbound.py, mirror/resolver.py): which URLs and
resolved addresses pass."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from cheeseboard.mirror.outbound import (
    CURRENT_HOP,
    OutboundPolicy,
    OutboundRefused,
    check_url,
    is_public,
)
from cheeseboard.mirror.resolver import GuardedResolver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "not-an-address",
    ],
)
def test_non_public_addresses(address: str) -> None:
    """Loopback, private, link-local, shared, unspecified, multicast, reserved: not public."""
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "151.101.0.223", "2a04:4e42::223"])
def test_public_addresses(address: str) -> None:
    """Ordinary internet addresses are public."""
    assert is_public(address)


def test_literal_private_urls_are_refused_unless_allowed() -> None:
    """IP literals are judged before any request; an allowed prefix lets exactly its URLs pass."""
    policy = OutboundPolicy(("http://127.0.0.1:8080/ext/",), "--push-allow")
    assert check_url("http://127.0.0.1:8080/ext/rel/", policy).allowed == ("127.0.0.1", 8080)
    for url in (
        "http://127.0.0.1:8080/other/",
        "http://127.0.0.1/ext/",
        "https://127.0.0.1:8080/ext/",
        "http://10.0.0.1/",
        "http://[::1]:8080/ext/",
        "http://169.254.169.254/latest/meta-data/",
    ):
        with pytest.raises(OutboundRefused, match="--push-allow"):
            check_url(url, policy)
    for url in ("file:///etc/passwd", "http://127.0.0.1:80801/ext/"):
        with pytest.raises(OutboundRefused, match="not an http"):
            check_url(url, policy)
    # A host name passes this step; the resolver judges its addresses.
    assert check_url("http://localhost:8080/ext/", OutboundPolicy()).allowed is None
    assert check_url("http://8.8.8.8/", OutboundPolicy()).allowed is None


def test_prefixes_compare_hosts_not_strings() -> None:
    """``http://10.0.0.1`` does not allow ``http://10.0.0.1.evil.example``, nor userinfo tricks."""
    policy = OutboundPolicy(("http://10.0.0.1",))
    assert policy.allows("http://10.0.0.1/simple/")
    assert policy.allows("http://10.0.0.1:80/x")
    assert not policy.allows("http://10.0.0.1.evil.example/")
    assert not policy.allows("http://10.0.0.1@evil.example/")
    assert not policy.allows("http://10.0.0.1:8080/")


def test_mirror_policy_allows_its_own_origin() -> None:
    """A mirror may reach its upstream's host and port (and JSON API), nothing else private."""
    policy = OutboundPolicy.for_mirror("http://127.0.0.1:5000/simple/", None)
    assert policy.allows("http://127.0.0.1:5000/files/a-1.0.tar.gz")
    assert not policy.allows("http://127.0.0.1:5001/files/a-1.0.tar.gz")
    assert OutboundPolicy.for_mirror("http://[::1]:5000/simple/").allows("http://[::1]:5000/x")


class _FixedResolver(AbstractResolver):
    """Answers every name with the given addresses, as a DNS server under an attacker's control
    would (rebinding)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


def _resolve(resolver: GuardedResolver, url: str, policy: OutboundPolicy) -> list[str]:
    async def run() -> list[str]:
        token = CURRENT_HOP.set(check_url(url, policy))
        try:
            parts = urlsplit(url)
            assert parts.hostname is not None
            found = await resolver.resolve(parts.hostname, parts.port or 80)
            return [r["host"] for r in found]
        finally:
            CURRENT_HOP.reset(token)

    return asyncio.run(run())


def test_resolver_drops_private_addresses_and_refuses_when_none_is_left() -> None:
    """A name resolving to a mix keeps only the public addresses; all private: refused."""
    mixed = GuardedResolver(_FixedResolver("127.0.0.1", "8.8.8.8"))
    assert _resolve(mixed, "http://mixed.example/", OutboundPolicy()) == ["8.8.8.8"]
    private = GuardedResolver(_FixedResolver("10.1.1.1", "::1"))
    with pytest.raises(OutboundRefused, match="private address"):
        _resolve(private, "http://rebound.example/", OutboundPolicy())
    # The allowed origin keeps all its addresses.
    allowed = OutboundPolicy.for_mirror("http://internal.example:3141/simple/")
    assert _resolve(private, "http://internal.example:3141/x", allowed) == ["10.1.1.1", "::1"]


def test_resolver_fails_closed_without_a_hop() -> None:
    """A request that did not go through UpstreamClient (no hop set) gets public addresses only."""
    resolver = GuardedResolver(_FixedResolver("127.0.0.1"))
    with pytest.raises(OutboundRefused):
        asyncio.run(resolver.resolve("anything.example", 80))
