"""Re-import ``--advisories-url`` every ``--advisories-interval`` seconds while the server runs.

Every worker process of every node runs the timer, but an import happens once per interval for
the whole deployment: a worker imports only while it holds a shared lock (file lock on one node,
PostgreSQL advisory lock across nodes) and only when the last import, recorded in the database,
is older than 90% of the interval. The import itself is the offline one (ops/advisories.py) in a
thread: it streams the source, commits in one transaction and logs the change, so every process
catches up as after ``cheeseboard-server advisories import``. Failures are logged and retried at
the next tick; serving never waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator

from cheeseboard.ops.advisories import LAST_IMPORT_KEY, AdvisoryImport, import_offline
from cheeseboard.services.locks import LockTimeout, SharedLocks
from cheeseboard.settings import Settings
from cheeseboard.store import info, pg_changes
from cheeseboard.store.db import engine_for

log = logging.getLogger(__name__)

LOCK_KEY = "advisories-import"
_DUE_FRACTION = 0.9  # imports closer together than this share of the interval are skipped
_MAX_TICK = 300.0  # seconds between checks at most
_FIRST_TICK = (0.5, 3.0)  # seconds after start-up: a new server imports soon


def _last_import(db_url: str) -> float | None:
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            value = info.get_info(conn, LAST_IMPORT_KEY)
    finally:
        engine.dispose()
    try:
        return float(value) if value else None
    except ValueError:
        return None


def import_if_due(settings: Settings, now: float | None = None) -> AdvisoryImport | None:
    """Import ``settings.advisories_url`` unless another process did within the interval."""
    assert settings.advisories_url is not None
    last = _last_import(settings.db_url)
    now = time.time() if now is None else now
    if last is not None and now - last < settings.advisories_interval * _DUE_FRACTION:
        return None
    return import_offline(
        settings.advisories_url, settings.db_url, settings.layout.serial, settings.ca_bundle
    )


async def _tick(settings: Settings, locks: SharedLocks) -> None:
    try:
        async with locks.hold(LOCK_KEY, timeout=0.2):
            report = await asyncio.to_thread(import_if_due, settings)
    except LockTimeout:
        return  # another process is importing
    except Exception as error:  # logged and retried: a feed outage must not stop the server
        log.warning("advisories import from %s failed: %s", settings.advisories_url, error)
        return
    if report is not None:
        log.info("advisories imported from %s: %s", settings.advisories_url, report.describe())


async def _run(settings: Settings, locks: SharedLocks) -> None:
    await asyncio.sleep(random.uniform(*_FIRST_TICK))
    period = max(1.0, min(settings.advisories_interval / 4, _MAX_TICK))
    while True:
        await _tick(settings, locks)
        await asyncio.sleep(period * random.uniform(0.8, 1.2))


@contextlib.asynccontextmanager
async def scheduled_imports(settings: Settings) -> AsyncIterator[None]:
    """Run the re-import timer while the block runs (nothing without ``--advisories-url``)."""
    if settings.advisories_url is None:
        yield
        return
    if pg_changes.is_postgres(settings.db_url):
        locks = SharedLocks.on_postgres(pg_changes.libpq_url(settings.db_url))
    else:
        locks = SharedLocks.in_directory(settings.layout.locks)
    task = asyncio.create_task(_run(settings, locks))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await locks.close()
