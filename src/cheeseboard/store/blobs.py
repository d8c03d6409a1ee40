"""Content-addressed blob storage: a local directory, alone or as the cache of an S3 bucket.

Every write is staged in a local temporary file while it is hashed, so readers can follow a file
that is still arriving, and nothing reaches its final name unless its size and sha256 check out.
With S3 (store/s3_blobs.py) a verified blob is published to the bucket before its local copy is
installed, so no database row can name a blob the bucket does not have.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"[0-9a-f]{64}")  # fullmatch: "$" accepts a trailing newline
_CHUNK = 256 * 1024


# Called with (staged file, sha256, size) once a blob is verified, before it is installed locally.
Publish = Callable[[Path, str, int], Awaitable[None]]


class BlobMismatch(ValueError):
    """Raised when staged bytes do not have the size or sha256 they were expected to have."""


class BlobStoreError(Exception):
    """What a BlobStore raises when the store itself fails; services and the HTTP error table
    (http/errors.py) know these, never a concrete store's own errors."""


class BlobMissing(BlobStoreError):
    """The store does not have the blob (a bucket without the object)."""


class BlobStoreUnavailable(BlobStoreError):
    """The store failed or could not be reached (a bucket's outage): worth a retry later."""


class BlobWriter(Protocol):
    """A blob being written: append bytes, then commit under its sha256 or abort."""

    tmp_path: Path
    size: int

    def write(self, data: bytes) -> None: ...

    async def commit(
        self, expected_sha256: str | None = None, expected_size: int | None = None
    ) -> str: ...

    def abort(self) -> None: ...


class BlobBody(Protocol):
    """A blob's bytes on their way: the size, if known, and the bytes in pieces."""

    @property
    def size(self) -> int | None: ...

    @property
    def chunks(self) -> AsyncIterator[bytes]: ...


class BlobStore(Protocol):
    """Where file bytes live, addressed by their sha256: FileBlobStore, or S3BlobStore (a bucket
    with a local cache). ``path`` is always local; ``local`` fetches into it when needed.

    Services use stores through this interface only, with no ``isinstance`` on a concrete store
    above store/ (README.md, "Design notes"); what only a bucket can do answers "nothing to do"
    here. A store's own failures surface as BlobMissing or BlobStoreUnavailable (a full local
    disk stays an OSError).
    """

    remote: bool
    """Whether the blobs live elsewhere and local copies come and go (a bucket)."""

    def path(self, sha256: str) -> Path: ...

    def writer(self) -> FileBlobWriter:
        """Put a new blob: stored (in the bucket too, if any) when ``commit`` returns."""
        ...

    def cache_writer(self) -> FileBlobWriter:
        """Fill a local copy of a blob the store already has (see ``source``)."""
        ...

    def source(self, sha256: str) -> AbstractAsyncContextManager[BlobBody]:
        """The stored blob as a stream, to fill a local copy while clients are sent it."""
        ...

    def presign(self, sha256: str, filename: str, expires: int) -> str | None:
        """A URL that lets its holder GET the blob as ``filename`` for ``expires`` seconds;
        None if the store has no such URLs (a local directory)."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether there is a local copy (cheap; no network)."""
        ...

    def claim(self, sha256: str) -> bool: ...

    def local_path(self, sha256: str) -> Path | None: ...

    async def local(self, sha256: str) -> Path | None: ...

    async def has(self, sha256: str) -> bool: ...

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...

    async def delete(self, sha256: str) -> None: ...

    def clean_tmp(self) -> int: ...

    async def start(self) -> None:
        """Start the store's background work (trimming a bucket's local cache), if it has any."""
        ...

    async def close(self) -> None:
        """Stop the background work and release connections."""
        ...


def hash_file(path: Path, on_chunk: Callable[[int], None] | None = None) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks (``on_chunk(size)`` after each)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return digest.hexdigest(), size


def copy_hashed(
    src: Path,
    dst: Path,
    on_chunk: Callable[[int], None] | None = None,
    *,
    exclusive: bool = False,
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (fsynced), hashing on the way: sha256 and size of the copy.

    Export, import and backup check what they copy against the sha256 it should have; hashing
    while copying reads every byte once.
    """
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as reader, dst.open("xb" if exclusive else "wb") as writer:
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), size


def check_sha256(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


class FileBlobWriter:
    """Stage bytes in ``<root>/.tmp`` while hashing them."""

    def __init__(self, store: FileBlobStore, publish: Publish | None = None) -> None:
        self._store = store
        self._publish = publish
        self.tmp_path = store.tmp_dir / f"{uuid.uuid4().hex}.part"
        self._file = open(self.tmp_path, "wb", buffering=0)  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> str:
        """sha256 of the bytes written so far."""
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    async def commit(
        self, expected_sha256: str | None = None, expected_size: int | None = None
    ) -> str:
        """Verify, fsync and move into place; return the sha256. Raises BlobMismatch."""
        digest = self._hash.hexdigest()
        try:
            if expected_size is not None and expected_size != self.size:
                raise BlobMismatch(f"expected {expected_size} bytes, got {self.size}")
            if expected_sha256 is not None and expected_sha256.lower() != digest:
                raise BlobMismatch(f"expected sha256 {expected_sha256}, got {digest}")
            await asyncio.to_thread(os.fsync, self._file.fileno())
            self._file.close()
            if self._publish is not None:
                await self._publish(self.tmp_path, digest, self.size)
            await asyncio.to_thread(self._store.install, self.tmp_path, digest)
        except BaseException:
            self.abort()
            raise
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class _LocalBody:
    size: int
    chunks: AsyncIterator[bytes]


class FileBlobStore:
    """Blobs at ``<root>/ab/cd/<sha256>``; fsync + rename, so a crash leaves no half file."""

    remote = False  # every blob is here: nothing to fetch, nothing to redirect to

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def writer(self) -> FileBlobWriter:
        return FileBlobWriter(self)

    def cache_writer(self) -> FileBlobWriter:
        return FileBlobWriter(self)

    def source(self, sha256: str) -> AbstractAsyncContextManager[BlobBody]:
        """The local blob as a stream (raises BlobMissing if it is not here)."""
        return self._source(sha256)

    @asynccontextmanager
    async def _source(self, sha256: str) -> AsyncIterator[BlobBody]:
        try:
            size = self.path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob {sha256} is not in {self.root}") from exc
        yield _LocalBody(size, self.read(sha256))

    def presign(self, sha256: str, filename: str, expires: int) -> str | None:
        return None  # nothing to redirect to: the server sends local files itself

    async def start(self) -> None:
        pass  # nothing runs in the background

    async def close(self) -> None:
        pass  # no connections

    def install(self, tmp_path: Path, sha256: str) -> None:
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_path, target)
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def claim(self, sha256: str) -> bool:
        """Mark an existing blob as in use (fresh mtime) before a new row names it.

        ``gc`` keeps young blobs, so a blob claimed here survives a collection that runs while
        the row is being written. False if the blob is not there (then store it again).
        """
        try:
            os.utime(self.path(sha256))
        except FileNotFoundError:
            return False
        return True

    def local_path(self, sha256: str) -> Path | None:
        return self.path(sha256)

    async def local(self, sha256: str) -> Path | None:
        """A local path of the blob, marked in use (``claim``); None if it is nowhere."""
        return self.path(sha256) if self.claim(sha256) else None

    async def has(self, sha256: str) -> bool:
        return self.exists(sha256)

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``start``..``end`` (inclusive; None = to the end)."""
        remaining = None if end is None else end - start + 1
        with open(self.path(sha256), "rb") as handle:
            handle.seek(start)
            while remaining is None or remaining > 0:
                chunk = handle.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def clean_tmp(self) -> int:
        """Remove staged files left by a crash; returns how many. Call only at startup."""
        removed = 0
        for leftover in self.tmp_dir.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed
