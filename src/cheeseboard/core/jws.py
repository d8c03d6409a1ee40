"""Verifying compact JWS tokens (OIDC ID tokens) signed with RS256 or ES256.

Only verification, only the two algorithms identity providers and CI systems sign ID tokens
with (RS256 is the one every OpenID provider must offer; ES256 is allowed). ``none`` and the
HMAC algorithms are refused before any key is looked at, so a public key can never serve as an
HMAC secret.

The arithmetic is here, on Python's integers: a JOSE library brings ``cryptography`` (13 MB of
a server image with a 200 MB budget), and the pure-Python ``rsa``/``ecdsa`` packages 2.7 MB.
Verification needs no secret, so there is no timing to protect, and each check is the
textbook one:

- RS256 (RFC 8017 8.2.2, EMSA-PKCS1-v1_5): the signature, raised to the public exponent, must
  equal byte for byte the whole encoding we build from the SHA-256 digest. Nothing in the
  signer's padding is parsed, which is where forgeries against lenient verifiers came from.
- ES256 (FIPS 186-4 / SEC 1 4.1.4, curve P-256): the key must be a point on the curve, r and s
  in [1, n-1], and the x coordinate of u1*G + u2*Q, reduced mod n, must equal r.

tests/unit/core/test_jws.py checks both against tokens signed by an independent implementation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cheeseboard.core.constant_time import same_secret

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
    kty: str  # "RSA" (n, e) or "EC" (x, y on P-256)
    first: int
    second: int

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
        return PublicKey(kid, "RSA", n, e)
    if entry.get("crv") != "P-256":
        return None
    raw_x, raw_y = (b64url_decode(str(entry.get(name, ""))) for name in ("x", "y"))
    if len(raw_x) != 32 or len(raw_y) != 32:
        raise JwsError("P-256 coordinates must be 32 bytes each")
    x, y = int.from_bytes(raw_x, "big"), int.from_bytes(raw_y, "big")
    if not (x < _P and y < _P and (y * y - (x * x * x + _A * x + _B)) % _P == 0):
        raise JwsError("the EC key is not a point on P-256")
    return PublicKey(kid, "EC", x, y)


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
    if key.kty == "RSA":
        if not _rsa_pkcs1_sha256_holds(token.signing_input, token.signature, key.first, key.second):
            raise JwsError("the signature does not verify")
        return
    if len(token.signature) != 64 or not _p256_holds(
        token.signing_input, token.signature, (key.first, key.second)
    ):
        raise JwsError("the signature does not verify")


# DER of DigestInfo for SHA-256 up to the digest (RFC 8017 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _rsa_pkcs1_sha256_holds(message: bytes, signature: bytes, n: int, e: int) -> bool:
    size = (n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    encoded = pow(s, e, n).to_bytes(size, "big")
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    padding = size - 3 - len(digest_info)
    if padding < 8:
        return False
    expected = b"\x00\x01" + b"\xff" * padding + b"\x00" + digest_info
    return same_secret(encoded, expected)


# P-256 (FIPS 186-4 D.1.2.3): y^2 = x^3 + ax + b over GF(p), base point G of prime order n.
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
_Jacobian = tuple[int, int, int]  # (X, Y, Z): x = X/Z^2, y = Y/Z^3; Z == 0 is infinity
_INFINITY: _Jacobian = (1, 1, 0)


def _double(point: _Jacobian) -> _Jacobian:
    x, y, z = point
    if z == 0 or y == 0:
        return _INFINITY
    yy = y * y % _P
    s = 4 * x * yy % _P
    zz = z * z % _P
    m = 3 * (x - zz) * (x + zz) % _P  # a = -3
    x3 = (m * m - 2 * s) % _P
    return x3, (m * (s - x3) - 8 * yy * yy) % _P, 2 * y * z % _P


def _add(p1: _Jacobian, p2: _Jacobian) -> _Jacobian:
    if p1[2] == 0:
        return p2
    if p2[2] == 0:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    z1z1, z2z2 = z1 * z1 % _P, z2 * z2 % _P
    u1, u2 = x1 * z2z2 % _P, x2 * z1z1 % _P
    s1, s2 = y1 * z2 * z2z2 % _P, y2 * z1 * z1z1 % _P
    if u1 == u2:
        return _double(p1) if s1 == s2 else _INFINITY
    h, r = (u2 - u1) % _P, (s2 - s1) % _P
    hh = h * h % _P
    hhh = h * hh % _P
    v = u1 * hh % _P
    x3 = (r * r - hhh - 2 * v) % _P
    return x3, (r * (v - x3) - s1 * hhh) % _P, h * z1 * z2 % _P


def _p256_holds(message: bytes, signature: bytes, public: tuple[int, int]) -> bool:
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, _N)
    u1, u2 = e * w % _N, r * w % _N
    # u1*G + u2*Q in one pass over the bits (Shamir's trick).
    g: _Jacobian = (*_G, 1)
    q: _Jacobian = (*public, 1)
    both = _add(g, q)
    total = _INFINITY
    for bit in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        total = _double(total)
        pick = ((u1 >> bit) & 1, (u2 >> bit) & 1)
        if pick == (1, 1):
            total = _add(total, both)
        elif pick == (1, 0):
            total = _add(total, g)
        elif pick == (0, 1):
            total = _add(total, q)
    x, _, z = total
    if z == 0:
        return False
    affine_x = x * pow(z * z % _P, -1, _P) % _P
    return affine_x % _N == r


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
