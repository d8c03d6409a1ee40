"""The signing keys of the OIDC issuers the operator trusts (``--oidc-issuers``), from their
discovery documents and JWKS, cached.

Keys are fetched through the server's one outbound client (mirror/client.py: timeouts, size
cap, ``--ca-bundle``), under an outbound policy that lets only the configured issuer's own
origin be a non-public address (the operator named it; a ``jwks_uri`` elsewhere on the private
network is refused, as any URL a third party chose). A key set is kept for ``ttl`` seconds. A
token naming a key id we do not have (the issuer rotated its keys) refetches at once, but at
most once per ``refetch_interval`` per issuer: an anonymous caller sending random key ids
costs one fetch per interval, not one per request; so does an issuer that is down. Concurrent
fetches of one issuer share one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cheeseboard.core import jws
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.mirror.errors import UpstreamError
from cheeseboard.mirror.outbound import OutboundPolicy

log = logging.getLogger(__name__)
Key = jws.PublicKey
MAX_DOCUMENT_BYTES = 256 * 1024
"""Largest discovery document or JWKS accepted: GitHub's JWKS is about 2 KiB."""
MAX_KEYS = 64


class IssuerUnavailable(Exception):
    """Raised when an issuer's discovery document or keys cannot be fetched or read."""


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: dict[str, Key]
    fetched: float


class IssuerKeys:
    """Signing keys by issuer and key id, for the issuers in ``issuers`` only."""

    def __init__(
        self,
        client: UpstreamClient,
        issuers: tuple[str, ...],
        ttl: float = 3600.0,
        refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.issuers = frozenset(issuer.rstrip("/") for issuer in issuers)
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._sets: dict[str, _KeySet] = {}
        self._last_refetch: dict[str, float] = {}
        self._last_failure: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key(self, issuer: str, kid: str) -> Key | None:
        """The key ``kid`` of ``issuer`` (a configured one), or None if the issuer has no such
        key even after the refetch it is allowed."""
        known = self._sets.get(issuer)
        now = self._clock()
        if known is not None and now - known.fetched < self._ttl and kid in known.keys:
            return known.keys[kid]
        lock = self._locks.setdefault(issuer, asyncio.Lock())
        async with lock:
            known = self._sets.get(issuer)
            now = self._clock()
            fresh = known is not None and now - known.fetched < self._ttl
            if fresh and known is not None and kid in known.keys:
                return known.keys[kid]  # fetched by the request we waited for
            if fresh:
                # An unknown kid in a fresh set: the issuer may have rotated its keys.
                last = self._last_refetch.get(issuer)
                if last is not None and now - last < self._refetch_interval:
                    return None  # rotation checked moments ago: an unknown kid stays unknown
                self._last_refetch[issuer] = now
            failed = self._last_failure.get(issuer)
            if failed is not None and now - failed < self._refetch_interval:
                if fresh:
                    return None
                raise IssuerUnavailable(f"{issuer}: failed moments ago; not asked again yet")
            try:
                keys = await self._fetch(issuer)
            except IssuerUnavailable:
                # Failures are bounded like refetches: a down issuer is asked once per interval,
                # and the keys we hold keep working meanwhile.
                self._last_failure[issuer] = self._clock()
                if fresh:
                    return None
                raise
            self._last_failure.pop(issuer, None)
            self._sets[issuer] = _KeySet(keys, self._clock())
            return keys.get(kid)

    async def _fetch(self, issuer: str) -> dict[str, Key]:
        policy = OutboundPolicy.for_mirror(issuer)
        policy = OutboundPolicy(policy.allow, "--oidc-issuers")
        discovery = await self._json(f"{issuer}/.well-known/openid-configuration", policy)
        if discovery.get("issuer", "").rstrip("/") != issuer:
            raise IssuerUnavailable(f"{issuer}: its discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("https", "http"):
            raise IssuerUnavailable(f"{issuer}: its discovery document has no jwks_uri")
        if urlsplit(jwks_uri).scheme == "http" and urlsplit(issuer).scheme == "https":
            raise IssuerUnavailable(f"{issuer}: its jwks_uri is not https")
        document = await self._json(jwks_uri, policy)
        keys: dict[str, Key] = {}
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise IssuerUnavailable(f"{issuer}: its JWKS has no keys")
        for entry in entries[:MAX_KEYS]:
            key = _import(entry)
            if key is not None:
                keys[str(entry["kid"])] = key
        log.info("fetched %d signing keys of %s", len(keys), issuer)
        return keys

    async def _json(self, url: str, policy: OutboundPolicy) -> dict[str, Any]:
        try:
            page = await self._client.fetch_page(url, policy, accept="application/json")
        except UpstreamError as exc:
            raise IssuerUnavailable(f"{url}: {exc}") from exc
        if page is None or len(page.body) > MAX_DOCUMENT_BYTES:
            raise IssuerUnavailable(f"{url}: no usable answer")
        try:
            document = json.loads(page.body)
        except (ValueError, RecursionError):
            raise IssuerUnavailable(f"{url}: not JSON") from None
        if not isinstance(document, dict):
            raise IssuerUnavailable(f"{url}: not a JSON object")
        return document


def _import(entry: object) -> Key | None:
    """A public signing key from a JWKS entry; None for anything else (encryption keys, other
    types, private or broken entries), which are skipped, not fatal."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None
    try:
        return jws.parse_jwk(entry)
    except jws.JwsError as exc:
        log.warning("skipped a signing key: %s", exc)
        return None
