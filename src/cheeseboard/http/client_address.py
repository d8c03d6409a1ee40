"""Makes the client's address known to the services (failed sign-ins are counted per address)
without passing the request down every call.

Behind a reverse proxy every connection comes from the proxy. With ``--trusted-proxies`` the
address counted is read from ``X-Forwarded-For``, but only when the connection comes from a
trusted proxy, and then the rightmost address that is not itself a trusted proxy: the entries to
its left were written by the client and prove nothing. From anyone else the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from cheeseboard.services.throttle import client_address
from cheeseboard.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


class TrustedProxies:
    """Which peers may say who the client is (immutable)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusted(self, address: str | None) -> bool:
        parsed = _parse(address) if address else None
        return parsed is not None and any(parsed in n for n in self._networks)

    def client(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """The client's address: ``peer``, or, when ``peer`` is a trusted proxy, the rightmost
        ``X-Forwarded-For`` entry that is not one (the leftmost if all are)."""
        if not self.trusted(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        hops = [hop for hop in hops if hop]
        for hop in reversed(hops):
            parsed = _parse(hop)
            if parsed is None:
                return peer  # a garbled header: count the proxy rather than a made-up name
            if not self.trusted(hop):
                return str(parsed)
        return str(_parse(hops[0])) if hops else peer


class ClientAddress:
    """ASGI middleware setting ``client_address`` for the request's task."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        self.app = app
        self.proxies = TrustedProxies(settings.trusted_proxies if settings else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        peer = client[0] if client else None
        address = peer
        if self.proxies and scope["type"] in ("http", "websocket"):
            forwarded = Headers(scope=scope).getlist("x-forwarded-for")
            address = self.proxies.client(peer, forwarded)
        token = client_address.set(address)
        try:
            await self.app(scope, receive, send)
        finally:
            client_address.reset(token)
