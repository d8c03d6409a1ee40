"""Run retention (services/retention.py) every ``--retention-interval`` seconds in the server.

Every worker of every node runs the timer, but a run happens once per interval for the whole
deployment: a worker runs only while it holds a shared lock (file lock on one node, PostgreSQL
advisory lock across nodes) and only when the last run, recorded in the database, is older than
90% of the interval. Failures are logged and retried at the next tick; serving never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator

from cheeseboard.services.container import AppServices
from cheeseboard.services.locks import LockTimeout, SharedLocks
from cheeseboard.services.retention import RetentionReport, RetentionService
from cheeseboard.store import info, pg_changes

log = logging.getLogger(__name__)

LOCK_KEY = "retention"
LAST_RUN_KEY = "retention-last-run"
_DUE_FRACTION = 0.9  # runs closer together than this share of the interval are skipped
_MAX_TICK = 300.0  # seconds between checks at most
_FIRST_TICK = (1.0, 5.0)  # seconds after start-up


async def run_if_due(services: AppServices, now: float | None = None) -> RetentionReport | None:
    """Run retention unless another process did within the interval."""
    interval = services.settings.retention_interval
    now = time.time() if now is None else now
    last = await services.db.read(info.get_info, LAST_RUN_KEY)
    with contextlib.suppress(ValueError):
        if last is not None and now - float(last) < interval * _DUE_FRACTION:
            return None
    report = await RetentionService.of(services).run()
    await services.db.write(info.set_info, LAST_RUN_KEY, repr(now))
    return report


async def _tick(services: AppServices, locks: SharedLocks) -> None:
    try:
        async with locks.hold(LOCK_KEY, timeout=0.2):
            report = await run_if_due(services)
    except LockTimeout:
        return  # another process is running it
    except Exception:  # logged and retried: a failed run must not stop the server
        log.exception("retention run failed")
        return
    if report is not None and (report.evicted or report.removed or report.failed):
        log.info("%s", report.describe(dry_run=False))


async def _run(services: AppServices, locks: SharedLocks) -> None:
    await asyncio.sleep(random.uniform(*_FIRST_TICK))
    period = max(1.0, min(services.settings.retention_interval / 4, _MAX_TICK))
    while True:
        await _tick(services, locks)
        await asyncio.sleep(period * random.uniform(0.8, 1.2))


@contextlib.asynccontextmanager
async def scheduled_retention(services: AppServices) -> AsyncIterator[None]:
    """Run the retention timer while the block runs (nothing with ``--retention-interval 0``)."""
    settings = services.settings
    if not settings.retention_interval:
        yield
        return
    if pg_changes.is_postgres(settings.db_url):
        locks = SharedLocks.on_postgres(pg_changes.libpq_url(settings.db_url))
    else:
        locks = SharedLocks.in_directory(settings.layout.locks)
    task = asyncio.create_task(_run(services, locks))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await locks.close()
