"""When a worker last took a request it had to work for, so that background work that can wait
runs after a burst of such requests instead of inside it.

A cold install asks for dozens of uncached pages and files at once; each HTML-only page starts a
JSON API fetch and a second write (services/mirror.py's facts), which took the same core and the
same database writer as the requests the client was waiting for (issue 19: a cold ``uv`` install
took 0.62 s with them and 0.50 s without, medians of 8 alternating runs). Requests the hot path
answers from memory (http/hot.py) do not count: they cost microseconds.
"""

from __future__ import annotations

import asyncio
import time

QUIET_FOR = 0.2
"""Seconds without a request that needed the app before waiting work goes ahead."""
AT_MOST = 3.0
"""Seconds waiting work waits at most: under steady load it runs anyway, beside the requests."""


class Quiet:
    """``touch()`` when a request needs more than memory; ``await settled()`` before work
    that can wait."""

    def __init__(self, quiet_for: float = QUIET_FOR, at_most: float = AT_MOST) -> None:
        self._quiet_for = quiet_for
        self._at_most = at_most
        self._last = float("-inf")

    def touch(self) -> None:
        self._last = time.monotonic()

    @property
    def last_touched(self) -> float:
        """``time.monotonic()`` of the last ``touch``; minus infinity before the first."""
        return self._last

    async def settled(self) -> None:
        """Return once ``quiet_for`` seconds have passed since the last ``touch``, or after
        ``at_most`` seconds, whichever comes first."""
        deadline = time.monotonic() + self._at_most
        while True:
            now = time.monotonic()
            wait = min(self._last + self._quiet_for, deadline) - now
            if wait <= 0:
                return
            await asyncio.sleep(wait)
