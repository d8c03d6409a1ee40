"""Freshness decisions for mirrored project pages: serve, refresh, serve stale, or not found.

The policy is pure: it gets the cached state and the clock, and returns a decision with a reason
that logs and response headers can carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["serve", "refresh", "offline-serve", "offline-missing"]


@dataclass(frozen=True, slots=True)
class CachedState:
    """What we hold for a mirror project: when upstream was last asked, and whether it existed."""

    checked_at: float | None  # wall-clock seconds; None = never fetched
    found: bool  # False = upstream said 404 at checked_at


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str


def decide(state: CachedState, now: float, expiry: float, offline: bool) -> Decision:
    """Decide what to do with a request for a mirrored project."""
    if offline:
        if state.checked_at is not None and state.found:
            return Decision("offline-serve", "offline mode: cached page")
        return Decision("offline-missing", "offline mode: nothing cached")
    if state.checked_at is None:
        return Decision("refresh", "not cached yet")
    age = now - state.checked_at
    if age >= expiry or age < 0:
        return Decision("refresh", f"cached {age:.0f}s ago, expiry {expiry:.0f}s")
    return Decision("serve", "fresh")
