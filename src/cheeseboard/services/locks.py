"""Single flight across tasks, worker processes and nodes: one holder per key at a time.

Inside a process an asyncio lock per key queues tasks, so at most one task per process competes
for the shared lock. Across processes the shared lock is an advisory lock: on one of a fixed set
of lock files in the data directory (one node), or PostgreSQL's ``pg_try_advisory_lock`` when the
metadata lives there (every node). Keys that hash to the same file or lock number merely wait for
each other. A PostgreSQL advisory lock belongs to its session, so a node that dies mid-fetch
releases its locks with its connections: nobody waits for a lease to run out.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

_BUCKETS = 1024
# pg_try_advisory_lock(int4, int4): this first number keeps our keys apart from other users of
# the same database (and from the one-bigint keys of store/db.py, a separate key space anyway).
_PG_LOCK_SPACE = 0x6362  # "cb"
_PG_IDLE_CONNECTIONS = 4


class LockTimeout(TimeoutError):
    """Raised when another holder kept a key longer than the caller was willing to wait."""


def _key_hash(key: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % buckets


async def _backoff(delay: float, key: str, deadline: float) -> float:
    """Sleep before the next try; LockTimeout once ``deadline`` (loop time) has passed."""
    if asyncio.get_running_loop().time() >= deadline:
        raise LockTimeout(key) from None
    await asyncio.sleep(delay)
    return min(delay * 2, 0.05)


class _CrossProcess(Protocol):
    async def acquire(self, key: str, deadline: float) -> Any: ...

    async def release(self, handle: Any) -> None: ...

    async def close(self) -> None: ...


class _FileLocks:
    """flock on ``<directory>/<bucket>.lock``: the worker processes of one data directory."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def bucket_path(self, key: str) -> Path:
        return self._directory / f"{_key_hash(key, _BUCKETS):04d}.lock"

    async def acquire(self, key: str, deadline: float) -> int:
        fd = os.open(self.bucket_path(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    delay = await _backoff(delay, key, deadline)
        except BaseException:
            os.close(fd)
            raise

    async def release(self, handle: int) -> None:
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)

    async def close(self) -> None:
        return None


class _PostgresLocks:
    """Session advisory locks on PostgreSQL: every node sharing the database."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._idle: list[Any] = []

    async def _connection(self) -> Any:
        import psycopg

        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    async def acquire(self, key: str, deadline: float) -> Any:
        number = _key_hash(key, 2**31)
        conn = await self._connection()
        try:
            delay = 0.005
            while True:
                cursor = await conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (_PG_LOCK_SPACE, number)
                )
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    return (conn, number)
                delay = await _backoff(delay, key, deadline)
        except BaseException:
            await conn.close()
            raise

    async def release(self, handle: Any) -> None:
        conn, number = handle
        try:
            await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_PG_LOCK_SPACE, number))
        except Exception:
            await conn.close()  # closing the session releases whatever it held
            return
        if len(self._idle) < _PG_IDLE_CONNECTIONS:
            self._idle.append(conn)
        else:
            await conn.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class SharedLocks:
    """Keyed locks that hold across worker processes (file locks) or nodes (PostgreSQL)."""

    def __init__(self, cross: _CrossProcess) -> None:
        self._cross = cross
        self._local: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    @classmethod
    def in_directory(cls, directory: Path) -> SharedLocks:
        return cls(_FileLocks(directory))

    @classmethod
    def on_postgres(cls, conninfo: str) -> SharedLocks:
        return cls(_PostgresLocks(conninfo))

    @asynccontextmanager
    async def hold(self, key: str, timeout: float) -> AsyncIterator[None]:
        """Hold ``key``; raise LockTimeout if it cannot be had within ``timeout`` seconds in all."""
        deadline = asyncio.get_running_loop().time() + timeout
        lock = self._local.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            try:
                await asyncio.wait_for(lock.acquire(), timeout)
            except TimeoutError as exc:
                raise LockTimeout(key) from exc
            try:
                # One deadline for both waits, not ``timeout`` for each.
                handle = await self._cross.acquire(key, deadline)
                try:
                    yield
                finally:
                    await asyncio.shield(self._cross.release(handle))
            finally:
                lock.release()
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key]
                self._local.pop(key, None)

    def _bucket_path(self, key: str) -> Path:
        """The lock file ``key`` maps to (file locks only; for tests)."""
        assert isinstance(self._cross, _FileLocks)
        return self._cross.bucket_path(key)

    async def close(self) -> None:
        await self._cross.close()
