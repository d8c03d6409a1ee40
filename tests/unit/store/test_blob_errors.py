"""Both blob stores fail with the BlobStore interface's own errors (store/blobs.py), never with
a concrete store's: services and the HTTP error table know only BlobMissing and
BlobStoreUnavailable. The bucket's errors keep their message (http/errors.py shows it)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from cheeseboard.store.blobs import BlobMissing, BlobStoreUnavailable, FileBlobStore
from cheeseboard.store.s3 import S3Client, S3NotFound, S3Object, S3Unavailable
from cheeseboard.store.s3_blobs import S3BlobStore

SHA = hashlib.sha256(b"x").hexdigest()
OUTAGE = S3Unavailable("GET", "ab/cd/x", None, "ConnectionRefused", "no route")


async def _failing_chunks() -> AsyncIterator[bytes]:
    yield b"first"
    raise OUTAGE


class FakeClient:
    """Answers like a bucket that lacks every object, or one that is down mid-stream."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def head(self, name: str) -> int | None:
        if self.error:
            raise self.error
        return None

    def get(
        self, name: str, start: int = 0, end: int | None = None
    ) -> AbstractAsyncContextManager[S3Object]:
        return self._get()

    @asynccontextmanager
    async def _get(self) -> AsyncIterator[S3Object]:
        if self.error:
            raise self.error
        yield S3Object(10, 10, None, _failing_chunks())

    async def put_file(self, name: str, path: Path, size: int, sha256_hex: str) -> None:
        raise OUTAGE

    async def delete(self, name: str) -> None:
        raise OUTAGE


def _store(tmp_path: Path, error: Exception | None) -> S3BlobStore:
    client: Any = FakeClient(error)
    return S3BlobStore(FileBlobStore(tmp_path), cast(S3Client, client))


async def test_a_missing_object_is_blob_missing(tmp_path: Path) -> None:
    store = _store(tmp_path, S3NotFound("GET", "k", 404, "NoSuchKey", ""))
    with pytest.raises(BlobMissing):
        async with store.source(SHA):
            pass


async def test_an_outage_is_unavailable_with_the_bucket_message(tmp_path: Path) -> None:
    store = _store(tmp_path, OUTAGE)
    with pytest.raises(BlobStoreUnavailable) as caught:
        await store.has(SHA)
    assert str(caught.value) == str(OUTAGE)
    assert caught.value.__cause__ is OUTAGE
    with pytest.raises(BlobStoreUnavailable):
        await store.local(SHA)
    with pytest.raises(BlobStoreUnavailable):
        await store.delete(SHA)
    with pytest.raises(BlobStoreUnavailable):
        async for _ in store.read(SHA):
            pass


async def test_an_outage_while_streaming_or_publishing_is_unavailable(tmp_path: Path) -> None:
    store = _store(tmp_path, None)
    with pytest.raises(BlobStoreUnavailable):
        async with store.source(SHA) as body:
            async for _ in body.chunks:
                pass
    writer = store.writer()
    writer.write(b"x")
    with pytest.raises(BlobStoreUnavailable):
        await writer.commit(SHA)
    assert not store.exists(SHA)  # nothing half-stored


async def test_a_local_store_lacking_a_blob_raises_blob_missing(tmp_path: Path) -> None:
    with pytest.raises(BlobMissing):
        async with FileBlobStore(tmp_path).source(SHA):
            pass
