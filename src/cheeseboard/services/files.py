"""Release files and their PEP 658 metadata: from the blob store, or fetched from upstream once.

File rows are looked up from memory after the first request, so a cached file costs no database
query. Mirror files not yet stored are fetched by a shared Download; a file whose size or sha256
disagrees with what upstream advertised is never stored or served complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cheeseboard.archives.wheels import extract_wheel_metadata
from cheeseboard.core import metrics
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import is_safe_filename, parse_dist_filename, version_sort_key
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.mirror.errors import UpstreamError
from cheeseboard.mirror.outbound import OutboundPolicy
from cheeseboard.mirror.parse import UpstreamLink
from cheeseboard.services.access_times import AccessTimes
from cheeseboard.services.changes import ChangeFeed, Epochs, Transaction
from cheeseboard.services.downloads import Download, DownloadFailed, sha256_of
from cheeseboard.services.errors import NotFound, UpstreamFailed
from cheeseboard.services.indexes import mirror_config
from cheeseboard.services.locks import SharedLocks
from cheeseboard.services.mirror import mirror_policy
from cheeseboard.settings import Settings
from cheeseboard.store import project_rows, retention_rows
from cheeseboard.store.blobs import BlobStore
from cheeseboard.store.db import Database
from cheeseboard.store.records import Change, FileRecord, IndexRecord

log = logging.getLogger(__name__)

_CACHE_TOUCH_AFTER = 3600.0  # a served local copy of a bucket blob is marked used this often
_DOWNLOAD_LOCK_WAIT = 3600.0  # another worker may be fetching a large file; wait for it


def fetch_failed(record: FileRecord, download: Download) -> UpstreamFailed:
    """The 502 for a failed transfer, naming where the bytes were asked for (the upstream's
    host, or the blob store) and the reason in our own words."""
    reason = download.error.reason if download.error else "no file"
    where = "the blob store" if download.from_bucket else urlsplit(download.url).netloc
    return UpstreamFailed(f"fetching {record.filename} from {where} failed: {reason}")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file whose bytes are in the blob store."""

    record: FileRecord
    path: Path
    sha256: str
    size: int
    mtime: float | None = None  # when looked at in storage (``peek``), for Last-Modified


@dataclass(frozen=True, slots=True)
class PendingFile:
    """A mirror file arriving from upstream right now."""

    record: FileRecord
    download: Download

    async def complete(self) -> StoredFile:
        """Wait for the whole file, verified and stored; raises UpstreamFailed."""
        download = self.download
        await download.finished.wait()
        if download.error is not None or download.blob_path is None:
            raise fetch_failed(self.record, download)
        assert download.blob_sha256 is not None
        return StoredFile(self.record, download.blob_path, download.blob_sha256, download.written)


class FileService:
    """Find files by index and filename; serve them from storage or upstream."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        changes: ChangeFeed,
        blobs: BlobStore,
        client: UpstreamClient,
        locks: SharedLocks,
    ) -> None:
        self._settings = settings
        self._db = db
        self._changes = changes
        self._blobs = blobs
        self._client = client
        self._locks = locks
        self._records: dict[tuple[int, str], tuple[FileRecord, str]] = {}
        self._by_project: dict[str, set[tuple[int, str]]] = {}
        self._epochs = Epochs()  # rows read before a change to their project are not cached
        self._downloads: dict[tuple[int, str], Download] = {}
        self._metadata_fetches: dict[str, asyncio.Task[Path | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.access = AccessTimes(db)  # last use of mirror files, for --mirror-cache-size

    def on_change(self, change: Change) -> None:
        self._epochs.bump(change.project)
        if change.project is None:
            self._records.clear()
            self._by_project.clear()
            return
        for key in self._by_project.pop(change.project, ()):
            self._records.pop(key, None)

    @property
    def blobs(self) -> BlobStore:
        """Where the bytes live (retention deletes evicted ones)."""
        return self._blobs

    @contextlib.asynccontextmanager
    async def exclusive(self, index_id: int, filename: str) -> AsyncIterator[None]:
        """Hold the file's lock, which every worker and node downloading it holds too: eviction
        (services/retention.py) never drops bytes a download is about to record."""
        async with self._locks.hold(f"file:{index_id}:{filename}", _DOWNLOAD_LOCK_WAIT):
            yield

    async def lookup(self, index: IndexRecord, filename: str) -> FileRecord:
        """The file row for ``filename`` on ``index``; raises NotFound."""
        return (await self.lookup_entry(index, filename))[0]

    async def lookup_entry(self, index: IndexRecord, filename: str) -> tuple[FileRecord, str]:
        """The file row for ``filename`` on ``index`` and its project's name; raises NotFound."""
        if not is_safe_filename(filename):
            raise NotFound(f"no such file: {filename!r}")
        key = (index.id, filename)
        found = self._records.get(key)
        if found is None:
            ticket = self._epochs.ticket()
            found = await self._db.read(project_rows.file_by_filename, index.id, filename)
            if found is None:
                raise NotFound(f"no file {filename!r} on {index.fullname}")
            if self._epochs.current(found[1], ticket):  # else the row may be outdated already
                self._records[key] = found
                self._by_project.setdefault(found[1], set()).add(key)
        return found

    def peek_entry(self, index: IndexRecord, filename: str) -> tuple[FileRecord, str] | None:
        """``peek_record`` with the project's name."""
        return self._records.get((index.id, filename))

    def peek_record(self, index: IndexRecord, filename: str) -> FileRecord | None:
        """The row ``lookup`` would answer from memory, or None. Synchronous, for the hot path
        (http/hot.py); only names ``lookup`` accepted are ever in memory."""
        found = self._records.get((index.id, filename))
        return found[0] if found is not None else None

    def peek(self, record: FileRecord) -> StoredFile | None:
        """The stored file ``open`` would answer right now, when its bytes are in local storage
        and not to be redirected to a bucket; else None."""
        if self._settings.blob_redirect:
            return None
        return self._stored(record)

    def peek_metadata(self, record: FileRecord) -> StoredFile | None:
        """The wheel's advertised METADATA when stored locally (its ``sha256`` is the METADATA's
        digest), or None: ``core_metadata`` then fetches or extracts it."""
        digest = record.core_metadata_sha256
        if record.packagetype != "bdist_wheel" or not digest or self._blobs.remote:
            return None
        path = self._blobs.path(digest)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return StoredFile(record, path, digest, stat.st_size, stat.st_mtime)

    async def open(self, index: IndexRecord, record: FileRecord) -> StoredFile | PendingFile:
        """The file's bytes: stored, or a download in progress. Raises NotFound/UpstreamFailed."""
        stored = self._stored(record)
        if stored is not None:
            return stored
        is_mirror = index.type == "mirror" and bool(record.upstream_url)
        if record.blob_sha256 is not None and self._blobs.remote:
            # Stored by another node (or evicted here): clients get the bytes while this node
            # copies them from the bucket.
            download = self._start_fill(index, record, record.blob_sha256)
        elif not is_mirror:
            raise NotFound(f"file {record.filename!r} is missing from storage")
        elif self._settings.offline:
            raise NotFound(f"{record.filename} is not cached and the server is offline")
        else:
            download = self._start_download(index, record)
        await download.started.wait()
        if download.error is not None:
            if download.error.not_found and download.from_bucket and not is_mirror:
                raise NotFound(f"file {record.filename!r} is missing from storage")
            if download.error.not_found:
                raise NotFound(f"upstream has no {record.filename}")
            raise fetch_failed(record, download)
        if download.finished.is_set() and download.blob_path is not None:
            assert download.blob_sha256 is not None
            return StoredFile(record, download.blob_path, download.blob_sha256, download.written)
        return PendingFile(record, download)

    def redirect_url(self, record: FileRecord) -> str | None:
        """A presigned bucket URL for a stored file, when ``--blob-redirect`` asks for them."""
        seconds = self._settings.blob_redirect
        if not seconds or record.blob_sha256 is None:
            return None  # a store without such URLs (a local directory) presigns None too
        return self._blobs.presign(record.blob_sha256, record.filename, seconds)

    async def open_complete(self, index: IndexRecord, record: FileRecord) -> StoredFile:
        """Like ``open``, waiting until the bytes are all here (to read inside the file)."""
        opened = await self.open(index, record)
        return opened if isinstance(opened, StoredFile) else await opened.complete()

    def _stored(self, record: FileRecord) -> StoredFile | None:
        if record.blob_sha256 is None:
            return None
        path = self._blobs.path(record.blob_sha256)
        try:
            stat = path.stat()
            size = stat.st_size
            if self._blobs.remote and time.time() - stat.st_mtime > _CACHE_TOUCH_AFTER:
                self._blobs.claim(record.blob_sha256)  # recently used: the cache keeps it
        except FileNotFoundError:
            if not self._blobs.remote:  # with a bucket, a local copy comes and goes
                log.error("blob %s of %s is missing", record.blob_sha256, record.filename)
            return None
        if record.upstream_url is not None:
            self.access.touch(record.id)
        return StoredFile(record, path, record.blob_sha256, size, stat.st_mtime)

    def _shared(
        self,
        index: IndexRecord,
        record: FileRecord,
        make: Callable[[], Download],
        run: Callable[[Download], Awaitable[None]],
    ) -> Download:
        """The transfer of this file already under way in this process, or ``make()`` a new one
        and ``run`` it as a task of its own (a client hanging up does not cancel it)."""
        key = (index.id, record.filename)
        download = self._downloads.get(key)
        if download is not None and not (download.finished.is_set() and download.error):
            return download  # under way, or done and about to leave: share it
        # A failed transfer stays registered until its lock is released; a request arriving
        # then is a retry and must try again, not be handed the failure.
        download = self._downloads[key] = make()

        async def supervised() -> None:
            try:
                await run(download)
            except Exception as exc:
                log.exception("transfer of %s failed", record.filename)
                if download.error is None:
                    download.error = DownloadFailed(str(exc))
                download.started.set()
                download.finished.set()
            finally:
                if self._downloads.get(key) is download:
                    del self._downloads[key]

        task = asyncio.create_task(supervised())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return download

    def _start_fill(self, index: IndexRecord, record: FileRecord, sha256: str) -> Download:
        """A local copy of a stored file from the bucket, shared by this process's readers."""
        blobs = self._blobs

        async def fill(download: Download) -> None:
            await download.run(blobs.source(sha256), blobs.cache_writer(), blobs)

        return self._shared(
            index, record, lambda: Download(f"s3:{sha256}", sha256, None, from_bucket=True), fill
        )

    def _start_download(self, index: IndexRecord, record: FileRecord) -> Download:
        assert record.upstream_url is not None
        url = record.upstream_url
        return self._shared(
            index,
            record,
            lambda: Download(url, record.sha256, record.size),
            lambda download: self._run_download(index, record, download),
        )

    async def _run_download(
        self, index: IndexRecord, record: FileRecord, download: Download
    ) -> None:
        async with self.exclusive(index.id, record.filename):
            current = await self._db.read(project_rows.file_by_filename, index.id, record.filename)
            done = self._stored(current[0]) if current else None
            stored_sha = current[0].blob_sha256 if current else None
            if (
                done is None
                and stored_sha is not None
                and self._blobs.remote
                and await self._blobs.has(stored_sha)
            ):
                # Another node stored it while we waited: copy it from the bucket.
                download.from_bucket = True
                source = self._blobs.source(stored_sha)
                await download.run(source, self._blobs.cache_writer(), self._blobs)
                return
            if done is not None:
                # Another worker stored it while we waited for the lock.
                download.blob_path, download.blob_sha256 = done.path, done.sha256
                download.written = download.size = done.size
                download.started.set()
                download.finished.set()
                return

            async def on_stored(digest: str, size: int, path: Path) -> None:
                await self._record_stored(index, record, digest, size, path)

            upstream = self._client.open_file(download.url, self._policy(index))
            started = time.perf_counter()
            try:
                await download.run(upstream, self._blobs.writer(), self._blobs, on_stored)
            finally:
                error = download.error
                outcome = "ok" if error is None else "not-found" if error.not_found else "error"
                seconds = time.perf_counter() - started
                metrics.observe_upstream(index.fullname, "file", outcome, seconds)

    async def _record_stored(
        self, index: IndexRecord, record: FileRecord, digest: str, size: int, path: Path
    ) -> None:
        metadata_sha = None
        metadata_size = 0
        if record.packagetype == "bdist_wheel":
            metadata = await asyncio.to_thread(extract_wheel_metadata, path)
            advertised = record.core_metadata_sha256
            if metadata is not None and advertised in (None, sha256_of(metadata)):
                metadata_sha = await put_small_blob(self._blobs, metadata)
                metadata_size = len(metadata)
            # Otherwise upstream advertised other bytes: .metadata proxies theirs instead.
        await self._changes.write(_record_cached, record, digest, size, metadata_sha, metadata_size)

    # --- PEP 658 metadata --------------------------------------------------------------------

    async def core_metadata(self, index: IndexRecord, record: FileRecord) -> Path:
        """Path of the wheel's METADATA bytes, fetching or extracting them on first use."""
        if record.packagetype != "bdist_wheel":
            raise NotFound(f"{record.filename} is not a wheel: no .metadata")
        advertised = record.core_metadata_sha256
        if advertised:
            here = await self._blobs.local(advertised)
            if here is not None:
                return here
        upstream = record.upstream_url
        if advertised and upstream and index.type == "mirror" and not self._settings.offline:
            fetch = self._fetch_metadata_once(advertised, upstream + ".metadata", index)
            proxied = await asyncio.shield(fetch)  # a client hanging up must not cancel it
            if proxied is not None:
                return proxied
        # Fall back to the wheel itself: store it if needed, then read METADATA out of it.
        wheel_path = (await self.open_complete(index, record)).path
        metadata = await asyncio.to_thread(extract_wheel_metadata, wheel_path)
        if metadata is None:
            raise NotFound(f"{record.filename} has no readable METADATA")
        digest = sha256_of(metadata)
        if advertised and digest != advertised:
            raise UpstreamFailed(
                f"METADATA of {record.filename} does not match the advertised sha256"
            )
        stored_path = await store_small_blob(self._blobs, self._db, metadata)
        if not advertised:
            await self._changes.write(_record_core_metadata, record, digest)
        return stored_path

    async def held_metadata(self, record: FileRecord) -> bytes | None:
        """The wheel's METADATA when this server holds it here (its ``.metadata``, else read out
        of the cached wheel), or None. Never asks upstream or the bucket: the web page of a
        mirrored project shows what installs have brought in and costs no transfer."""
        if record.packagetype != "bdist_wheel":
            return None
        advertised = record.core_metadata_sha256
        if advertised and self._blobs.exists(advertised):
            path = self._blobs.local_path(advertised)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):  # collected since we looked
                    return await asyncio.to_thread(path.read_bytes)
        stored = record.blob_sha256
        if stored and self._blobs.exists(stored):
            path = self._blobs.local_path(stored)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    return await asyncio.to_thread(extract_wheel_metadata, path)
        return None

    def prefetch_metadata(
        self, index: IndexRecord, project: str, links: Sequence[UpstreamLink]
    ) -> None:
        """Start fetching the newest pure wheel's ``.metadata`` as soon as a page is fetched.

        An installer asks for it a moment after it gets the page; starting now, before the page
        is even stored, takes one upstream round trip off every cold install of a pure-Python
        project. Platform wheels are left alone: which one a client wants is a guess, and a
        wrong guess costs upstream traffic.
        """
        if self._settings.offline or index.type != "mirror":
            return
        candidates: list[tuple[str, UpstreamLink]] = []
        for link in links:
            if (
                link.yanked is None
                and link.core_metadata_sha256
                and link.filename.endswith("-none-any.whl")
            ):
                version = parse_dist_filename(link.filename, project).version
                if version:
                    candidates.append((version, link))
        if not candidates:
            return
        _, newest = max(candidates, key=lambda pair: version_sort_key(pair[0]))
        assert newest.core_metadata_sha256 is not None
        if not self._blobs.exists(newest.core_metadata_sha256):
            self._fetch_metadata_once(newest.core_metadata_sha256, newest.url + ".metadata", index)

    def _policy(self, index: IndexRecord) -> OutboundPolicy:
        return mirror_policy(mirror_config(index, self._settings.mirror_cache_expiry))

    def _fetch_metadata_once(
        self, sha256: str, url: str, index: IndexRecord
    ) -> asyncio.Task[Path | None]:
        task = self._metadata_fetches.get(sha256)
        if task is None:
            task = asyncio.create_task(self._proxy_metadata(url, sha256, self._policy(index)))
            self._metadata_fetches[sha256] = task
            task.add_done_callback(lambda _: self._metadata_fetches.pop(sha256, None))
        return task

    async def _proxy_metadata(self, url: str, expected: str, policy: OutboundPolicy) -> Path | None:
        here = await self._blobs.local(expected)
        if here is not None:
            return here
        try:
            raw = await self._client.fetch_page(url, policy, accept="*/*")
        except UpstreamError as exc:
            log.info("upstream .metadata unavailable (%s); reading the wheel instead", exc.reason)
            return None
        if raw is None or sha256_of(raw.body) != expected:
            log.warning("upstream .metadata at %s does not match its advertised sha256", url)
            return None
        return await store_small_blob(self._blobs, self._db, raw.body)

    async def close(self) -> None:
        for task in [*self._tasks, *self._metadata_fetches.values()]:
            task.cancel()
        pending = [*self._tasks, *self._metadata_fetches.values()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self.access.close()


def _record_cached(
    tx: Transaction,
    record: FileRecord,
    digest: str,
    size: int,
    metadata_sha: str | None,
    metadata_size: int,
) -> None:
    visible = project_rows.record_cached_file(tx.conn, record.id, digest, size, metadata_sha)
    retention_rows.record_access(tx.conn, {record.id: time.time()})  # stored counts as used
    if metadata_sha is not None:
        project_rows.add_blob(tx.conn, metadata_sha, metadata_size)
    project = project_rows.project_name(tx.conn, record.project_id)
    tx.log(
        record.index_id,
        project,
        ChangeKind.MIRROR_FILE if visible else ChangeKind.MIRROR_FILE_CACHED,
    )


def _record_core_metadata(tx: Transaction, record: FileRecord, digest: str) -> None:
    project_rows.set_core_metadata(tx.conn, record.id, digest)
    tx.log(
        record.index_id,
        project_rows.project_name(tx.conn, record.project_id),
        ChangeKind.MIRROR_FILE,
    )


async def put_small_blob(blobs: BlobStore, data: bytes) -> str:
    """Put small bytes (core metadata) in the blob store; the caller records the blob row."""
    writer = blobs.writer()
    writer.write(data)
    return await writer.commit()


async def store_small_blob(blobs: BlobStore, db: Database, data: bytes) -> Path:
    """Put small bytes in the blob store and record the blob row; returns the local path."""
    digest = await put_small_blob(blobs, data)
    await db.write(project_rows.add_blob, digest, len(data))
    return blobs.path(digest)
