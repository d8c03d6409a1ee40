"""Single flight across tasks and worker processes: one holder per key at a time.

Inside a process an asyncio lock per key queues tasks; across processes an advisory lock on one of
a fixed set of lock files does (keys that hash to the same file merely wait for each other).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

_BUCKETS = 1024


class LockTimeout(TimeoutError):
    """Raised when another holder kept a key longer than the caller was willing to wait."""


class SharedLocks:
    """Keyed locks that hold across the worker processes sharing one data directory."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._local: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    def _bucket_path(self, key: str) -> Path:
        bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % _BUCKETS
        return self._directory / f"{bucket:04d}.lock"

    @asynccontextmanager
    async def hold(self, key: str, timeout: float) -> AsyncIterator[None]:
        """Hold ``key``; raise LockTimeout if it cannot be had within ``timeout`` seconds in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        lock = self._local.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            try:
                await asyncio.wait_for(lock.acquire(), timeout)
            except TimeoutError as exc:
                raise LockTimeout(key) from exc
            try:
                fd = os.open(self._bucket_path(key), os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    # One deadline for both waits, not ``timeout`` for each.
                    await self._flock(fd, key, deadline)
                    try:
                        yield
                    finally:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
            finally:
                lock.release()
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key]
                self._local.pop(key, None)

    @staticmethod
    async def _flock(fd: int, key: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if loop.time() >= deadline:
                    raise LockTimeout(key) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
