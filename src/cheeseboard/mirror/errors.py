"""Upstream failures in our own terms; nothing above ``mirror/`` sees aiohttp's exceptions."""

from __future__ import annotations


class UpstreamError(Exception):
    """Raised when upstream could not give us what we asked for; ``url`` says where we asked."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason} ({url})")
        self.url = url
        self.reason = reason


class UpstreamNotFound(UpstreamError):
    """Raised when upstream answered 404 or 410: the name or file does not exist there."""


class UpstreamUnavailable(UpstreamError):
    """Raised on timeouts, connection failures, 5xx and other unusable answers."""


class UpstreamRefused(UpstreamUnavailable):
    """Raised when the outbound policy forbids the request (a loopback, link-local or private
    address that is not allowed); nothing was sent."""
