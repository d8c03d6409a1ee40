"""Committed changes and their serials: how every worker learns what to invalidate.

A write logs which (index, project) it touched; after the commit the new serial is published in
the shared serial file. Each process compares that number with the last serial it applied (a memory
read) and, only when it moved, reads the new changelog rows and tells its listeners.

A row of a kind this version does not know (a newer node wrote it during a rolling upgrade) is
applied as a change to everything: every listener drops all it caches. A warning is logged once per
such kind; catching up never stops on it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Connection

from cheeseboard.core.changes import ChangeKind
from cheeseboard.store import changelog_rows, pg_changes
from cheeseboard.store.db import Database
from cheeseboard.store.records import Change
from cheeseboard.store.serial import SerialFile

log = logging.getLogger(__name__)

Listener = Callable[[Change], Awaitable[None] | None]
P = ParamSpec("P")
T = TypeVar("T")


class Transaction:
    """A write transaction that records what it changed; used on the database thread."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.changes: list[Change] = []

    def log(self, index_id: int | None, project: str | None, kind: ChangeKind) -> int:
        serial = changelog_rows.log_change(self.conn, index_id, project, kind)
        self.changes.append(Change(serial, index_id, project, kind))
        return serial


class Epochs:
    """Whether rows read before an ``await`` may still be cached after it.

    A request reads rows, awaits, and caches what it built from them. A change applied in between
    (caught up from another worker, or this one's) has already dropped the entry, so caching the
    older rows would serve them until the key changes again: an upload acknowledged to its client
    could stay missing from the page. Take a ``ticket()`` before the read and cache only while
    ``current(key, ticket)``; listeners ``bump(key)`` (``None``: everything) when they drop
    entries. The key may be learnt from the rows themselves. Keys share a fixed number of slots,
    so memory stays flat; a collision only skips caching once.
    """

    _SLOTS = 1024

    def __init__(self) -> None:
        self._clock = 0
        self._everything = 0  # clock of the last bump(None)
        self._slots = [0] * self._SLOTS  # clock of each slot's last bump

    def ticket(self) -> int:
        return self._clock

    def current(self, key: str, ticket: int) -> bool:
        return max(self._everything, self._slots[hash(key) % self._SLOTS]) <= ticket

    def bump(self, key: str | None) -> None:
        self._clock += 1
        if key is None:
            self._everything = self._clock
        else:
            self._slots[hash(key) % self._SLOTS] = self._clock


class ChangeFeed:
    """Publishes this process's changes and applies everyone's to local caches."""

    def __init__(self, db: Database, serial_file: SerialFile) -> None:
        self._db = db
        self._serial_file = serial_file
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._unknown_kinds: set[str] = set()  # warned about already
        self.applied = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        self.applied = await self._db.read(changelog_rows.max_serial)
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
            changes = await self._db.read(changelog_rows.changes_since, self.applied)
            for change in changes:
                await self._apply(change)

    async def _apply(self, change: Change) -> None:
        if not change.kind.known:
            change = self._widened(change)
        for listener in self._listeners:
            outcome = listener(change)
            if inspect.isawaitable(outcome):
                await outcome
        self.applied = change.serial

    def _widened(self, change: Change) -> Change:
        """An unknown kind may concern anything: the same change for no index and no project
        (every listener drops everything), with a warning the first time the kind is seen."""
        if change.kind.value not in self._unknown_kinds:
            self._unknown_kinds.add(change.kind.value)
            log.warning(
                "changelog serial %d has the kind %r, which this version does not know (written "
                "by a newer node?); each row of it drops everything cached",
                change.serial,
                change.kind.value,
            )
        return Change(change.serial, None, None, change.kind)

    async def write(
        self, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(transaction, ...)`` as a write transaction; once it commits, its changes are
        published to other processes and applied to this one's caches."""

        def run(conn: Connection) -> tuple[Transaction, T]:
            transaction = Transaction(conn)
            result = fn(transaction, *args, **kwargs)
            if transaction.changes:
                pg_changes.notify(conn, transaction.changes[-1].serial)  # other nodes
            return transaction, result

        transaction, result = await self._db.write(run)
        if not transaction.changes:
            return result
        self._serial_file.advance(transaction.changes[-1].serial)
        async with self._lock:
            if self.applied == transaction.changes[0].serial - 1:
                # Nothing from other processes in between: apply ours without reading them back.
                for change in transaction.changes:
                    await self._apply(change)
                return result
        await self.catch_up()
        return result
