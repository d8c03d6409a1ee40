"""Password hashes: the cost a stored argon2 hash asks for is bounded before argon2 runs."""

from __future__ import annotations

import base64
import resource

import pytest
from argon2 import PasswordHasher

from cheeseboard.services.users import (
    MAX_MEMORY_KIB,
    MAX_PARALLELISM,
    MAX_TIME_COST,
    hash_password,
    pwhash_problem,
    verify_password,
)

# The parameters of docs/devpi-protocol.md §3 (argon2-cffi's defaults, which devpi-server stores)
# and of passlib's defaults; the tags are made up (only the parameters are read).
DEVPI_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$"
    "c29tZXNhbHRzb21lc2FsdA$Lz8mV0o2j8jV0YqJvWyQJc1nS4o3m0bK4o0u2hZ0W2Y"
)
PASSLIB_HASH = "$argon2i$v=19$m=512,t=2,p=2$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4Q"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _hostile(memory_kib: int, time_cost: int, parallelism: int) -> str:
    """A well-formed argon2id hash with the given parameters (its tag is never computed)."""
    params = f"m={memory_kib},t={time_cost},p={parallelism}"
    return f"$argon2id$v=19${params}${_b64(b'0123456789abcdef')}${_b64(bytes(32))}"


def test_default_hashes_are_within_bounds() -> None:
    """Our own, devpi's and passlib's default parameters are admitted."""
    assert pwhash_problem(hash_password("secret")) is None
    assert pwhash_problem(DEVPI_HASH) is None
    assert pwhash_problem(PASSLIB_HASH) is None
    assert verify_password(hash_password("secret"), "secret")


@pytest.mark.parametrize(
    ("pwhash", "message"),
    [
        (
            _hostile(1024 * 1024, 3, 4),
            f"pwhash memory cost m=1048576 exceeds the bound of {MAX_MEMORY_KIB} KiB",
        ),
        (_hostile(65536, 1000, 4), f"pwhash time cost t=1000 exceeds the bound of {MAX_TIME_COST}"),
        (_hostile(65536, 3, 64), f"pwhash parallelism p=64 exceeds the bound of {MAX_PARALLELISM}"),
        ("$argon2id$v=19$m=65536", "pwhash is not a valid argon2 hash"),
        ("plaintext", "pwhash must be an argon2 hash"),
        ("$argon2id$" + "x" * 600, "pwhash is longer than 512 characters"),
    ],
)
def test_problem_names_the_bound(pwhash: str, message: str) -> None:
    """Each refused hash gets a message naming the parameter and its bound."""
    assert pwhash_problem(pwhash) == message


@pytest.mark.parametrize(
    "hasher",
    [
        PasswordHasher(time_cost=MAX_TIME_COST + 1, memory_cost=8, parallelism=1),
        PasswordHasher(time_cost=1, memory_cost=8 * (MAX_PARALLELISM + 1), parallelism=9),
    ],
    ids=["time_cost", "parallelism"],
)
def test_hash_beyond_bounds_is_refused_even_with_the_right_password(
    hasher: PasswordHasher,
) -> None:
    """A stored hash beyond a bound never verifies: the check is refused, not run."""
    pwhash = hasher.hash("right")
    assert verify_password(pwhash, "right") is False


def test_gigabyte_hash_is_refused_without_running_argon2() -> None:
    """The review's hash (m = 1 GiB) costs no memory: argon2 would have raised the peak by 1 GiB."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert verify_password(_hostile(1024 * 1024, 4, 1), "anything") is False
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 64 * 1024, f"peak memory grew by {after - before} KiB"
