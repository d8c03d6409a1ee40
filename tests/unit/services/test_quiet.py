"""services/quiet.py: work that can wait runs after a pause in the requests that need the app,
and never waits beyond its bound."""

from __future__ import annotations

import asyncio
import time

from cheeseboard.services.quiet import Quiet


async def test_settled_returns_at_once_when_nothing_was_touched() -> None:
    quiet = Quiet(quiet_for=5, at_most=10)
    started = time.monotonic()
    await quiet.settled()
    assert time.monotonic() - started < 0.5
    assert quiet.last_touched == float("-inf")


async def test_settled_waits_for_a_pause_after_the_last_touch() -> None:
    quiet = Quiet(quiet_for=1.0, at_most=10)  # a pause far longer than a loaded loop's stalls
    quiet.touch()
    waiting = asyncio.create_task(quiet.settled())
    for _ in range(4):  # 0.4 s of requests: the pause starts after the last one
        await asyncio.sleep(0.1)
        assert not waiting.done()
        quiet.touch()
    last = quiet.last_touched
    await waiting
    assert time.monotonic() - last >= 1.0


async def test_settled_waits_at_most_its_bound_under_steady_load() -> None:
    quiet = Quiet(quiet_for=5, at_most=0.5)  # only the bound can end the wait
    started = time.monotonic()
    waiting = asyncio.create_task(quiet.settled())
    while not waiting.done():
        quiet.touch()
        await asyncio.sleep(0.02)
        assert time.monotonic() - started < 3, "settled() outwaited its bound"
    assert time.monotonic() - started >= 0.5
