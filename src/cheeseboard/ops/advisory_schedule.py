"""Re-import ``--advisories-url`` every ``--advisories-interval`` seconds while the server runs.

Every worker process of every node runs the timer (ops/periodic.py), but an import happens once per
interval for the whole deployment: a worker imports only while it holds the shared lock and only
when the last import, recorded in the database, is older than 90% of the interval. The import itself
is the offline one (ops/advisories.py) in a thread: it streams the source, commits in one
transaction and logs the change, so every process catches up as after ``cheeseboard-server
advisories import``. Failures are logged and retried at the next tick; serving never waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator

from cheeseboard.ops.advisories import LAST_IMPORT_KEY, AdvisoryImport, import_offline
from cheeseboard.ops.periodic import periodically
from cheeseboard.settings import Settings
from cheeseboard.store import info
from cheeseboard.store.db import engine_for

log = logging.getLogger(__name__)

LOCK_KEY = "advisories-import"
_DUE_FRACTION = 0.9  # imports closer together than this share of the interval are skipped
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


async def _import_now(settings: Settings) -> None:
    try:
        report = await asyncio.to_thread(import_if_due, settings)
    except Exception as error:  # logged and retried: a feed outage must not stop the server
        log.warning("advisories import from %s failed: %s", settings.advisories_url, error)
        return
    if report is not None:
        log.info("advisories imported from %s: %s", settings.advisories_url, report.describe())


@contextlib.asynccontextmanager
async def scheduled_imports(settings: Settings) -> AsyncIterator[None]:
    """Run the re-import timer while the block runs (nothing without ``--advisories-url``)."""
    if settings.advisories_url is None:
        yield
        return
    job = functools.partial(_import_now, settings)
    async with periodically(settings, settings.advisories_interval, LOCK_KEY, job, _FIRST_TICK):
        yield
