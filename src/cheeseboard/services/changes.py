"""Committed changes and their serials: how every worker learns what to invalidate.

A write logs which (index, project) it touched; after the commit the new serial is published in
the shared serial file. Each process compares that number with the last serial it applied (a memory
read) and, only when it moved, reads the new changelog rows and tells its listeners.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from cheeseboard.store import queries
from cheeseboard.store.db import Database
from cheeseboard.store.queries import Change
from cheeseboard.store.serial import SerialFile

Listener = Callable[[Change], Awaitable[None] | None]


class Transaction:
    """A write transaction that records what it changed."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.changes: list[Change] = []

    async def log(self, index_id: int | None, project: str | None, kind: str) -> int:
        serial = await queries.log_change(self.conn, index_id, project, kind)
        self.changes.append(Change(serial, index_id, project, kind))
        return serial


class ChangeFeed:
    """Publishes this process's changes and applies everyone's to local caches."""

    def __init__(self, db: Database, serial_file: SerialFile) -> None:
        self._db = db
        self._serial_file = serial_file
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self.applied = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        async with self._db.read() as conn:
            self.applied = await queries.max_serial(conn)
        self._serial_file.advance(self.applied)

    @property
    def serial(self) -> int:
        return max(self.applied, self._serial_file.latest())

    def behind(self) -> bool:
        """True when another process (or this one) committed something not yet applied here."""
        return self._serial_file.latest() > self.applied

    async def catch_up(self) -> None:
        async with self._lock:
            if not self.behind():
                return
            async with self._db.read() as conn:
                changes = await queries.changes_since(conn, self.applied)
            for change in changes:
                await self._apply(change)

    async def _apply(self, change: Change) -> None:
        for listener in self._listeners:
            outcome = listener(change)
            if inspect.isawaitable(outcome):
                await outcome
        self.applied = change.serial

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A write transaction; its changes are published and applied once it commits."""
        async with self._db.write() as conn:
            transaction = Transaction(conn)
            yield transaction
        if not transaction.changes:
            return
        self._serial_file.advance(transaction.changes[-1].serial)
        async with self._lock:
            if self.applied == transaction.changes[0].serial - 1:
                # Nothing from other processes in between: apply ours without reading them back.
                for change in transaction.changes:
                    await self._apply(change)
                return
        await self.catch_up()
