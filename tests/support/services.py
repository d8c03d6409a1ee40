"""Tests that need a real service (Docker, PostgreSQL, S3, Chromium): what to do when it is missing.

On a developer machine a missing service skips its tests with the reason. In CI,
``CHEESEBOARD_REQUIRE_ALL=1`` turns that skip into a failure, so a broken install line can never
hide behind a row of skips.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ALL_ENV = "CHEESEBOARD_REQUIRE_ALL"


def require_all() -> bool:
    """Whether every service must be present (``CHEESEBOARD_REQUIRE_ALL=1``)."""
    return os.environ.get(REQUIRE_ALL_ENV) == "1"


def service_missing(reason: str) -> NoReturn:
    """Skip the current test (or fixture) because of ``reason``; fail instead in CI."""
    if require_all():
        pytest.fail(f"{reason} ({REQUIRE_ALL_ENV}=1: required services must be present)")
    pytest.skip(reason)
