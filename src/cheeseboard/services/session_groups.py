"""Groups an identity provider named at sign-in, carried by the browser beside its session.

A web session is a login token (core/tokens.py) and names only its user; the groups an OIDC
sign-in reported (services/sso.py) are not stored on the server ("come with each sign-in",
store/schema.py). They travel in a cookie whose signature covers the session token it belongs
to, so it cannot be edited, moved to another session, or outlive the token (sign-out and a
password change end both). The provider's groups count until the next sign-in.
"""

from __future__ import annotations

import base64
import binascii
import json

from cheeseboard.core.constant_time import same_secret
from cheeseboard.core.tokens import TokenSigner

GROUPS_COOKIE = "cheeseboard_groups"
MAX_GROUPS_COOKIE = 3072


def _mac(tokens: TokenSigner, session_token: str, body: str) -> str:
    return tokens.derive("session-groups", f"{tokens.digest(session_token)}\0{body}")


def _encoded(groups: list[str]) -> str:
    raw = json.dumps(groups, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def seal(tokens: TokenSigner, session_token: str, groups: frozenset[str]) -> tuple[str, int]:
    """The cookie value carrying ``groups`` for ``session_token``, and how many it holds: as
    many (in name order) as fit in a cookie browsers keep."""
    kept = sorted(groups)
    body = _encoded(kept)
    while len(body) > MAX_GROUPS_COOKIE - 50:
        kept.pop()
        body = _encoded(kept)
    return f"{body}.{_mac(tokens, session_token, body)}", len(kept)


def opened(tokens: TokenSigner, session_token: str, cookie: str | None) -> frozenset[str]:
    """The groups in ``cookie`` if it was sealed for ``session_token``; else none."""
    if not cookie or len(cookie) > MAX_GROUPS_COOKIE or "." not in cookie:
        return frozenset()
    body, _, mac = cookie.rpartition(".")
    if not same_secret(mac, _mac(tokens, session_token, body)):
        return frozenset()
    try:
        groups = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return frozenset()
    if not isinstance(groups, list):
        return frozenset()
    return frozenset(g for g in groups if isinstance(g, str))
