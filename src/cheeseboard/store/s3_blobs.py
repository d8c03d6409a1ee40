"""Blobs in an S3 bucket, shared by every node, with the node's data directory as a local cache.

The bucket is the truth: a new blob is verified, then put in the bucket, and only then installed
locally and named by a database row, so another node never finds a row whose bytes it cannot get.
The local copy is a cache: a node fetches a blob from the bucket the first time it needs it (its
clients are sent the bytes while they arrive, services/files.py) and serves it from disk after
that, with sendfile and Range support, without asking S3 again. Object names mirror the local
layout: ``<prefix>/ab/cd/<sha256>``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path

from cheeseboard.store.blobs import (
    BlobBody,
    BlobMissing,
    BlobStoreUnavailable,
    FileBlobStore,
    FileBlobWriter,
    check_sha256,
)
from cheeseboard.store.s3 import S3Client, S3Error, S3Location, S3NotFound, S3Object

_PUBLISH_CONCURRENCY = 8
_TRIM_TO = 0.9  # a trim leaves room, so the next one is not due at the next download
log = logging.getLogger(__name__)


def object_name(sha256: str) -> str:
    check_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


@contextmanager
def _blob_errors() -> Iterator[None]:
    """The bucket's errors as the BlobStore interface's (store/blobs.py), same message."""
    try:
        yield
    except S3NotFound as exc:
        raise BlobMissing(str(exc)) from exc
    except S3Error as exc:
        raise BlobStoreUnavailable(str(exc)) from exc


class _Body:
    """An object being read from the bucket, its errors translated while it streams."""

    def __init__(self, obj: S3Object) -> None:
        self._obj = obj

    @property
    def size(self) -> int | None:
        return self._obj.size

    @property
    def chunks(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        with _blob_errors():
            async for chunk in self._obj.chunks:
                yield chunk


class S3BlobStore:
    """The FileBlobStore interface over a bucket plus a local cache directory. S3 errors
    leave it as BlobMissing or BlobStoreUnavailable (store/blobs.py)."""

    remote = True

    def __init__(
        self,
        cache: FileBlobStore,
        client: S3Client,
        trimmer: CacheTrimmer | None = None,
        trim_interval: float = 60.0,
    ) -> None:
        self.cache = cache
        self.client = client
        self.root = cache.root
        self.tmp_dir = cache.tmp_dir
        self._fetches: dict[str, asyncio.Task[Path | None]] = {}
        self._trimmer = trimmer
        self._trim_interval = trim_interval
        self._trimming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the bucket's connections and start trimming the local cache (if a trimmer)."""
        await self.client.start()
        if self._trimmer is not None:
            self._trimming = asyncio.create_task(self._trimmer.run(self._trim_interval))

    async def close(self) -> None:
        if self._trimming is not None:
            self._trimming.cancel()
            await asyncio.gather(self._trimming, return_exceptions=True)
            self._trimming = None
        await self.client.close()

    def path(self, sha256: str) -> Path:
        """Where the local copy is (or would be)."""
        return self.cache.path(sha256)

    def writer(self) -> FileBlobWriter:
        """A new blob: in the bucket when ``commit`` returns, and in the local cache."""
        return FileBlobWriter(self.cache, publish=self._publish_blob)

    def cache_writer(self) -> FileBlobWriter:
        """A local copy of a blob the bucket already has."""
        return FileBlobWriter(self.cache)

    async def _publish_blob(self, staged: Path, sha256: str, size: int) -> None:
        with _blob_errors():
            await self._publish(staged, sha256, size)

    async def _publish(self, staged: Path, sha256: str, size: int) -> None:
        # Always a PUT, even if the bucket has these bytes: it makes the object young again, so
        # a concurrent gc (services/bucket_gc.py) keeps it until the new row names it.
        await self.client.put_file(object_name(sha256), staged, size, sha256)

    def exists(self, sha256: str) -> bool:
        """Whether the local cache has the blob (``has`` asks the bucket too)."""
        return self.cache.exists(sha256)

    def claim(self, sha256: str) -> bool:
        return self.cache.claim(sha256)

    def local_path(self, sha256: str) -> Path | None:
        return self.cache.path(sha256) if self.cache.exists(sha256) else None

    async def has(self, sha256: str) -> bool:
        if self.cache.exists(sha256):
            return True
        with _blob_errors():
            return await self.client.head(object_name(sha256)) is not None

    async def local(self, sha256: str) -> Path | None:
        """A local copy, fetched from the bucket if needed (once per blob at a time in a
        process); None if the bucket does not have it."""
        if self.cache.claim(sha256):
            return self.cache.path(sha256)
        task = self._fetches.get(sha256)
        if task is None:
            task = asyncio.create_task(self._fetch(sha256))
            self._fetches[sha256] = task
            task.add_done_callback(lambda _: self._fetches.pop(sha256, None))
        with _blob_errors():
            return await asyncio.shield(task)

    async def _fetch(self, sha256: str) -> Path | None:
        writer = self.cache_writer()
        try:
            try:
                async with self.client.get(object_name(sha256)) as obj:
                    async for chunk in obj.chunks:
                        writer.write(chunk)
            except S3NotFound:
                writer.abort()
                return None
            await writer.commit(sha256)  # a corrupted object is refused (BlobMismatch)
        except BaseException:
            writer.abort()
            raise
        return self.cache.path(sha256)

    def source(self, sha256: str) -> AbstractAsyncContextManager[BlobBody]:
        """The object's bytes as a stream (``.size``, ``.chunks``), to fill the cache while
        clients are sent them."""
        return self._source(sha256)

    @asynccontextmanager
    async def _source(self, sha256: str) -> AsyncIterator[BlobBody]:
        with _blob_errors():
            async with self.client.get(object_name(sha256)) as obj:
                yield _Body(obj)

    def presign(self, sha256: str, filename: str, expires: int) -> str | None:
        """A URL that lets its holder GET the blob, saved as ``filename``, for ``expires`` s."""
        with _blob_errors():
            return self.client.presign_get(object_name(sha256), expires, filename)

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        with _blob_errors():
            async with self.client.get(object_name(sha256), start, end) as obj:
                async for chunk in obj.chunks:
                    yield chunk

    async def delete(self, sha256: str) -> None:
        with _blob_errors():
            await self.client.delete(object_name(sha256))
        await self.cache.delete(sha256)

    def clean_tmp(self) -> int:
        return self.cache.clean_tmp()


async def publish_local_blobs(url: str, cache: FileBlobStore, sha256s: Iterable[str]) -> int:
    """Put blobs of a local directory into the bucket of ``url`` (import); returns how many
    were not there yet. Existing ones are put again, which keeps a concurrent gc off them."""
    limit = asyncio.Semaphore(_PUBLISH_CONCURRENCY)
    added = 0
    location = S3Location.from_url(url)  # ValueError for a URL that names no bucket
    with _blob_errors():  # the bucket's failures as BlobStoreError, like every blob store's
        async with S3Client(location) as client:
            store = S3BlobStore(cache, client)

            async def publish(sha256: str) -> None:
                nonlocal added
                path = cache.path(sha256)
                size = path.stat().st_size
                async with limit:
                    if await client.head(object_name(sha256)) != size:
                        added += 1
                    await store._publish(path, sha256, size)  # also makes existing ones young

            await asyncio.gather(*(publish(sha256) for sha256 in sha256s))
    return added


class CacheTrimmer:
    """Keeps a node's local copies of bucket blobs within a byte budget, least recently used
    first (a copy's mtime is refreshed when it is served, at most hourly: FileService._stored).

    Dropping a copy is always safe: the bucket has the blob, and the next request for it copies
    it again. One worker per node trims at a time (a lock file); the others skip their turn.
    """

    def __init__(self, cache: FileBlobStore, budget: int, lock_path: Path) -> None:
        self._cache = cache
        self._budget = budget
        self._lock_path = lock_path

    def _copies(self) -> list[tuple[float, int, str]]:
        found: list[tuple[float, int, str]] = []
        for first in os.scandir(self._cache.root):
            if len(first.name) != 2 or not first.is_dir(follow_symlinks=False):
                continue  # .tmp and anything else that is not a blob directory
            for second in os.scandir(first.path):
                if not second.is_dir(follow_symlinks=False):
                    continue
                for entry in os.scandir(second.path):
                    if len(entry.name) == 64 and entry.is_file(follow_symlinks=False):
                        stat = entry.stat(follow_symlinks=False)
                        found.append((stat.st_mtime, stat.st_size, entry.path))
        return found

    def trim_once(self) -> tuple[int, int]:
        """Remove the least recently used copies if over budget: (files, bytes) removed."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0, 0  # another worker of this node is at it
            copies = self._copies()
            total = sum(size for _, size, _ in copies)
            if total <= self._budget:
                return 0, 0
            removed = freed = 0
            for _, size, path in sorted(copies):
                if total - freed <= self._budget * _TRIM_TO:
                    break
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed += 1
                freed += size
            return removed, freed
        finally:
            os.close(fd)

    async def run(self, interval: float) -> None:
        """Trim now and every ``interval`` seconds, until cancelled."""
        while True:
            started = time.monotonic()
            try:
                removed, freed = await asyncio.to_thread(self.trim_once)
            except OSError as exc:
                log.warning("trimming the local blob cache failed: %s", exc)
            else:
                if removed:
                    log.info(
                        "local blob cache over %d bytes: dropped %d copies (%d bytes) in %.2f s",
                        self._budget,
                        removed,
                        freed,
                        time.monotonic() - started,
                    )
            await asyncio.sleep(interval)
