"""Epochs: rows read before a change was applied must not be cached after it."""

from __future__ import annotations

from cheeseboard.services.changes import Epochs


def test_a_change_during_the_read_voids_the_ticket() -> None:
    epochs = Epochs()
    ticket = epochs.ticket()
    assert epochs.current("brie", ticket)
    epochs.bump("brie")  # applied while the request awaited its rows
    assert not epochs.current("brie", ticket)
    assert epochs.current("brie", epochs.ticket())  # a read started afterwards may cache


def test_other_projects_keep_their_tickets_unless_everything_changed() -> None:
    epochs = Epochs()
    ticket = epochs.ticket()
    epochs.bump("brie")
    # Another key stays cacheable unless it shares brie's slot (then it only skips once).
    others = [f"p{n}" for n in range(100)]
    assert sum(epochs.current(name, ticket) for name in others) >= 98
    epochs.bump(None)  # a change without a project (an index config) voids every ticket
    assert not any(epochs.current(name, ticket) for name in others)
    assert all(epochs.current(name, epochs.ticket()) for name in others)


def test_memory_stays_flat_with_many_keys() -> None:
    epochs = Epochs()
    for n in range(100_000):
        epochs.bump(f"project-{n}")
    assert len(epochs._slots) == Epochs._SLOTS
