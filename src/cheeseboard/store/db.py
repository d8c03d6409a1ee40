"""The metadata database: engines, migrations, and read/write transactions.

SQLite (the embedded default) runs in WAL mode. Write transactions start with BEGIN IMMEDIATE so
concurrent writers from several worker processes queue on the busy timeout instead of failing with
"database is locked" on a lock upgrade; within a process an asyncio lock keeps one writer at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cheeseboard.core import metrics

_BUSY_TIMEOUT_MS = 30_000


def _sync_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def _async_url(url: str) -> str:
    if url.startswith("sqlite://"):
        return url.replace("sqlite://", "sqlite+aiosqlite://", 1)
    return url


def _sqlite_pragmas(dbapi_connection: Any, begin: str) -> None:
    # Let us issue BEGIN ourselves (pysqlite's implicit transactions defeat BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _make_engine(url: str, begin: str) -> AsyncEngine:
    # Writes go through one kept-open connection (one writer at a time anyway); reads get a pool.
    pool = {"pool_size": 1, "max_overflow": 0} if begin else {"pool_size": 8, "max_overflow": 8}
    engine = create_async_engine(_async_url(url), **pool)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, begin)

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin or "BEGIN")

    return engine


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (runs before workers start)."""
    engine = create_engine(_sync_url(url))
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, "")

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("cheeseboard.store") / "migrations")
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


class Database:
    """Connections for reading (concurrent) and writing (one at a time per process)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._reader = _make_engine(url, "")
        self._writer = _make_engine(url, "BEGIN IMMEDIATE") if url.startswith("sqlite") else None
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        metrics.count("db_reads_total")
        async with self._reader.connect() as connection:
            yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on normal exit, rolled back on an exception."""
        engine = self._writer or self._reader
        metrics.count("db_writes_total")
        async with self._write_lock, engine.begin() as connection:
            yield connection

    async def close(self) -> None:
        await self._reader.dispose()
        if self._writer is not None:
            await self._writer.dispose()
