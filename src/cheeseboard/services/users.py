"""Passwords: argon2id hashes, the same scheme devpi stores, so devpi exports import as they are.

Users that old devpi-server versions created, and who never logged in since devpi moved to
argon2, still carry devpi's salted sha256 (``pwsalt`` + ``pwhash``). An import stores it as
``$devpi-salted-sha256$SALT$HEX`` so they keep their passwords too; such hashes are only ever
checked, never made.

An argon2 hash carries its own cost parameters, and checking a password costs what they say: a
hash with ``m`` of a gigabyte made every login for its user take 11.5 s and 1.1 GB (issue 17).
``pwhash_problem`` holds stored hashes to the server's bounds, and ``verify_password`` refuses a
hash beyond them without running argon2.
"""

from __future__ import annotations

import hashlib
import logging

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from cheeseboard.core.constant_time import same_secret

_hasher = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4
DEVPI_SALTED_SHA256 = "$devpi-salted-sha256$"
# Bounds on the cost a stored hash may ask for. They admit argon2-cffi's defaults (which devpi
# uses: m=64 MiB, t=3, p=4) and passlib's (m=512 KiB, t=2, p=2) with room to spare; at the
# bounds one check costs about 256 MiB and well under two seconds of one core.
MAX_MEMORY_KIB = 256 * 1024  # argon2's m is in KiB: 256 MiB
MAX_TIME_COST = 10  # passes over the memory
MAX_PARALLELISM = 8  # lanes
MAX_PWHASH_LENGTH = 512  # characters; a default hash has 97
log = logging.getLogger(__name__)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def devpi_salted_hash(salt: str, hexdigest: str) -> str:
    """The stored form of a legacy devpi password (sha256 over salt then password)."""
    return f"{DEVPI_SALTED_SHA256}{salt}${hexdigest.lower()}"


def pwhash_problem(pwhash: str) -> str | None:
    """Why ``pwhash`` may not be stored or checked (not argon2, or beyond a bound), else None."""
    if len(pwhash) > MAX_PWHASH_LENGTH:
        return f"pwhash is longer than {MAX_PWHASH_LENGTH} characters"
    if not pwhash.startswith("$argon2"):
        return "pwhash must be an argon2 hash"
    try:
        params = extract_parameters(pwhash)
    except (InvalidHashError, ValueError):
        return "pwhash is not a valid argon2 hash"
    if params.memory_cost > MAX_MEMORY_KIB:
        return (
            f"pwhash memory cost m={params.memory_cost} exceeds the bound of {MAX_MEMORY_KIB} KiB"
        )
    if params.time_cost > MAX_TIME_COST:
        return f"pwhash time cost t={params.time_cost} exceeds the bound of {MAX_TIME_COST}"
    if params.parallelism > MAX_PARALLELISM:
        return f"pwhash parallelism p={params.parallelism} exceeds the bound of {MAX_PARALLELISM}"
    return None


def verify_password(pwhash: str, password: str) -> bool:
    if pwhash.startswith(DEVPI_SALTED_SHA256):
        return _verify_devpi_salted(pwhash[len(DEVPI_SALTED_SHA256) :], password)
    problem = pwhash_problem(pwhash)
    if problem is not None:
        # Refused before argon2 runs: the parameters, not the password, decide the cost.
        log.warning("password check refused: %s", problem)
        return False
    try:
        return _hasher.verify(pwhash, password)
    except (VerificationError, InvalidHashError):
        return False


def _verify_devpi_salted(salt_and_hash: str, password: str) -> bool:
    salt, sep, expected = salt_and_hash.rpartition("$")
    if not sep or not salt.isascii() or not expected.isascii():
        return False
    actual = hashlib.sha256(salt.encode("ascii") + password.encode("utf-8")).hexdigest()
    return same_secret(actual, expected)
