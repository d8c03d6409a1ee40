"""The sign-in counter (attempts reserved before they are checked) on a clock the test moves,
and the gate that lets password checks take turns."""

from __future__ import annotations

import asyncio

import pytest

from cheeseboard.services.throttle import LoginThrottle, TooManyAttempts, VerifyGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attempts_in_flight_count_before_any_has_failed() -> None:
    """A burst of concurrent guesses gets exactly ``limit`` reservations, the rest 429 at once."""
    throttle = LoginThrottle(limit=3, window=60, clock=Clock())
    attempts = [throttle.reserve("alice", "10.0.0.1") for _ in range(3)]
    with pytest.raises(TooManyAttempts) as blocked:
        throttle.reserve("alice", "10.0.0.1")
    assert blocked.value.retry_after == 1
    for attempt in attempts:
        attempt.failed()
    with pytest.raises(TooManyAttempts) as blocked:
        throttle.reserve("alice", "10.0.0.1")
    assert blocked.value.retry_after == 60  # now the failures hold the slots for the window


def test_a_user_is_blocked_from_one_address_only_until_the_window_passes() -> None:
    """Guesses for root from one address do not lock root out from its own address."""
    clock = Clock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        throttle.reserve("root", "10.0.0.66").failed()
        clock.now += 1
    with pytest.raises(TooManyAttempts) as blocked:
        throttle.reserve("root", "10.0.0.66")
    assert blocked.value.retry_after == 57  # now t=1003; the first failure leaves at t=1060
    assert "user 'root'" in blocked.value.message
    throttle.reserve("root", "10.0.0.1").succeeded()  # the owner, elsewhere
    clock.now = 1060.5
    throttle.reserve("root", "10.0.0.66").abandoned()  # one failure left the window


def test_an_address_is_blocked_after_failures_over_many_names() -> None:
    """Spraying names from one address stops at ``address_limit`` failures; others are free."""
    throttle = LoginThrottle(limit=3, window=60, clock=Clock(), address_limit=4)
    for name in ("a", "b", "c", "d"):
        throttle.reserve(name, "10.0.0.9").failed()
    with pytest.raises(TooManyAttempts) as blocked:
        throttle.reserve("e", "10.0.0.9")
    assert "address 10.0.0.9" in blocked.value.message
    throttle.reserve("e", "10.0.0.10").failed()
    assert LoginThrottle(limit=3, window=60).address_limit == 15  # the default factor


def test_success_clears_the_pair_and_gives_the_slot_back_but_not_the_address() -> None:
    """A right password frees its slot and clears its pair; the address keeps its failures."""
    throttle = LoginThrottle(limit=2, window=60, clock=Clock(), address_limit=3)
    throttle.reserve("alice", "10.0.0.1").failed()
    attempt = throttle.reserve("alice", "10.0.0.1")
    attempt.succeeded()
    attempt.failed()  # settled once: later calls do nothing
    throttle.reserve("alice", "10.0.0.1").failed()
    throttle.reserve("alice", "10.0.0.1").abandoned()  # one failure since the success
    throttle.reserve("bob", "10.0.0.1").failed()
    with pytest.raises(TooManyAttempts):
        throttle.reserve("carol", "10.0.0.1")  # the address kept all three failures
    assert not throttle._pending  # every slot was given back or became a failure


def test_memory_is_bounded() -> None:
    """Past ``max_keys`` tracked keys the stalest are dropped."""
    throttle = LoginThrottle(limit=1, window=60, clock=Clock(), max_keys=100)
    for number in range(1000):
        throttle.reserve(f"user{number}", None).failed()
    assert len(throttle._failures) == 100
    with pytest.raises(TooManyAttempts):
        throttle.reserve("user999")


async def test_checks_take_turns_per_user_per_address_and_per_core() -> None:
    """At most one check per user and per address at a time, and ``slots`` in all."""
    gate = VerifyGate(slots=2)
    running: set[str] = set()
    seen: list[set[str]] = []

    async def check(name: str, user: str, address: str) -> None:
        async with gate.turn(user, address):
            running.add(name)
            seen.append(set(running))
            await asyncio.sleep(0.01)
            running.discard(name)

    jobs = [check(f"alice{n}", "alice", f"10.0.0.{n}") for n in range(5)]
    jobs += [check(f"addr{n}", f"user{n}", "10.9.9.9") for n in range(5)]
    jobs += [check(f"other{n}", f"other{n}", f"10.1.0.{n}") for n in range(5)]
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=10)
    assert len(seen) == 15
    for together in seen:
        assert len(together) <= 2
        assert sum(name.startswith("alice") for name in together) <= 1
        assert sum(name.startswith("addr") for name in together) <= 1
    assert gate.busy == 0  # idle locks are dropped
