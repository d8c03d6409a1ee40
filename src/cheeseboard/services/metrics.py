"""The server's metrics for a scrape: this worker's live values, the other workers' published
snapshots and gauges of the stores, in the Prometheus text format.

Staleness: another worker's counts reach a scrape at most ``PUBLISH_SECONDS`` (plus a write)
after they happen; the scraping worker's own are exact. A worker that crashes loses what it
counted since its last publication; one that stops cleanly publishes on its way out. Store
sizes are at most ``GAUGE_SECONDS`` old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cheeseboard.core import metrics
from cheeseboard.core.metrics_text import render
from cheeseboard.services.changes import ChangeFeed
from cheeseboard.settings import Settings
from cheeseboard.store.db import Database
from cheeseboard.store.metrics_files import SnapshotDirectory, server_directory
from cheeseboard.store.sizes import blob_totals, database_bytes

PUBLISH_SECONDS = 1.0
GAUGE_SECONDS = 30.0
log = logging.getLogger(__name__)


def run_directory(settings: Settings) -> Path:
    """Where the workers of one server publish their snapshots."""
    return server_directory(settings.layout.root / "run" / "metrics")


class MetricsService:
    """Publishes this worker's snapshot and answers scrapes for the whole server."""

    def __init__(self, settings: Settings, db: Database, changes: ChangeFeed) -> None:
        self._db = db
        self._changes = changes
        self._directory = SnapshotDirectory(run_directory(settings))
        self._gauges: dict[str, float] = {}
        self._gauges_at = -GAUGE_SECONDS

    async def publish(self) -> None:
        """Write this worker's snapshot if it changed. The snapshot is taken on the event loop,
        where the counting happens, and written on a thread."""
        snapshot = metrics.snapshot()
        try:
            await asyncio.to_thread(self._directory.publish, snapshot)
        except OSError as exc:  # a full disk must not stop the worker; the scrape says less
            log.warning("cannot publish metrics: %s", exc)

    async def publish_every(self, seconds: float = PUBLISH_SECONDS) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self.publish()

    async def _store_gauges(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._gauges_at >= GAUGE_SECONDS:
            size, files = await self._db.read(blob_totals)
            database = await self._db.read(database_bytes, self._db.url)
            self._gauges = {
                "blob_store_bytes": size,
                "blob_store_files": files,
                "database_bytes": database,
            }
            self._gauges_at = now
        return self._gauges

    async def scrape(self) -> str:
        """The whole server's metrics in the Prometheus text format (0.0.4)."""
        gauges = dict(await self._store_gauges())
        others, live = await asyncio.to_thread(self._directory.others)
        total = metrics.merge([metrics.snapshot(), others])
        gauges["serial"] = self._changes.serial
        gauges["workers"] = live + 1
        return render(total, gauges)


@asynccontextmanager
async def publishing(
    settings: Settings, db: Database, changes: ChangeFeed
) -> AsyncIterator[MetricsService]:
    """A MetricsService whose snapshot is published every ``PUBLISH_SECONDS`` while the block
    runs, and once more as it ends (a clean exit keeps every count)."""
    service = MetricsService(settings, db, changes)
    task = asyncio.create_task(service.publish_every())
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.publish()
