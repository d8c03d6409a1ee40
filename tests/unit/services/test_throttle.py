"""The failed sign-in counter, on a clock the test moves."""

from __future__ import annotations

import pytest

from cheeseboard.services.throttle import LoginThrottle, TooManyAttempts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_a_user_after_the_limit_until_the_window_passes() -> None:
    clock = Clock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        throttle.check("alice", "10.0.0.1")
        throttle.failed("alice", "10.0.0.1")
        clock.now += 1
    with pytest.raises(TooManyAttempts) as blocked:
        throttle.check("alice", "10.0.0.2")  # another address: the user is blocked
    assert blocked.value.status == 429
    assert blocked.value.retry_after == 57  # now t=1003; the first failure leaves at t=1060
    assert "user 'alice'" in blocked.value.message
    clock.now = 1060.5
    throttle.check("alice", "10.0.0.2")  # one failure left the window


def test_blocks_an_address_whatever_name_it_tries() -> None:
    clock = Clock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for name in ("a", "b", "c"):
        throttle.failed(name, "10.0.0.9")
    with pytest.raises(TooManyAttempts) as blocked:
        throttle.check("d", "10.0.0.9")
    assert "address 10.0.0.9" in blocked.value.message
    throttle.check("d", "10.0.0.10")  # other addresses are not affected


def test_success_clears_the_user_but_not_the_address() -> None:
    throttle = LoginThrottle(limit=2, window=60, clock=Clock())
    throttle.failed("alice", "10.0.0.1")
    throttle.succeeded("alice")
    throttle.failed("alice", "10.0.0.2")
    throttle.check("alice", "10.0.0.3")  # one failure since the success
    throttle.failed("bob", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        throttle.check("carol", "10.0.0.1")  # the address kept its first failure


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle(limit=1, window=60, clock=Clock(), max_keys=100)
    for number in range(1000):
        throttle.failed(f"user{number}", None)
    assert len(throttle._failures) == 100
    with pytest.raises(TooManyAttempts):
        throttle.check("user999")
