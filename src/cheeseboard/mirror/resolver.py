"""The connect-time half of the outbound policy (mirror/outbound.py): a resolver for aiohttp.

Kept apart from the policy so that importing the policy does not import aiohttp; only a process
that actually talks to an upstream loads it.
"""

from __future__ import annotations

import socket
import time

from aiohttp.abc import AbstractResolver, ResolveResult

from cheeseboard.mirror.outbound import (
    CURRENT_HOP,
    PRIVATE_ORIGINS,
    OutboundPolicy,
    OutboundRefused,
    is_public,
    refusal,
)

_DNS_TTL = 60.0  # seconds a resolution is reused (the filter runs on every use)
_DNS_ENTRIES = 512  # resolutions kept; the oldest goes first


class GuardedResolver(AbstractResolver):
    """Wraps aiohttp's resolver: drops the addresses the current hop's policy refuses, and
    fails (OutboundRefused) when none is left. Without a hop (a request outside UpstreamClient)
    only public addresses pass: the guard fails closed."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner
        self._cache: dict[tuple[str, int, int], tuple[float, list[ResolveResult]]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolved(host, port, family)
        hop = CURRENT_HOP.get()
        if hop is not None and hop.allowed == (host.lower().rstrip("."), port):
            if not all(is_public(r["host"]) for r in results):
                PRIVATE_ORIGINS.add(hop.allowed)
            return results
        public = [r for r in results if is_public(r["host"])]
        if not public:
            shown = ", ".join(sorted({r["host"] for r in results})) or "no address"
            policy = hop.policy if hop is not None else OutboundPolicy()
            raise OutboundRefused(hop.url if hop else host, refusal(host, shown, policy))
        return public

    async def _resolved(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[ResolveResult]:
        key = (host, port, int(family))
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        results = await self._inner.resolve(host, port, family)
        self._cache.pop(key, None)
        if len(self._cache) >= _DNS_ENTRIES:
            del self._cache[next(iter(self._cache))]
        self._cache[key] = (now + _DNS_TTL, results)
        return results

    async def close(self) -> None:
        await self._inner.close()
