"""The metadata database: engines, migrations, and transactions run as plain functions.

Each transaction is one synchronous function of a SQLAlchemy Core ``Connection``, run on a database
thread: one thread hop per transaction instead of one per statement (a cold mirror page went from
~9 ms of SQL to ~1 ms), and no transaction can stay open across an ``await`` on the network.
Writes run on a single writer thread, so a process never competes with itself for the write lock.

SQLite (the embedded default) runs in WAL mode. Write transactions start with BEGIN IMMEDIATE so
concurrent writers from several worker processes queue on the busy timeout instead of failing with
"database is locked" on a lock upgrade.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from cheeseboard import __version__
from cheeseboard.core import metrics

_BUSY_TIMEOUT_MS = 30_000
_READ_THREADS = 4

P = ParamSpec("P")
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any) -> None:
    # Let us issue BEGIN ourselves (pysqlite's implicit transactions defeat BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _disk_full(exc: OperationalError) -> bool:
    """SQLite's SQLITE_FULL, PostgreSQL's disk_full (SQLSTATE 53100)."""
    orig = exc.orig
    sqlite_full = getattr(orig, "sqlite_errorcode", None) == 13
    return sqlite_full or "53100" in (
        getattr(orig, "pgcode", None),
        getattr(orig, "sqlstate", None),
    )


# PostgreSQL: every write transaction first takes this transaction-scoped advisory lock, so writes
# from all workers and all nodes run one at a time, as SQLite's BEGIN IMMEDIATE makes them. Write
# transactions are short (no network inside one), and a package index writes rarely; in return
# every transaction function stays free of retry loops and write-skew reasoning.
WRITE_LOCK_KEY = 0x63686565  # "chee"
MIGRATION_LOCK_KEY = 0x63686566  # held by a node's migration; the others wait, then find it done


def engine_url(url: str) -> str:
    """Our driver for a plain ``postgresql://`` URL: psycopg 3 (the sync driver for our threads)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def _make_engine(url: str, begin: str, pool_size: int) -> Engine:
    sqlite = url.startswith("sqlite")
    engine = create_engine(
        engine_url(url),
        pool_size=pool_size,
        max_overflow=0,
        # Connections move between the threads of our executors, one at a time.
        connect_args={"check_same_thread": False} if sqlite else {},
    )
    if sqlite:

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection)

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

    elif begin == "BEGIN IMMEDIATE":  # the writer engine on PostgreSQL

        @event.listens_for(engine, "begin")
        def _on_pg_begin(connection: Connection) -> None:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

    return engine


def engine_for(url: str, write: bool = False) -> Engine:
    """One-connection engine for offline tools (export, import, backup)."""
    return _make_engine(url, "BEGIN IMMEDIATE" if write else "BEGIN", 1)


class SchemaTooNew(Exception):
    """The database schema is newer than this version knows: an older node after an upgrade."""


# ``revision = "0005"`` and ``down_revision = "0004"`` (or None) in a migration's source.
_REVISION_LINE = re.compile(
    r"""^(down_)?revision(?:\s*:[^=\n]*)?\s*=\s*(?:"([^"\n]*)"|'([^'\n]*)'|None)\s*$""",
    re.MULTILINE,
)


def head_revision() -> str | None:
    """The newest migration's revision, read from the migration files' text; None when that
    text does not name exactly one head (then ``migrate`` leaves the question to alembic).

    Reading a handful of small files costs far less than importing alembic (about a tenth of
    the import time of ``serve`` on the shared 2-core machine), which a start on a current
    schema then never needs."""
    revisions: set[str] = set()
    parents: set[str] = set()
    versions = resources.files("cheeseboard.store") / "migrations" / "versions"
    for entry in versions.iterdir():
        if not entry.name.endswith(".py") or entry.name.startswith("__"):
            continue
        found = {
            match.group(1) or "": match.group(2) or match.group(3)
            for match in _REVISION_LINE.finditer(entry.read_text(encoding="utf-8"))
        }
        if not found.get(""):
            return None  # a migration we cannot read: let alembic decide
        revisions.add(found[""] or "")
        if found.get("down_"):
            parents.add(found["down_"] or "")
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revisions(engine: Engine) -> set[str] | None:
    """What ``alembic_version`` holds; None if the table is not there (a new database)."""
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return {str(row[0]) for row in rows}
    except DBAPIError:
        return None


def schema_is_current(url: str) -> bool:
    """True if the database is at the newest migration: one read, no alembic import."""
    head = head_revision()
    if head is None:
        return False
    engine = _make_engine(url, "BEGIN", 1)
    try:
        return _stored_revisions(engine) == {head}
    finally:
        engine.dispose()


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (runs before workers start).

    A schema already at the newest revision (every start but the first after an upgrade) is
    found so with one read, and alembic is not even imported."""
    if schema_is_current(url):
        return
    _upgrade(url)


def _upgrade(url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    engine = _make_engine(url, "BEGIN IMMEDIATE", 1)
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("cheeseboard.store") / "migrations")
    )
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Nodes starting at once: one migrates, the others wait here and then find it
                # done.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                if "Can't locate revision" not in str(exc):
                    raise
                raise SchemaTooNew(
                    "the database was migrated by a newer cheeseboard than this one "
                    f"({__version__}): upgrade this server (a node of a cluster must run the "
                    "version the others run)"
                ) from None
    finally:
        engine.dispose()


class Database:
    """Run read transactions concurrently and write transactions one at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._reader = _make_engine(url, "BEGIN", _READ_THREADS)
        self._writer = _make_engine(url, "BEGIN IMMEDIATE", 1)
        self._read_threads = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="db-read")
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="db-write")

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(connection, ...)`` in a read transaction (a consistent snapshot)."""
        metrics.count("db_reads_total")
        call = functools.partial(self._run, self._reader, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._read_threads, call)

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(connection, ...)`` in a write transaction: committed if it returns, else rolled
        back. Once started it completes even if the awaiting task is cancelled."""
        metrics.count("db_writes_total")
        call = functools.partial(self._run, self._writer, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._write_thread, call)

    @staticmethod
    def _run(
        engine: Engine,
        fn: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        try:
            with engine.begin() as connection:
                return fn(connection, *args, **kwargs)
        except OperationalError as exc:
            if _disk_full(exc):
                raise OSError(errno.ENOSPC, f"the database cannot grow: {exc.orig}") from exc
            raise

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        self._reader.dispose()
        self._writer.dispose()
