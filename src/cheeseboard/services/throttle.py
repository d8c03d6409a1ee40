"""Failed sign-ins, counted per (user, client address) and per address, and the gate that bounds
how many slow password checks run at once.

An attempt is counted *before* it is checked: ``LoginThrottle.reserve`` takes a slot, refused
with 429 and ``Retry-After`` once the recent failures plus the attempts still in flight reach the
limit, so a burst of concurrent guesses gets exactly ``limit`` checks, not one per request. A
failed check turns its slot into a failure that leaves the window after ``window`` seconds; a
successful one gives the slot back and clears that (user, address) count.

Two counts decide (each over the window):

- per (user, address): ``limit`` failures block that name *from that address* only. Someone
  guessing root's password from one address does not lock root out of sign-ins from another.
- per address: ``address_limit`` (by default ``ADDRESS_FACTOR`` times ``limit``) failures over
  any names block the address: it bounds password spraying across many names.

A user name alone is never blocked. What slows guessing of one name from many addresses is the
gate (``VerifyGate``): at most one password check in flight per user and per address, and at
most one per core server-wide (argon2 is CPU-bound: more at once only makes every sign-in
slower). Others wait for their turn; their slot is already reserved, so at most ``limit``
wait per (user, address).

Behind a reverse proxy every request comes from the proxy's address: ``--trusted-proxies``
makes the real client's address count instead (http/client_address.py). Credentials this process
has already verified keep working (auth.py remembers them), so someone failing on purpose cannot
lock out a signed-in client or a CI job already running.

The counts live in each worker process: with N workers an attacker gets at most N times the
limit. Memory is bounded: past ``max_keys`` tracked keys, the stalest are dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from cheeseboard.core import metrics
from cheeseboard.services.errors import CheeseboardError

# The client address of the request being served (set by the HTTP layer's middleware).
client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "client_address", default=None
)

ADDRESS_FACTOR = 5  # failures per address, over all names, as a multiple of the per-name limit


class TooManyAttempts(CheeseboardError):
    """Raised while a (user, address) pair or an address is blocked after failed sign-ins."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Attempt:
    """One reserved sign-in attempt; settle it exactly once (later calls do nothing)."""

    def __init__(self, throttle: LoginThrottle, keys: list[tuple[str, int]], pair: str) -> None:
        self._throttle = throttle
        self._keys = keys
        self._pair = pair
        self._open = True

    def _release(self) -> bool:
        if not self._open:
            return False
        self._open = False
        for key, _ in self._keys:
            self._throttle._unreserve(key)
        return True

    def failed(self) -> None:
        """The credentials were wrong: the slot becomes a failure."""
        if self._release():
            self._throttle._record_failure(self._keys)

    def succeeded(self) -> None:
        """The credentials were right: the slot is given back, the pair's failures cleared."""
        if self._release():
            self._throttle._failures.pop(self._pair, None)

    def abandoned(self) -> None:
        """The check did not finish (the client went away): the slot is given back."""
        self._release()


class LoginThrottle:
    """Failed and in-flight sign-in attempts per key (mutable, one per process)."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        address_limit: int | None = None,
    ) -> None:
        self.limit = limit
        self.address_limit = address_limit or limit * ADDRESS_FACTOR
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._pending: Counter[str] = Counter()

    def _keys(self, user: str, address: str | None) -> list[tuple[str, int]]:
        keys = [(f"pair\0{user}\0{address or ''}", self.limit)]
        if address:
            keys.append((f"addr\0{address}", self.address_limit))
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

    def reserve(self, user: str, address: str | None = None) -> Attempt:
        """Count an attempt of ``user`` from ``address`` before checking it; raises
        TooManyAttempts when the recent failures and the attempts in flight reach a limit."""
        now = self._clock()
        keys = self._keys(user, address)
        for key, limit in keys:
            times = self._recent(key, now)
            used = (len(times) if times else 0) + self._pending[key]
            if used >= limit:
                # In flight only: those settle within a password check; retry shortly.
                retry_after = max(1, math.ceil(times[0] + self.window - now)) if times else 1
                what = f"address {address}" if key.startswith("addr") else f"user {user!r}"
                metrics.count("login_throttled_total")
                raise TooManyAttempts(
                    f"too many failed sign-ins for {what}; try again in {retry_after} s",
                    retry_after,
                )
        for key, _ in keys:
            self._pending[key] += 1
        return Attempt(self, keys, keys[0][0])

    def _unreserve(self, key: str) -> None:
        self._pending[key] -= 1
        if self._pending[key] <= 0:
            del self._pending[key]

    def _record_failure(self, keys: list[tuple[str, int]]) -> None:
        now = self._clock()
        for key, limit in keys:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=limit)
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)


class _Turn:
    """A lock with the number of tasks holding or awaiting it (so idle locks can be dropped)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class VerifyGate:
    """At most one password check in flight per user and per address, and at most ``slots``
    (one per core) in the whole process (mutable; use within one event loop)."""

    def __init__(self, slots: int | None = None) -> None:
        self.slots = slots or os.cpu_count() or 1
        self._cpu = asyncio.Semaphore(self.slots)
        self._turns: dict[str, _Turn] = {}

    @asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[key]

    @asynccontextmanager
    async def turn(self, user: str, address: str | None) -> AsyncIterator[None]:
        """Wait for this user's and this address's turn, then for a core.

        Always user, then address, then core: a task holding an address lock never waits for
        a user lock, so no two tasks wait for each other."""
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._turn(f"user\0{user}"))
            if address:
                await stack.enter_async_context(self._turn(f"addr\0{address}"))
            await stack.enter_async_context(self._cpu)
            yield

    @property
    def busy(self) -> int:
        """Users and addresses with a check running or waiting (for tests and metrics)."""
        return len(self._turns)
