"""Collect blobs that no row names: what a crash, a removal or a deleted index leaves behind.

Blobs are written before the rows that name them (a row must never point at missing bytes), so
a crash between the two leaves an unnamed blob; removing a release or an index leaves its bytes
too. ``cheeseboard-server gc`` deletes them, safely while the server runs:

- A blob younger than ``min_age`` is kept: an upload or mirror download may be about to commit
  the row that names it. Every place that reuses an existing blob touches it first
  (``FileBlobStore.claim``), so reuse also makes it young.
- A candidate is first renamed out of place, then its age and the database are checked again; if
  anything names it now, it is renamed back. Blobs are content-addressed, so putting it back is
  right even if a writer has meanwhile installed the same bytes again.

It also reports damage it cannot repair: rows whose bytes are missing. Mirror files heal by
themselves (the server fetches them again on first use); uploaded files are lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.engine import Connection, Engine

from cheeseboard.store.blobs import FileBlobStore, check_sha256
from cheeseboard.store.schema import blobs, files, indexes, users

DEFAULT_MIN_AGE = 3600.0  # seconds; far longer than any upload takes to commit its row
_SHOWN = 10  # damaged files named in the report


@dataclass
class GcReport:
    """What a collection found and did (or would do, on a dry run)."""

    blobs_seen: int = 0
    collected: int = 0
    collected_bytes: int = 0
    kept_young: int = 0
    rows_dropped: int = 0  # blobs table rows that named nothing and had no file
    staged_removed: int = 0
    lost_uploads: list[str] = field(default_factory=list)
    refetchable: list[str] = field(default_factory=list)

    def describe(self, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        lines = [
            f"{self.blobs_seen} blobs checked; {verb} {self.collected} unreferenced "
            f"({self.collected_bytes / 1e6:,.1f} MB), {self.staged_removed} stale staged files "
            f"and {self.rows_dropped} stale blob rows; kept {self.kept_young} younger than "
            "--min-age"
        ]
        if self.refetchable:
            lines.append(
                f"{len(self.refetchable)} mirrored files are missing their bytes and will be "
                f"fetched again on first use: {_names(self.refetchable)}"
            )
        if self.lost_uploads:
            lines.append(
                f"{len(self.lost_uploads)} uploaded files are missing their bytes (restore them "
                f"from a backup or upload again): {_names(self.lost_uploads)}"
            )
        return "\n".join(lines)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (", ..." if len(names) > _SHOWN else "")


def _stored(root: Path) -> Iterator[tuple[str, Path]]:
    """Every blob file under ``root`` (``ab/cd/<sha256>``); anything else is left alone."""
    for first in root.iterdir():
        if len(first.name) != 2 or not first.is_dir():
            continue
        for second in first.iterdir():
            if not second.is_dir():
                continue
            for path in second.iterdir():
                try:
                    check_sha256(path.name)
                except ValueError:
                    continue
                if path.name.startswith(first.name + second.name) and path.is_file():
                    yield path.name, path


def _named(conn: Connection, sha256: str) -> bool:
    """Does any file row name these bytes (as the file or as its core metadata)?"""
    query = select(
        exists().where(or_(files.c.blob_sha256 == sha256, files.c.core_metadata_sha256 == sha256))
    )
    return bool(conn.scalar(query))


def _all_named(conn: Connection) -> set[str]:
    named: set[str] = set()
    for blob, metadata in conn.execute(select(files.c.blob_sha256, files.c.core_metadata_sha256)):
        named.update(d for d in (blob, metadata) if d)
    return named


def report_missing(engine: Engine, report: GcReport, stored: Callable[[str], bool]) -> None:
    """Name the file rows whose bytes are not ``stored`` (mirror: heals; upload: lost)."""
    query = (
        select(users.c.name, indexes.c.name, indexes.c.type, files.c.filename, files.c.blob_sha256)
        .select_from(files.join(indexes).join(users))
        .where(files.c.blob_sha256.is_not(None))
        .order_by(files.c.id)
    )
    with engine.connect() as conn:
        for user, index, kind, filename, sha256 in conn.execute(query):
            if not stored(sha256):
                missing = report.refetchable if kind == "mirror" else report.lost_uploads
                missing.append(f"{user}/{index}/{filename}")


class BlobCollector:
    """One collection over a blob store and its database."""

    def __init__(self, store: FileBlobStore, engine: Engine, min_age: float) -> None:
        self.store = store
        self.engine = engine
        self.min_age = min_age
        self.report = GcReport()

    def run(self, dry_run: bool = False) -> GcReport:
        cutoff = time.time() - self.min_age
        self._check_rows()
        with self.engine.connect() as conn:
            named = _all_named(conn)
        for sha256, path in _stored(self.store.root):
            self.report.blobs_seen += 1
            if sha256 in named:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if stat.st_mtime >= cutoff:
                self.report.kept_young += 1
            elif dry_run:
                self.report.collected += 1
                self.report.collected_bytes += stat.st_size
            else:
                self._collect(sha256, path, cutoff)
        self._drop_stale_rows(cutoff, dry_run)
        self._clean_staged(cutoff, dry_run)
        return self.report

    def _collect(self, sha256: str, path: Path, cutoff: float) -> None:
        trash = self.store.tmp_dir / f"{sha256}.gc"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        stat = trash.stat()
        with self.engine.begin() as conn:
            if stat.st_mtime < cutoff and not _named(conn, sha256):
                conn.execute(delete(blobs).where(blobs.c.sha256 == sha256))
                trash.unlink()
                self.report.collected += 1
                self.report.collected_bytes += stat.st_size
                return
        # Claimed or named meanwhile: the same bytes go back where they were.
        os.replace(trash, path)
        self.report.kept_young += 1

    def _drop_stale_rows(self, cutoff: float, dry_run: bool) -> None:
        """Blob rows naming bytes that are gone and that no file row needs."""
        named_by_file = or_(
            files.c.blob_sha256 == blobs.c.sha256, files.c.core_metadata_sha256 == blobs.c.sha256
        )
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(blobs.c.sha256).where(
                    blobs.c.created < cutoff, ~exists().where(named_by_file)
                )
            ).scalars()
            gone = [sha256 for sha256 in rows if not self.store.exists(sha256)]
            if not dry_run and gone:
                conn.execute(delete(blobs).where(blobs.c.sha256.in_(gone)))
        self.report.rows_dropped += len(gone)

    def _check_rows(self) -> None:
        report_missing(self.engine, self.report, self.store.exists)

    def _clean_staged(self, cutoff: float, dry_run: bool) -> None:
        """Staged files (``.tmp``) left by a crash; the server also clears them at startup.

        A ``.gc`` file is a blob an interrupted collection had set aside: it goes back if a row
        names it, else it goes.
        """
        for leftover in self.store.tmp_dir.iterdir():
            if leftover.suffix not in (".part", ".gc"):
                continue
            try:
                if leftover.suffix == ".gc" and self._restore_if_named(leftover, dry_run):
                    continue
                if leftover.stat().st_mtime >= cutoff:
                    continue
                if not dry_run:
                    leftover.unlink()
            except FileNotFoundError:
                continue
            self.report.staged_removed += 1

    def _restore_if_named(self, trash: Path, dry_run: bool) -> bool:
        sha256 = trash.stem
        try:
            check_sha256(sha256)
        except ValueError:
            return False
        with self.engine.connect() as conn:
            if not _named(conn, sha256):
                return False
        if not dry_run:
            target = self.store.path(sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(trash, target)
        return True
