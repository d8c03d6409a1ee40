"""Mirror file downloads: one upstream transfer per file, shared by every client asking for it.

The transfer runs as its own task, so a client hanging up does not cancel it. Bytes go into a
staged blob; readers follow that growing file. A reader never sends a file's last byte before the
size and sha256 have been verified, so no client ever receives a complete bad file: on a mismatch
the connection is cut and nothing is stored. Readers start only once there is a byte to send, so a
transfer failing before that is answered with a clean error rather than a started, empty answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from cheeseboard.mirror.errors import UpstreamError, UpstreamNotFound
from cheeseboard.store.blobs import (
    BlobMismatch,
    BlobMissing,
    BlobStore,
    BlobStoreError,
    FileBlobWriter,
)

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024

# Called after the blob is committed: (blob sha256, size, path of the stored blob).
OnStored = Callable[[str, int, Path], Awaitable[None]]


class Body(Protocol):
    """Where the bytes come from: an upstream file, or an object in the bucket."""

    @property
    def size(self) -> int | None: ...

    @property
    def chunks(self) -> AsyncIterator[bytes]: ...


class DownloadFailed(Exception):
    """Raised to readers when the transfer failed; ``reason`` says why."""

    def __init__(self, reason: str, not_found: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_found = not_found


class Download:
    """One upstream file transfer and the state its readers follow."""

    def __init__(
        self,
        url: str,
        expected_sha256: str | None,
        expected_size: int | None,
        from_bucket: bool = False,
    ) -> None:
        self.url = url
        self.from_bucket = from_bucket  # copying a stored blob from S3, not fetching upstream
        self.expected_sha256 = expected_sha256
        self.size = expected_size
        self.written = 0
        self.tmp_path: Path | None = None
        self.blob_path: Path | None = None
        self.blob_sha256: str | None = None
        self.error: DownloadFailed | None = None
        # A reader can send a first byte (two are in: the last is held back), or the transfer
        # ended. Until then a failure is still a clean 502: no response has been started.
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self._progress = asyncio.Event()

    def _notify(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def run(
        self,
        source: AbstractAsyncContextManager[Body],
        writer: FileBlobWriter,
        blobs: BlobStore,
        on_stored: OnStored | None = None,
    ) -> None:
        """Copy ``source`` into ``writer`` (a new blob, or a local copy of one in the bucket)."""
        self.tmp_path = writer.tmp_path
        try:
            async with source as upstream:
                if self.size is None:
                    self.size = upstream.size
                async for chunk in upstream.chunks:
                    writer.write(chunk)
                    self.written += len(chunk)
                    if self.size is not None and self.written > self.size:
                        raise BlobMismatch(f"upstream sent more than {self.size} bytes")
                    if self.written > 1:
                        self.started.set()
                    self._notify()
            digest = await writer.commit(self.expected_sha256, self.size)
            self.blob_sha256 = digest
            self.blob_path = blobs.path(digest)
        except (UpstreamError, BlobMismatch, OSError, BlobStoreError) as exc:
            writer.abort()
            reason = exc.reason if isinstance(exc, UpstreamError) else str(exc)
            not_found = isinstance(exc, (UpstreamNotFound, BlobMissing))
            log.warning("download of %s failed: %s", self.url, reason)
            self.error = DownloadFailed(reason, not_found=not_found)
        except BaseException:
            writer.abort()
            self.error = DownloadFailed("download cancelled")
            raise
        finally:
            # Verified and durable: readers may send the last byte before the bookkeeping below.
            self.started.set()
            self.finished.set()
            self._notify()
        if self.blob_sha256 is not None and self.blob_path is not None and on_stored is not None:
            await on_stored(self.blob_sha256, self.written, self.blob_path)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Follow the transfer from the first byte; raises DownloadFailed if it fails."""
        await self.started.wait()
        if self.error is not None:
            raise self.error
        handle = None
        try:
            try:
                assert self.tmp_path is not None
                handle = open(self.tmp_path, "rb")  # noqa: SIM115 - closed in finally
            except FileNotFoundError:
                # Already committed (renamed) or aborted.
                await self.finished.wait()
                if self.error is not None or self.blob_path is None:
                    raise self.error or DownloadFailed("download vanished") from None
                handle = open(self.blob_path, "rb")  # noqa: SIM115
            sent = 0
            while True:
                progress = self._progress
                if self.error is not None:
                    raise self.error
                done = self.finished.is_set()
                # Hold back the final byte until the whole file is verified.
                limit = self.written if done else self.written - 1
                if sent < limit:
                    chunk = handle.read(min(limit - sent, _CHUNK))
                    if not chunk:
                        raise DownloadFailed("staged file shorter than written")
                    sent += len(chunk)
                    yield chunk
                    continue
                if done:
                    return
                await progress.wait()
        finally:
            if handle is not None:
                handle.close()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
