"""Passwords: argon2id hashes, the same scheme devpi stores, so devpi exports import as they are.

Users that old devpi-server versions created, and who never logged in since devpi moved to
argon2, still carry devpi's salted sha256 (``pwsalt`` + ``pwhash``). An import stores it as
``$devpi-salted-sha256$SALT$HEX`` so they keep their passwords too; such hashes are only ever
checked, never made.
"""

from __future__ import annotations

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4
DEVPI_SALTED_SHA256 = "$devpi-salted-sha256$"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def devpi_salted_hash(salt: str, hexdigest: str) -> str:
    """The stored form of a legacy devpi password (sha256 over salt then password)."""
    return f"{DEVPI_SALTED_SHA256}{salt}${hexdigest.lower()}"


def verify_password(pwhash: str, password: str) -> bool:
    if pwhash.startswith(DEVPI_SALTED_SHA256):
        return _verify_devpi_salted(pwhash[len(DEVPI_SALTED_SHA256) :], password)
    try:
        return _hasher.verify(pwhash, password)
    except (VerificationError, InvalidHashError):
        return False


def _verify_devpi_salted(salt_and_hash: str, password: str) -> bool:
    salt, sep, expected = salt_and_hash.rpartition("$")
    if not sep or not salt.isascii() or not expected.isascii():
        return False
    actual = hashlib.sha256(salt.encode("ascii") + password.encode("utf-8")).hexdigest()
    return hmac.compare_digest(actual, expected)
