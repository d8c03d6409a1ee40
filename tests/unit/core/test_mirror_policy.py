"""Freshness decisions for mirrored project pages."""

from __future__ import annotations

import pytest

from cheeseboard.core.mirror_policy import CachedState, Decision, decide

NOW = 1_700_000_000.0
EXPIRY = 1800.0


def state(age: float | None, found: bool = True) -> CachedState:
    """A cached state checked ``age`` seconds before NOW (None = never fetched)."""
    return CachedState(None if age is None else NOW - age, found)


@pytest.mark.parametrize("age", [0.0, 1.0, EXPIRY - 0.001])
def test_fresh_page_is_served(age: float) -> None:
    """Younger than the expiry: serve from cache."""
    assert decide(state(age), NOW, EXPIRY, offline=False) == Decision("serve", "fresh")


def test_fresh_not_found_is_served_from_cache() -> None:
    """A fresh upstream 404 is remembered too: no new upstream request."""
    assert decide(state(10, found=False), NOW, EXPIRY, offline=False).action == "serve"


@pytest.mark.parametrize("age", [EXPIRY, EXPIRY + 1, 10 * EXPIRY])
@pytest.mark.parametrize("found", [True, False])
def test_expired_page_is_refreshed(age: float, found: bool) -> None:
    """At or past the expiry: ask upstream again, saying how old the page was."""
    decision = decide(state(age, found), NOW, EXPIRY, offline=False)
    assert decision.action == "refresh"
    assert f"cached {age:.0f}s ago" in decision.reason
    assert "expiry 1800s" in decision.reason


def test_never_fetched_is_refreshed() -> None:
    """Nothing cached yet: fetch it."""
    assert decide(state(None), NOW, EXPIRY, offline=False) == Decision("refresh", "not cached yet")


def test_clock_going_backwards_refreshes() -> None:
    """A check time in the future (clock went back) is not trusted as fresh."""
    assert decide(state(-60), NOW, EXPIRY, offline=False).action == "refresh"


def test_zero_expiry_always_refreshes() -> None:
    """With expiry 0 every request goes upstream."""
    assert decide(state(0), NOW, 0.0, offline=False).action == "refresh"


@pytest.mark.parametrize("age", [0.0, 10 * EXPIRY, -60.0])
def test_offline_serves_any_cached_page(age: float) -> None:
    """Offline, a cached page is served however old it is."""
    assert decide(state(age), NOW, EXPIRY, offline=True).action == "offline-serve"


@pytest.mark.parametrize("cached", [state(None), state(10, found=False), state(None, found=False)])
def test_offline_without_page_is_missing(cached: CachedState) -> None:
    """Offline with nothing cached (or a cached 404): not found, without contacting upstream."""
    assert decide(cached, NOW, EXPIRY, offline=True) == Decision(
        "offline-missing", "offline mode: nothing cached"
    )
