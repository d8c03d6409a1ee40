"""Where this server's outbound requests may go: one address policy for mirrors and pushes.

Upstream pages name the hosts our mirror downloads from, and a push names the URL it posts to,
so without a policy anyone able to write a page or ask for a push could make the server talk to
its own loopback, the cloud metadata service (169.254.169.254) or the private network
(docs/security.md, "Outbound requests"). The rule: loopback, link-local, private, unspecified,
multicast and reserved addresses are refused unless the URL starts with an allowed prefix (the
mirror's own URL, whose host root configured; ``--push-allow`` for pushes).

The check runs twice: on each URL before it is requested (hops of a redirect included, since
the client follows them itself), which catches IP literals; and at connect time in
``GuardedResolver`` (mirror/resolver.py), on the addresses a host name actually resolves to,
so DNS rebinding cannot slip a private address in after the first check. The policy of the
request in flight reaches the resolver through a context variable, set around each hop.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlsplit


class OutboundRefused(Exception):
    """Raised when the policy forbids a request to ``url`` (``reason`` says which address)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason} ({url})")
        self.url = url
        self.reason = reason


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL; None if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """URL prefixes whose hosts may be non-public; ``option`` names the setting that lists them
    (for the refusal message)."""

    allow: tuple[str, ...] = ()
    option: str = ""

    @classmethod
    def for_mirror(cls, *urls: str | None) -> OutboundPolicy:
        """A mirror may reach its own upstream's origin (host and port), whatever its address."""
        origins = []
        for url in urls:
            origin = _origin(url) if url else None
            if origin is not None:
                scheme, host, port = origin
                bracketed = f"[{host}]" if ":" in host else host
                origins.append(f"{scheme}://{bracketed}:{port}/")
        return cls(tuple(origins), "the index's mirror_url")

    def allows(self, url: str) -> bool:
        """Whether ``url`` starts with an allowed prefix, compared by parts: scheme, host and
        port equal, path under the prefix's path (a string prefix would let
        ``http://10.0.0.1.evil.example/`` pass as ``http://10.0.0.1``)."""
        origin = _origin(url)
        if origin is None:
            return False
        path = urlsplit(url).path or "/"
        for prefix in self.allow:
            if _origin(prefix) == origin and path.startswith(urlsplit(prefix).path or "/"):
                return True
        return False


def is_public(address: str) -> bool:
    """Whether an IP address is an ordinary public one (IPv4-mapped IPv6 judged as IPv4)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class Hop:
    """One request on its way: its URL, policy, and the origin allowed without address checks."""

    url: str
    policy: OutboundPolicy
    allowed: tuple[str, int] | None  # (host, port) when the URL matched an allowed prefix


CURRENT_HOP: ContextVar[Hop | None] = ContextVar("cheeseboard_outbound_hop", default=None)
# (host, port) pairs an allowance let us connect to on a non-public address. A pooled connection
# to one of them must not serve a request the policy does not allow there (the resolver, which
# would refuse it, is not asked again for a pooled connection). Bounded by the allowances.
PRIVATE_ORIGINS: set[tuple[str, int]] = set()


def check_url(url: str, policy: OutboundPolicy) -> Hop:
    """The hop for ``url``, or OutboundRefused if its host is a non-public IP literal (or a
    name seen on one) that ``policy`` does not allow."""
    origin = _origin(url)
    if origin is None:
        raise OutboundRefused(url, "not an http(s) URL")
    _, host, port = origin
    if policy.allows(url):
        return Hop(url, policy, (host, port))
    literal = host.strip("[]")
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        if (host, port) in PRIVATE_ORIGINS:
            raise OutboundRefused(url, refusal(host, "a non-public address", policy)) from None
        return Hop(url, policy, None)  # a name: the resolver checks what it resolves to
    if not is_public(literal):
        raise OutboundRefused(url, refusal(host, literal, policy))
    return Hop(url, policy, None)


def refusal(host: str, address: str, policy: OutboundPolicy) -> str:
    """Why a connection to ``host`` at ``address`` is refused, naming the setting to allow it."""
    where = f"{host} ({address})" if host != address else host
    hint = f"; allow it with {policy.option}" if policy.option else ""
    return f"refused to connect to {where}: loopback, link-local or private address{hint}"
