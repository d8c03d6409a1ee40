"""The OIDC issuers' key cache: TTL, one refetch per interval for unknown key ids (rotation) and
for a failing issuer, against a real local issuer through the real outbound client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.services.issuer_keys import IssuerKeys, IssuerUnavailable
from tests.support.ci_issuer import LocalIssuer, local_issuer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as started:
        yield started


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream = UpstreamClient(5.0)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


async def test_keys_are_cached_and_rotation_refetches_once_per_interval(
    issuer: LocalIssuer, client: UpstreamClient
) -> None:
    """Known kids come from memory; an unknown kid refetches at most once per interval."""
    clock = Clock()
    keys = IssuerKeys(client, (issuer.url,), ttl=3600, refetch_interval=30, clock=clock)
    assert await keys.key(issuer.url, "rsa-1") is not None
    assert await keys.key(issuer.url, "ec-1") is not None
    assert issuer.jwks_requests == 1
    issuer.rotate()
    assert await keys.key(issuer.url, issuer.rsa.kid) is not None  # fetched on first sight
    assert issuer.jwks_requests == 2
    for kid in ("x1", "x2", "x3", issuer.rsa.kid + "-not"):
        assert await keys.key(issuer.url, kid) is None
    assert issuer.jwks_requests == 2  # unknown kids within the interval: no fetch
    clock.now += 31
    assert await keys.key(issuer.url, "x4") is None
    assert issuer.jwks_requests == 3
    clock.now += 3600
    assert await keys.key(issuer.url, issuer.rsa.kid) is not None  # past the TTL: refetched
    assert issuer.jwks_requests == 4


async def test_a_failing_issuer_is_asked_once_per_interval(
    issuer: LocalIssuer, client: UpstreamClient
) -> None:
    """Down: 503 from discovery raises IssuerUnavailable, and is not asked again at once;
    keys already held keep working when a refetch fails."""
    clock = Clock()
    keys = IssuerKeys(client, (issuer.url,), refetch_interval=30, clock=clock)
    issuer.failing = True
    for _ in range(5):
        with pytest.raises(IssuerUnavailable):
            await keys.key(issuer.url, "rsa-1")
    assert issuer.discovery_requests == 1
    clock.now += 31
    issuer.failing = False
    assert await keys.key(issuer.url, "rsa-1") is not None
    issuer.failing = True
    clock.now += 31
    assert await keys.key(issuer.url, "unknown") is None  # refetch failed: held keys stay
    assert await keys.key(issuer.url, "rsa-1") is not None
    assert issuer.discovery_requests == 3


async def test_a_discovery_document_naming_another_issuer_is_refused(
    issuer: LocalIssuer, client: UpstreamClient
) -> None:
    """The issuer configured must be the issuer the document names: the same server under
    another name is not the same issuer."""
    other_name = issuer.url.replace("127.0.0.1", "localhost")
    keys = IssuerKeys(client, (other_name,))
    with pytest.raises(IssuerUnavailable, match="names another issuer"):
        await keys.key(other_name, "rsa-1")
