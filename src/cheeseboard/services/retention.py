"""Retention (issue 23): evict least recently used mirror files beyond ``--mirror-cache-size``
and remove the releases that stage indexes' cleanup policies (core/retention.py) name.

Both run from ``cheeseboard-server gc`` and on the server's schedule (ops/retention_schedule.py),
with the same code and the same report, so a dry run lists exactly what a run would remove.

- Eviction holds the file's lock (the one every download of it holds, on every node), marks the
  row not stored in a change of its own (every worker forgets the row it had in memory, and the
  next request fetches the file from upstream as if it had never been fetched) and then deletes
  the bytes unless another row names them. A client already being sent the file keeps its open
  file (POSIX keeps unlinked files readable) and finishes.
- Releases are removed through the release service, as ``DELETE /user/index/project/version``
  does: with the index owner's rights, refused on a non-volatile index, recorded in the audit
  log with ``retention`` as the actor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.retention import RETENTION_KEYS, Release, Sized, doomed_releases, evicted
from cheeseboard.services import audit
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.files import FileService
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.releases import ReleaseService
from cheeseboard.store import retention_rows
from cheeseboard.store.blobs import BlobStoreError
from cheeseboard.store.db import Database
from cheeseboard.store.retention_rows import CachedFile

log = logging.getLogger(__name__)

ACTOR = audit.Actor("retention")
_SHOWN = 20  # names listed per kind in a report


@dataclass
class RetentionReport:
    """What a retention run removed (or would remove, on a dry run)."""

    cap: int | None = None
    cached_bytes: int = 0  # stored mirror bytes before the run
    evicted: list[str] = field(default_factory=list)  # index/filename
    evicted_bytes: int = 0
    removed: list[str] = field(default_factory=list)  # index/project==version (reason)
    removed_bytes: int = 0
    failed: list[str] = field(default_factory=list)

    def describe(self, dry_run: bool) -> str:
        verb = "would" if dry_run else ""
        evict, remove = (f"{verb} evict", f"{verb} remove") if dry_run else ("evicted", "removed")
        cap = "no --mirror-cache-size" if self.cap is None else f"cap {_mb(self.cap)}"
        lines = [
            f"retention: mirror cache {_mb(self.cached_bytes)} ({cap}); {evict} "
            f"{len(self.evicted)} files ({_mb(self.evicted_bytes)}); {remove} "
            f"{len(self.removed)} releases ({_mb(self.removed_bytes)})"
        ]
        lines += [f"  {evict} {name}" for name in self.evicted[:_SHOWN]]
        if len(self.evicted) > _SHOWN:
            lines.append(f"  ... and {len(self.evicted) - _SHOWN} more files")
        lines += [f"  {remove} {name}" for name in self.removed[:_SHOWN]]
        if len(self.removed) > _SHOWN:
            lines.append(f"  ... and {len(self.removed) - _SHOWN} more releases")
        lines += [f"  failed: {problem}" for problem in self.failed[:_SHOWN]]
        return "\n".join(lines)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


class RetentionService:
    """One deployment's retention: the cache cap and the indexes' cleanup policies."""

    def __init__(
        self,
        db: Database,
        changes: ChangeFeed,
        indexes: IndexRegistry,
        releases: ReleaseService,
        files: FileService,
        cache_size: int | None,
    ) -> None:
        self._db = db
        self._changes = changes
        self._indexes = indexes
        self._releases = releases
        self._files = files
        self._cache_size = cache_size

    @classmethod
    def of(cls, services: AppServices) -> RetentionService:
        return cls(
            services.db,
            services.changes,
            services.indexes,
            services.releases,
            services.files,
            services.settings.mirror_cache_size,
        )

    async def run(
        self, dry_run: bool = False, now: float | None = None, policies: bool = True
    ) -> RetentionReport:
        """Apply (or, with ``dry_run``, list) the policies as of ``now``, then the cache cap."""
        report = RetentionReport(cap=self._cache_size)
        await self._files.access.flush()  # this worker's latest uses count
        if policies:
            await self._apply_policies(report, dry_run, time.time() if now is None else now)
        await self._evict(report, dry_run)
        return report

    # --- cleanup policies -----------------------------------------------------------------

    async def _apply_policies(self, report: RetentionReport, dry_run: bool, now: float) -> None:
        for index in self._indexes.all():
            if index.type != "stage" or not RETENTION_KEYS & index.config.keys():
                continue
            rows = await self._db.read(retention_rows.stage_releases, index.id)
            found = [Release(r.project, r.version, r.created, r.size) for r in rows]
            for doomed in doomed_releases(found, index.config, now):
                release = doomed.release
                name = f"{index.fullname}/{release.project}=={release.version}"
                if not dry_run:
                    try:
                        await self._releases.delete_version(
                            Identity(index.user),
                            index,
                            release.project,
                            release.version,
                            force=False,
                            who=ACTOR,
                        )
                    except NotFound:
                        continue  # removed meanwhile
                    except (Forbidden, Unauthorized, BadRequest) as error:
                        report.failed.append(f"{name}: {error}")
                        continue
                report.removed.append(f"{name} ({doomed.reason})")
                report.removed_bytes += release.size

    # --- the mirror cache cap -------------------------------------------------------------

    async def _evict(self, report: RetentionReport, dry_run: bool) -> None:
        report.cached_bytes = await self._db.read(retention_rows.cached_mirror_bytes)
        if self._cache_size is None or report.cached_bytes <= self._cache_size:
            return  # the list of every cached file is read only when something must go
        cached = await self._db.read(retention_rows.cached_mirror_files)
        by_id = {f.id: f for f in cached}
        sized = [Sized(f.id, f.size, f.last_used) for f in cached]
        for victim in evicted(sized, self._cache_size):
            cached_file = by_id[victim.key]
            if dry_run or await self._evict_one(cached_file, report):
                report.evicted.append(f"{cached_file.index}/{cached_file.filename}")
                report.evicted_bytes += cached_file.size

    async def _evict_one(self, cached: CachedFile, report: RetentionReport) -> bool:
        async with self._files.exclusive(cached.index_id, cached.filename):
            if not await self._changes.write(_evict, cached):
                return False  # changed meanwhile (stored again, removed): left alone
            if await self._db.read(retention_rows.is_named, cached.blob_sha256):
                return True  # the same bytes are another file's too
            try:
                await self._files.blobs.delete(cached.blob_sha256)
            except (BlobStoreError, OSError) as error:  # gc collects the bytes later
                report.failed.append(f"deleting the bytes of {cached.filename}: {error}")
        return True


def _evict(tx: Transaction, cached: CachedFile) -> bool:
    if not retention_rows.evict(tx.conn, cached.id, cached.blob_sha256):
        return False
    tx.log(cached.index_id, cached.project, ChangeKind.MIRROR_FILE_CACHED)
    audit.record(tx, ACTOR, "evict", f"{cached.index}/{cached.filename}", {"bytes": cached.size})
    return True
