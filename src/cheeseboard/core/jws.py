"""Verifying compact JWS tokens (OIDC ID tokens) signed with RS256 or ES256.

Only verification, only the two algorithms identity providers and CI systems sign ID tokens
with (RS256 is the one every OpenID provider must offer; ES256 is allowed). ``none`` and the
HMAC algorithms are refused before any key is looked at, so a public key can never serve as an
HMAC secret. The arithmetic is the ``rsa`` and ``ecdsa`` packages' (pure Python, well used):
a JOSE library on ``cryptography`` would add 13 MB to a server image with a 200 MB budget.

``rsa.verify`` compares the whole PKCS#1 v1.5 encoding it expects with the signature's (no
parsing of attacker-chosen padding), and is asked which hash the encoding names: only SHA-256
passes. ``ecdsa`` checks that a public point is on P-256 when the key is made, and that r and s
are in range when a signature is checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ecdsa
import rsa
from ecdsa.util import sigdecode_string

ALGORITHMS = ("RS256", "ES256")
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
MAX_TOKEN_CHARS = 64 * 1024
MAX_SEGMENT_JSON = 32 * 1024  # a header or claims set larger than this is refused


class JwsError(ValueError):
    """A token or key that does not verify or cannot be read; the message says why."""


class UnknownKeyId(JwsError):
    """The token names a ``kid`` that is not among the keys given (the issuer may have
    rotated its keys: fetch them again, once)."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A signing key from a JWK Set: its id, algorithm family and the verifier."""

    kid: str | None
    kty: str  # "RSA" or "EC"
    rsa_key: rsa.PublicKey | None = None
    ec_key: ecdsa.VerifyingKey | None = None

    def verifies(self, alg: str) -> bool:
        return (alg == "RS256" and self.kty == "RSA") or (alg == "ES256" and self.kty == "EC")


@dataclass(frozen=True, slots=True)
class Token:
    """A compact JWS split into its parts (nothing verified yet)."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def b64url_decode(text: str) -> bytes:
    if not text.isascii() or "=" in text:
        raise JwsError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("not base64url") from None


def _json_object(segment: str, what: str) -> dict[str, Any]:
    if len(segment) > MAX_SEGMENT_JSON * 4 // 3 + 4:
        raise JwsError(f"the {what} is too large")
    try:
        value = json.loads(b64url_decode(segment))
    except (ValueError, RecursionError):
        raise JwsError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JwsError(f"the {what} is not a JSON object")
    return value


def split(token: str) -> Token:
    """The parts of a compact JWS; JwsError if it is not one."""
    if len(token) > MAX_TOKEN_CHARS:
        raise JwsError("the token is too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS (three dot-separated parts)")
    header_text, claims_text, signature_text = parts
    header = _json_object(header_text, "header")
    if "crit" in header:
        raise JwsError("critical header extensions are not supported")
    return Token(
        header=header,
        claims=_json_object(claims_text, "claims set"),
        signing_input=f"{header_text}.{claims_text}".encode("ascii"),
        signature=b64url_decode(signature_text),
    )


def _int(entry: Mapping[str, Any], name: str) -> int:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise JwsError(f"JWK member {name!r} is missing")
    raw = b64url_decode(value)
    return int.from_bytes(raw, "big")


def parse_jwk(entry: Mapping[str, Any]) -> PublicKey | None:
    """A public signing key from one JWK; None for keys of other kinds or uses (encryption
    keys, symmetric keys, other curves). JwsError for a signing key that is malformed or weak,
    or that carries private parts."""
    kty = entry.get("kty")
    if entry.get("use", "sig") != "sig" or kty not in ("RSA", "EC"):
        return None
    alg = entry.get("alg")
    if alg is not None and alg not in ALGORITHMS:
        return None
    if "d" in entry:
        raise JwsError("a published key must not carry its private part")
    kid = entry.get("kid")
    kid = kid if isinstance(kid, str) else None
    if kty == "RSA":
        n, e = _int(entry, "n"), _int(entry, "e")
        if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
            raise JwsError(f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits")
        if e < 3 or e % 2 == 0 or e.bit_length() > 32:
            raise JwsError("the RSA public exponent is not acceptable")
        return PublicKey(kid, "RSA", rsa_key=rsa.PublicKey(n, e))
    if entry.get("crv") != "P-256":
        return None
    x, y = (b64url_decode(str(entry.get(name, ""))) for name in ("x", "y"))
    if len(x) != 32 or len(y) != 32:
        raise JwsError("P-256 coordinates must be 32 bytes each")
    try:  # checks that the point is on the curve
        key = ecdsa.VerifyingKey.from_string(b"\x04" + x + y, curve=ecdsa.NIST256p)
    except (ecdsa.errors.MalformedPointError, ValueError, AssertionError):
        raise JwsError("the EC key is not a point on P-256") from None
    return PublicKey(kid, "EC", ec_key=key)


def parse_jwks(document: object, limit: int = 64) -> list[PublicKey]:
    """The usable signing keys of a JWK Set document (at most ``limit``); malformed entries are
    skipped, so one bad key does not take the issuer's others down."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwsError("not a JWK Set (no 'keys' list)")
    found: list[PublicKey] = []
    for entry in document["keys"][:limit]:
        if not isinstance(entry, dict):
            continue
        try:
            key = parse_jwk(entry)
        except JwsError:
            continue
        if key is not None:
            found.append(key)
    return found


def check_signature(token: Token, key: PublicKey) -> None:
    """JwsError unless ``key`` made ``token``'s signature with the algorithm it names."""
    alg = token.alg
    if alg not in ALGORITHMS:
        raise JwsError(f"signature algorithm {alg[:20]!r} is not allowed ({', '.join(ALGORITHMS)})")
    if not key.verifies(alg):
        raise JwsError(f"the key is not a {alg} key")
    if key.rsa_key is not None:
        if len(token.signature) != rsa.common.byte_size(key.rsa_key.n):
            raise JwsError("the signature does not verify")
        try:
            method = rsa.verify(token.signing_input, token.signature, key.rsa_key)
        except rsa.VerificationError:
            raise JwsError("the signature does not verify") from None
        if method != "SHA-256":
            raise JwsError("the signature does not verify")
        return
    assert key.ec_key is not None
    if len(token.signature) != 64:
        raise JwsError("the signature does not verify")
    try:
        key.ec_key.verify(
            token.signature,
            token.signing_input,
            hashfunc=hashlib.sha256,
            sigdecode=sigdecode_string,
        )
    except (ecdsa.BadSignatureError, ecdsa.errors.MalformedPointError, AssertionError):
        raise JwsError("the signature does not verify") from None


def verify(token: str, keys: Sequence[PublicKey], algorithms: Sequence[str] = ALGORITHMS) -> Token:
    """The token once its signature verifies with the key of ``keys`` its ``kid`` names (or
    the only key that fits, when it names none). Claims are the caller's to check."""
    parsed = split(token)
    if parsed.alg not in algorithms:
        raise JwsError(
            f"signature algorithm {parsed.alg[:20]!r} is not allowed ({', '.join(algorithms)})"
        )
    kid = parsed.kid
    if kid is not None:
        candidates = [key for key in keys if key.kid == kid and key.verifies(parsed.alg)]
        if not candidates:
            raise UnknownKeyId(f"no published {parsed.alg} key has the id {kid[:80]!r}")
    else:
        candidates = [key for key in keys if key.verifies(parsed.alg)]
        if len(candidates) != 1:
            raise JwsError("the token names no key id (kid) and the issuer has several keys")
    check_signature(parsed, candidates[0])
    return parsed
