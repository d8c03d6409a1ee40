"""Run retention (services/retention.py) every ``--retention-interval`` seconds in the server.

Every worker of every node runs the timer (ops/periodic.py), but a run happens once per interval
for the whole deployment: a worker runs only while it holds the shared lock and only when the
last run, recorded in the database, is older than 90% of the interval. Failures are logged and
retried at the next tick; serving never waits.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator

from cheeseboard.ops.periodic import periodically
from cheeseboard.services.container import AppServices
from cheeseboard.services.retention import RetentionReport, RetentionService
from cheeseboard.store import info

log = logging.getLogger(__name__)

LOCK_KEY = "retention"
LAST_RUN_KEY = "retention-last-run"
_DUE_FRACTION = 0.9  # runs closer together than this share of the interval are skipped
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


async def _run_now(services: AppServices) -> None:
    try:
        report = await run_if_due(services)
    except Exception as error:  # logged and retried: a failed run must not stop the server
        # One line, as for the advisories import: a full disk is the operator's, not a bug.
        log.warning("retention run failed: %s", error)
        return
    if report is not None and (report.evicted or report.removed or report.failed):
        log.info("%s", report.describe(dry_run=False))


@contextlib.asynccontextmanager
async def scheduled_retention(services: AppServices) -> AsyncIterator[None]:
    """Run the retention timer while the block runs (nothing with ``--retention-interval 0``)."""
    settings = services.settings
    if not settings.retention_interval:
        yield
        return
    job = functools.partial(_run_now, services)
    async with periodically(settings, settings.retention_interval, LOCK_KEY, job, _FIRST_TICK):
        yield
