"""Verifying the OIDC ID tokens CI systems present for trusted publishing.

A token is accepted only when all of these hold: it is a compact JWS of at most
``MAX_TOKEN_CHARS``; its ``alg`` is RS256 or ES256 (``none`` and the HMAC algorithms are refused
before any key is looked at, so a public key can never serve as an HMAC secret); its ``iss`` is an
issuer the operator configured; its signature verifies with the issuer's key named by ``kid``
(services/issuer_keys.py); ``aud`` is this server's audience; ``exp``, ``iat`` and ``nbf`` (if
present) hold within ``LEEWAY`` seconds; it carries a ``jti``; and it expires within
``MAX_LIFETIME`` (the ``jti`` is remembered until then: services/publishers.py).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from cheeseboard.core import jws
from cheeseboard.services.errors import CheeseboardError
from cheeseboard.services.issuer_keys import IssuerKeys, IssuerUnavailable

log = logging.getLogger(__name__)
ALGORITHMS = ("RS256", "ES256")
MAX_TOKEN_CHARS = 16 * 1024
"""GitHub's ID tokens are about 1.5 KB, GitLab's under 2 KB."""
LEEWAY = 60
"""Seconds of clock difference tolerated between the issuer and us."""
MAX_LIFETIME = 24 * 3600
"""Latest expiry accepted, from now: bounds how long a used ``jti`` must be remembered."""


class TokenRequestFailed(CheeseboardError):
    """Raised when an ID token cannot be exchanged; ``code`` and ``description`` are PyPI's
    error shape (warehouse/oidc/views.py), ``status`` its HTTP status."""

    def __init__(self, code: str, description: str, status: int = 422) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An ID token's claims after every check above passed."""

    issuer: str
    claims: dict[str, Any]
    expires: float


def _segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, RecursionError):
        raise TokenRequestFailed("invalid-payload", "malformed JWT") from None
    if not isinstance(value, dict):
        raise TokenRequestFailed("invalid-payload", "malformed JWT")
    return value


def _invalid(why: str) -> TokenRequestFailed:
    log.info("ID token refused: %s", why)
    return TokenRequestFailed("invalid-token", f"invalid token: {why}")


async def verify(token: str, keys: IssuerKeys, audience: str, now: float) -> VerifiedToken:
    """The verified claims of ``token``, or TokenRequestFailed saying why not."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise TokenRequestFailed("invalid-payload", "malformed JWT")
    header_text, payload_text, _ = token.split(".")
    header, unverified = _segment(header_text), _segment(payload_text)
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or issuer.rstrip("/") not in keys.issuers:
        raise TokenRequestFailed("invalid-payload", "unknown trusted publishing issuer")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise _invalid(f"signature algorithm {str(alg)[:20]!r} is not allowed (RS256, ES256)")
    if not isinstance(kid, str) or not kid or len(kid) > 200:
        raise _invalid("no key id (kid)")
    try:
        key = await keys.key(issuer.rstrip("/"), kid)
    except IssuerUnavailable as exc:
        log.warning("trusted publishing: %s", exc)
        raise TokenRequestFailed(
            "issuer-unavailable", "the issuer's signing keys cannot be fetched; retry later", 503
        ) from None
    if key is None:
        raise _invalid("signed with a key the issuer does not publish")
    try:
        claims = jws.verify(token, [key], algorithms=[str(alg)]).claims
    except jws.JwsError:
        raise _invalid("bad signature") from None
    return VerifiedToken(issuer, claims, _check_claims(claims, issuer, audience, now))


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{name!r} is not a time")
    return float(value)


def _check_claims(claims: dict[str, Any], issuer: str, audience: str, now: float) -> float:
    """The token's expiry once its registered claims hold (signature already verified)."""
    if claims.get("iss") != issuer:
        raise _invalid("issuer changed")
    aud = claims.get("aud")
    if aud != audience and aud != [audience]:
        raise _invalid(f"audience is not {audience!r}")
    expires, issued, not_before = (_number(claims, n) for n in ("exp", "iat", "nbf"))
    if expires is None or issued is None:
        raise _invalid("'exp' and 'iat' are required")
    if now >= expires + LEEWAY:
        raise _invalid("expired")
    if issued > now + LEEWAY or (not_before is not None and not_before > now + LEEWAY):
        raise _invalid("not valid yet")
    if expires > now + MAX_LIFETIME:
        raise _invalid(f"valid for more than {MAX_LIFETIME} seconds")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise _invalid("no token id (jti)")
    return expires + LEEWAY
