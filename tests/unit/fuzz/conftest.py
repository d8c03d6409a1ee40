"""Property-based and fuzz tests of everything a client's bytes reach before any check."""

from __future__ import annotations

import pytest

from tests.unit.fuzz.counting import show_counts


@pytest.fixture(autouse=True, scope="session")
def _fuzz_summary(pytestconfig: pytest.Config) -> None:
    show_counts(pytestconfig)
