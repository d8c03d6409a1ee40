"""Commits made on other nodes, learnt from PostgreSQL: LISTEN/NOTIFY, with polling as a fallback.

Every write transaction that logs a change sends ``NOTIFY cheeseboard_changes, '<serial>'``; it is
delivered when the transaction commits. Each worker listens on its own connection and publishes the
serial in its node's serial file, where the per-request check (a memory read) finds it. Polling the
newest serial every second catches anything a notification missed: a dropped connection, or a pooler
in transaction mode that does not pass notifications on. No request ever waits for the database.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cheeseboard.store.serial import SerialFile

log = logging.getLogger(__name__)

CHANNEL = "cheeseboard_changes"
POLL_SECONDS = 1.0
_RETRY_MAX = 10.0


def is_postgres(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0].lower() in ("postgresql", "postgres")


def libpq_url(url: str) -> str:
    """The connection string psycopg takes, from a SQLAlchemy-style URL."""
    scheme, rest = url.split("://", 1)
    del scheme  # postgres://, postgresql://, postgresql+psycopg:// all mean the same server
    return "postgresql://" + rest


def notify(conn: Connection, serial: int) -> None:
    """Announce ``serial`` to every node once this transaction commits (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :serial)"),
            {
                "channel": CHANNEL,
                "serial": str(serial),
            },
        )


class SerialWatcher:
    """Keeps a node's serial file at the newest serial committed by any node."""

    def __init__(
        self, conninfo: str, serial_file: SerialFile, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._conninfo = conninfo
        self._serial_file = serial_file
        self._poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="serial-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _publish(self, value: object) -> None:
        try:
            serial = int(str(value))
        except ValueError:
            log.warning("ignoring a change notification that is not a serial: %.40r", value)
            return
        self._serial_file.advance(serial)

    async def _run(self) -> None:
        import psycopg

        delay = 0.5
        while True:
            try:
                conn: Any = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = 0.5
                    while True:
                        cursor = await conn.execute("SELECT max(serial) FROM changelog")
                        row = await cursor.fetchone()
                        self._publish(row[0] if row and row[0] is not None else 0)
                        async for note in conn.notifies(timeout=self._poll_seconds):
                            self._publish(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("watching for changes failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
