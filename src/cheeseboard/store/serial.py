"""A cross-process "latest serial" counter in a tiny memory-mapped file.

Every worker process checks it on each request for the price of a memory read, so cached pages are
invalidated as soon as another process commits a change, without a database query per request.
Writers raise it under an exclusive file lock after their transaction commits; it never goes back.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class SerialFile:
    """The shared counter: ``latest()`` to read, ``advance(n)`` to publish a committed serial."""

    def __init__(self, path: Path) -> None:
        self._path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                # Extending with ftruncate cannot clobber a value another process has just
                # written after our size check (writing zeros could reset its counter).
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)

    def latest(self) -> int:
        value: int = struct.unpack_from(_FORMAT, self._map, 0)[0]
        return value

    def advance(self, serial: int) -> None:
        """Publish ``serial`` unless a larger one is already there."""
        with open(self._path, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if serial > self.latest():
                    struct.pack_into(_FORMAT, self._map, 0, serial)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()


def publish(path: Path, serial: int) -> None:
    """Raise the counter at ``path`` to ``serial`` from a tool outside the server, so the
    server processes of this node learn of its commit at once (nothing to do if the data
    directory has gone)."""
    if not path.parent.is_dir():
        return
    serial_file = SerialFile(path)
    try:
        serial_file.advance(serial)
    finally:
        serial_file.close()
