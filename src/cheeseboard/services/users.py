"""Passwords: argon2id hashes, the same scheme devpi stores, so devpi exports import as they are."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(pwhash: str, password: str) -> bool:
    try:
        return _hasher.verify(pwhash, password)
    except (VerificationError, InvalidHashError):
        return False
