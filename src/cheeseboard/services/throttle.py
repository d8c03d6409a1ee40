"""Failed sign-ins, counted per user and per client address, so passwords cannot be guessed.

After ``limit`` failures within ``window`` seconds, a user name (whoever tries it) or an address
(whatever name it tries) is refused with 429 and ``Retry-After`` until the oldest failure leaves
the window. Credentials this process has already verified keep working (auth.py remembers them),
so someone failing on purpose cannot lock out a signed-in client or a CI job already running.

The counts live in each worker process: with N workers an attacker gets at most N times the
limit. Memory is bounded: past ``max_keys`` tracked keys, the stalest are dropped.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from cheeseboard.services.errors import CheeseboardError

# The client address of the request being served (set by the HTTP layer's middleware).
client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "client_address", default=None
)


class TooManyAttempts(CheeseboardError):
    """Raised while a user name or an address is blocked after failed sign-ins."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LoginThrottle:
    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _keys(user: str, address: str | None) -> list[str]:
        keys = [f"user\0{user}"]
        if address:
            keys.append(f"addr\0{address}")
        return keys

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def check(self, user: str, address: str | None = None) -> None:
        """Raise TooManyAttempts if ``user`` or ``address`` is blocked now."""
        now = self._clock()
        for key in self._keys(user, address):
            times = self._recent(key, now)
            if times is not None and len(times) >= self.limit:
                retry_after = max(1, math.ceil(times[0] + self.window - now))
                what = f"user {user!r}" if key.startswith("user") else f"address {address}"
                raise TooManyAttempts(
                    f"too many failed sign-ins for {what}; try again in {retry_after} s",
                    retry_after,
                )

    def failed(self, user: str, address: str | None = None) -> None:
        now = self._clock()
        for key in self._keys(user, address):
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=self.limit)
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, user: str) -> None:
        """A correct password clears the user's count (not the address's)."""
        self._failures.pop(f"user\0{user}", None)
