"""A job every process of a deployment runs on a timer, one process at a time.

Every worker of every node ticks; a tick runs the job only while it holds a shared lock (a file
lock on one node, a PostgreSQL advisory lock across nodes) that it waits for at most 0.2 s, so a
tick that loses the race just waits for the next. Whether the job is due (its last run, kept in
the database) is the job's own check. Ticks come every quarter of the interval (at most
``MAX_TICK`` apart), jittered so that processes do not tick in step. Used by the advisories
re-import (ops/advisory_schedule.py) and retention (ops/retention_schedule.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from cheeseboard.services.locks import LockTimeout, SharedLocks
from cheeseboard.settings import Settings
from cheeseboard.store import pg_changes

MAX_TICK = 300.0  # seconds between ticks at most
LOCK_WAIT = 0.2  # seconds a tick waits for the lock before leaving the run to its holder


def shared_locks(settings: Settings) -> SharedLocks:
    """The locks every process of this deployment shares."""
    if pg_changes.is_postgres(settings.db_url):
        return SharedLocks.on_postgres(pg_changes.libpq_url(settings.db_url))
    return SharedLocks.in_directory(settings.layout.locks)


async def _ticks(
    interval: float,
    first_tick: tuple[float, float],
    lock_key: str,
    locks: SharedLocks,
    job: Callable[[], Awaitable[None]],
) -> None:
    await asyncio.sleep(random.uniform(*first_tick))
    period = max(1.0, min(interval / 4, MAX_TICK))
    while True:
        with contextlib.suppress(LockTimeout):  # another process holds it: it runs the job
            async with locks.hold(lock_key, timeout=LOCK_WAIT):
                await job()
        await asyncio.sleep(period * random.uniform(0.8, 1.2))


@contextlib.asynccontextmanager
async def periodically(
    settings: Settings,
    interval: float,
    lock_key: str,
    job: Callable[[], Awaitable[None]],
    first_tick: tuple[float, float] = (1.0, 5.0),
) -> AsyncIterator[None]:
    """Tick ``job`` under the shared lock ``lock_key`` while the block runs. ``job`` logs and
    swallows its own failures (a failing job must not stop the server); the first tick comes
    ``first_tick`` seconds (a random point in that range) after the start."""
    locks = shared_locks(settings)
    task = asyncio.create_task(_ticks(interval, first_tick, lock_key, locks, job))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await locks.close()
