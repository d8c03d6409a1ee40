"""When cached mirror files were last served, kept in memory and written in batches.

Least-recently-used eviction (``--mirror-cache-size``, services/retention.py) needs to know when
each cached file was last served, but a database write per download would put a write on the
hot path (http/hot.py answers stored files from memory). So each worker notes the time in a dict
(one assignment per request) and writes what it noted every ``FLUSH_SECONDS`` and when it
stops. The database is therefore up to that long behind: eviction may drop a file served
moments ago, which then costs one upstream fetch and nothing else; the scheduled eviction
flushes its own worker's times first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from cheeseboard.store import retention_rows
from cheeseboard.store.db import Database

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0
MAX_PENDING = 100_000  # files noted between two flushes; beyond, a flush is started at once


class AccessTimes:
    """File ids with their last use, noted per request and flushed in the background."""

    def __init__(self, db: Database, period: float = FLUSH_SECONDS) -> None:
        self._db = db
        self._period = period
        self._pending: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[int] | None = None

    def touch(self, file_id: int) -> None:
        """Note that a file was served now (cheap: no I/O)."""
        self._pending[file_id] = time.time()
        if self._task is None:
            self._start()
        elif len(self._pending) >= MAX_PENDING and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[int]) -> None:
        self._flushing = None

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside the server (a test calling services directly): flushed on close
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                await self.flush()
            except Exception as error:  # the next flush retries; serving never waits for it
                log.warning("writing last-use times of cached files failed: %s", error)

    async def flush(self) -> int:
        """Write the times noted so far; returns how many files were written."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        try:
            return await self._db.write(retention_rows.record_access, batch)
        except BaseException:
            for file_id, when in batch.items():  # kept for the next flush
                self._pending[file_id] = max(when, self._pending.get(file_id, 0.0))
            raise

    async def close(self) -> None:
        """Stop the timer and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as error:
            log.warning("writing last-use times of cached files at shutdown failed: %s", error)
