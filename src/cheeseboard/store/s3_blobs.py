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
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from cheeseboard.store.blobs import FileBlobStore, FileBlobWriter, check_sha256
from cheeseboard.store.s3 import S3Client, S3Location, S3NotFound, S3Object

_PUBLISH_CONCURRENCY = 8


def object_name(sha256: str) -> str:
    check_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class S3BlobStore:
    """The FileBlobStore interface over a bucket plus a local cache directory."""

    remote = True

    def __init__(self, cache: FileBlobStore, client: S3Client) -> None:
        self.cache = cache
        self.client = client
        self.root = cache.root
        self.tmp_dir = cache.tmp_dir
        self._fetches: dict[str, asyncio.Task[Path | None]] = {}

    def path(self, sha256: str) -> Path:
        """Where the local copy is (or would be)."""
        return self.cache.path(sha256)

    def writer(self) -> FileBlobWriter:
        """A new blob: in the bucket when ``commit`` returns, and in the local cache."""
        return FileBlobWriter(self.cache, publish=self._publish)

    def cache_writer(self) -> FileBlobWriter:
        """A local copy of a blob the bucket already has."""
        return FileBlobWriter(self.cache)

    async def _publish(self, staged: Path, sha256: str, size: int) -> None:
        name = object_name(sha256)
        if await self.client.head(name) == size:
            return  # content-addressed: the same name holds the same bytes
        await self.client.put_file(name, staged, size, sha256)

    def exists(self, sha256: str) -> bool:
        """Whether the local cache has the blob (``has`` asks the bucket too)."""
        return self.cache.exists(sha256)

    def claim(self, sha256: str) -> bool:
        return self.cache.claim(sha256)

    def local_path(self, sha256: str) -> Path | None:
        return self.cache.path(sha256) if self.cache.exists(sha256) else None

    async def has(self, sha256: str) -> bool:
        return self.cache.exists(sha256) or await self.client.head(object_name(sha256)) is not None

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

    def source(self, sha256: str) -> AbstractAsyncContextManager[S3Object]:
        """The object's bytes as a stream (``.size``, ``.chunks``), to fill the cache while
        clients are sent them."""
        return self.client.get(object_name(sha256))

    def presign(self, sha256: str, filename: str, expires: int) -> str:
        """A URL that lets its holder GET the blob, saved as ``filename``, for ``expires`` s."""
        return self.client.presign_get(object_name(sha256), expires, filename)

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        async with self.client.get(object_name(sha256), start, end) as obj:
            async for chunk in obj.chunks:
                yield chunk

    async def delete(self, sha256: str) -> None:
        await self.client.delete(object_name(sha256))
        await self.cache.delete(sha256)

    def clean_tmp(self) -> int:
        return self.cache.clean_tmp()


async def publish_local_blobs(url: str, cache: FileBlobStore, sha256s: Iterable[str]) -> int:
    """Put blobs of a local directory into the bucket of ``url`` (import); returns how many
    were not there yet."""
    limit = asyncio.Semaphore(_PUBLISH_CONCURRENCY)
    added = 0
    async with S3Client(S3Location.from_url(url)) as client:
        store = S3BlobStore(cache, client)

        async def publish(sha256: str) -> None:
            nonlocal added
            path = cache.path(sha256)
            size = path.stat().st_size
            async with limit:
                if await client.head(object_name(sha256)) != size:
                    await store._publish(path, sha256, size)
                    added += 1

        await asyncio.gather(*(publish(sha256) for sha256 in sha256s))
    return added
