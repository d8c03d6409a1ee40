"""core/jws.py against tokens signed by an independent implementation (joserfc on cryptography)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from cheeseboard.core import jws

CLAIMS = {"iss": "https://issuer.test", "sub": "repo:acme/app", "aud": "cheeseboard"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public(key: RSAKey | ECKey) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "r1"})


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "e1"})


def _keys(*keys: RSAKey | ECKey) -> list[jws.PublicKey]:
    return jws.parse_jwks({"keys": [_public(key) for key in keys]})


def test_rs256_and_es256_tokens_verify(rsa_key: RSAKey, ec_key: ECKey) -> None:
    keys = _keys(rsa_key, ec_key)
    for alg, key in (("RS256", rsa_key), ("ES256", ec_key)):
        token = jwt.encode({"alg": alg, "kid": key.kid}, CLAIMS, key)
        assert jws.verify(token, keys).claims == CLAIMS


def test_a_changed_claim_or_signature_does_not_verify(rsa_key: RSAKey, ec_key: ECKey) -> None:
    keys = _keys(rsa_key, ec_key)
    for alg, key in (("RS256", rsa_key), ("ES256", ec_key)):
        header, _, signature = jwt.encode({"alg": alg, "kid": key.kid}, CLAIMS, key).split(".")
        forged = _b64(json.dumps({**CLAIMS, "sub": "repo:evil/app"}).encode())
        with pytest.raises(jws.JwsError, match="does not verify"):
            jws.verify(f"{header}.{forged}.{signature}", keys)
        raw = jws.b64url_decode(signature)
        flipped = _b64(bytes([raw[0] ^ 1]) + raw[1:])
        body = jwt.encode({"alg": alg, "kid": key.kid}, CLAIMS, key).split(".")[1]
        with pytest.raises(jws.JwsError, match="does not verify"):
            jws.verify(f"{header}.{body}.{flipped}", keys)


def test_another_key_with_the_same_kid_does_not_verify(rsa_key: RSAKey) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "r1"})
    token = jwt.encode({"alg": "RS256", "kid": "r1"}, CLAIMS, impostor)
    with pytest.raises(jws.JwsError, match="does not verify"):
        jws.verify(token, _keys(rsa_key))


def test_none_and_hmac_are_refused_before_any_key(rsa_key: RSAKey) -> None:
    keys = _keys(rsa_key)
    body = _b64(json.dumps(CLAIMS).encode())
    none = f"{_b64(json.dumps({'alg': 'none'}).encode())}.{body}."
    with pytest.raises(jws.JwsError, match="not allowed"):
        jws.verify(none, keys)
    # HS256 keyed with the public key's bytes (the classic confusion attack).
    secret = json.dumps(_public(rsa_key)).encode()
    header = _b64(json.dumps({"alg": "HS256", "kid": "r1"}).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(jws.JwsError, match="not allowed"):
        jws.verify(f"{header}.{body}.{_b64(mac)}", keys)
    hs = jwt.encode({"alg": "HS256"}, CLAIMS, OctKey.generate_key(256))
    with pytest.raises(jws.JwsError, match="not allowed"):
        jws.verify(hs, keys)


def _pkcs1_sign(key: RSAKey, message: bytes, digest_info: bytes) -> bytes:
    """A PKCS#1 v1.5 signature made by hand with ``key``'s private exponent."""
    private = key.as_dict(private=True)
    n, d = (int.from_bytes(jws.b64url_decode(str(private[name])), "big") for name in ("n", "d"))
    size = (n.bit_length() + 7) // 8
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(digest_info)) + b"\x00" + digest_info
    return pow(int.from_bytes(block, "big"), d, n).to_bytes(size, "big")


def test_an_rsa_signature_over_another_hash_is_refused(rsa_key: RSAKey) -> None:
    """The header says RS256 but the PKCS#1 block holds a SHA-1 DigestInfo: refused; the same
    block with SHA-256 verifies (so the hand-made signature is right)."""
    header = _b64(json.dumps({"alg": "RS256", "kid": "r1"}).encode())
    body = _b64(json.dumps(CLAIMS).encode())
    message = f"{header}.{body}".encode()
    sha1 = bytes.fromhex("3021300906052b0e03021a05000414") + hashlib.sha1(message).digest()  # noqa: S324 (the attack)
    signature = _pkcs1_sign(rsa_key, message, sha1)
    with pytest.raises(jws.JwsError, match="does not verify"):
        jws.verify(f"{header}.{body}.{_b64(signature)}", _keys(rsa_key))
    sha256 = (
        bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(message).digest()
    )
    good = _pkcs1_sign(rsa_key, message, sha256)
    assert jws.verify(f"{header}.{body}.{_b64(good)}", _keys(rsa_key)).claims == CLAIMS
    # Garbage after the digest (a lenient parser's forgery room) does not verify.
    loose = _pkcs1_sign(rsa_key, message, sha256[:-2] + b"\x00\x00")
    with pytest.raises(jws.JwsError, match="does not verify"):
        jws.verify(f"{header}.{body}.{_b64(loose)}", _keys(rsa_key))


def test_many_es256_tokens_verify_and_out_of_range_signatures_do_not(ec_key: ECKey) -> None:
    keys = _keys(ec_key)
    for n in range(20):
        token = jwt.encode({"alg": "ES256", "kid": "e1"}, {**CLAIMS, "n": n}, ec_key)
        assert jws.verify(token, keys).claims["n"] == n
    header, body, _ = token.split(".")
    for r, s in ((0, 1), (1, 0), (jws._N, 1), (1, jws._N)):
        forged = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        with pytest.raises(jws.JwsError, match="does not verify"):
            jws.verify(f"{header}.{body}.{forged}", keys)


def test_unknown_kid_is_its_own_error(rsa_key: RSAKey) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "rotated"})
    token = jwt.encode({"alg": "RS256", "kid": "rotated"}, CLAIMS, other)
    with pytest.raises(jws.UnknownKeyId):
        jws.verify(token, _keys(rsa_key))
    assert jws.verify(token, _keys(rsa_key, other)).claims == CLAIMS


def test_weak_private_or_off_curve_keys_are_not_used(rsa_key: RSAKey, ec_key: ECKey) -> None:
    small_n = (1 << 1023) | 1  # 1024 bits
    with pytest.raises(jws.JwsError, match="bits"):
        jws.parse_jwk({"kty": "RSA", "n": _b64(small_n.to_bytes(128, "big")), "e": "AQAB"})
    with pytest.raises(jws.JwsError, match="private"):
        jws.parse_jwk(dict(rsa_key.as_dict(private=True)))
    point = _public(ec_key)
    off_curve = {**point, "y": _b64(bytes(31) + b"\x01")}
    with pytest.raises(jws.JwsError, match="P-256"):
        jws.parse_jwk(off_curve)
    assert jws.parse_jwk({**point, "use": "enc"}) is None
    assert jws.parse_jwk({"kty": "oct", "k": "c2VjcmV0"}) is None
    assert jws.parse_jwk({**point, "crv": "P-384"}) is None
    # A set with one bad entry keeps the good ones.
    keys = jws.parse_jwks({"keys": [off_curve, _public(rsa_key), "junk"]})
    assert [key.kid for key in keys] == ["r1"]


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30", f"{'A' * (jws.MAX_TOKEN_CHARS + 1)}"],
)
def test_malformed_tokens_are_refused_with_a_reason(token: str) -> None:
    with pytest.raises(jws.JwsError):
        jws.verify(token, [])
