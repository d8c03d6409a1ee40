"""Online backup of a data directory, safe while the server runs.

The metadata database is copied with SQLite's online backup API, which reads one consistent
snapshot while writers keep committing (WAL mode). The blobs are then chosen from that snapshot,
not from the live database: a blob is always in place before the row that names it commits, and
blobs are never rewritten, so every blob the snapshot names can be copied afterwards. Uploads that
commit after the snapshot are simply not part of the backup.

Like ``init``, the backup is built in a hidden directory beside ``OUT`` and renamed into place at
the end, so an interrupted run never leaves something that looks like a complete data directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from sqlalchemy import Select, create_engine, func, literal, null, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from cheeseboard.progress import transfer_progress
from cheeseboard.settings import DataDirLayout, staging_dir
from cheeseboard.store.blobs import check_sha256, copy_hashed, hash_file
from cheeseboard.store.schema import blobs, files, indexes, users

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_CHUNK = 1024 * 1024
_NAMES_SHOWN = 5  # referencing files named per missing blob, and missing blobs per message
# Reasons os.link fails where a copy still works: another file system, no hard links there, or
# too many links to one inode.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


class BackupError(Exception):
    """The backup cannot be made; the message says why. Nothing is left at ``OUT``."""


class BackupProgress(Protocol):
    """Receives progress while blobs are copied."""

    def begin(self, blobs: int, total_bytes: int) -> None: ...

    def advance(self, nbytes: int, blobs: int = 0) -> None: ...


@dataclass(frozen=True)
class BackupSummary:
    blobs: int
    blob_bytes: int
    linked: int
    database_bytes: int
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.blobs} blobs ({_human(self.blob_bytes)}; {self.linked} hard-linked, "
            f"{self.blobs - self.linked} copied), database {_human(self.database_bytes)}, "
            f"in {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class _Blob:
    sha256: str
    size: int | None  # as the blobs table records it; None when only a files row names it
    required: bool  # False: an advertised .metadata hash that may never have been stored


# --- checks ---------------------------------------------------------------------------------


def _read_marker(source: Path) -> dict[str, Any]:
    layout = DataDirLayout(source)
    try:
        marker = json.loads(layout.marker.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"{source} is not a cheeseboard data directory (no {layout.marker.name})"
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {layout.marker}: {exc}") from exc
    if not isinstance(marker, dict):
        raise BackupError(f"{layout.marker} is not a JSON object")
    if marker.get("database_url") == "external":
        raise BackupError(
            f"the metadata database of {source} is external (PostgreSQL): back it up with the "
            "database's own tools (pg_dump), and the files with the S3 service's tools (with "
            f"--blob-url) or by copying {layout.blobs}; 'backup' copies the embedded SQLite "
            "database only (docs/scale-out.md)"
        )
    if not layout.database.is_file():
        raise BackupError(f"{layout.database} does not exist")
    return marker


def _check_target(source: Path, out: Path) -> None:
    if out.resolve().is_relative_to(source.resolve()):
        raise BackupError(f"{out} is inside the data directory {source}; choose another place")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists and is not an empty directory; refusing to overwrite it")


# --- the database snapshot ------------------------------------------------------------------


def snapshot_database(source: Path, target: Path) -> int:
    """Copy one consistent snapshot of the SQLite database ``source`` to ``target``."""
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # one step: a single read snapshot, writers carry on meanwhile
            check = dst.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the snapshot of {source} fails its check: {check}")
        finally:
            dst.close()
    finally:
        src.close()
    _fsync(target)
    return target.stat().st_size


def _referenced_query() -> Select[Any]:
    stored = union_all(
        select(blobs.c.sha256.label("sha256"), blobs.c.size.label("size"), literal(1).label("req")),
        select(files.c.blob_sha256, null(), literal(1)).where(files.c.blob_sha256.is_not(None)),
        select(files.c.core_metadata_sha256, null(), literal(0)).where(
            files.c.core_metadata_sha256.is_not(None)
        ),
    ).subquery()
    return (
        select(stored.c.sha256, func.max(stored.c.size), func.max(stored.c.req))
        .group_by(stored.c.sha256)
        .order_by(stored.c.sha256)
    )


def referenced_blobs(conn: Connection) -> Iterator[_Blob]:
    """Every blob the database names, in sha256 order.

    The blobs table and ``files.blob_sha256`` name bytes that were stored, so they must exist.
    ``files.core_metadata_sha256`` of a mirrored (or pushed) wheel is what upstream advertised;
    the server fetches or extracts it on first use, so it is copied only when it is there.
    """
    for sha256, size, required in conn.execute(_referenced_query()):
        try:
            check_sha256(sha256)
        except ValueError:
            raise BackupError(f"the database names a blob {sha256!r} that is no sha256") from None
        yield _Blob(sha256, size, bool(required))


def referencing_files(conn: Connection, sha256: str) -> list[str]:
    """``user/index/filename`` of the files whose bytes or .metadata are ``sha256``."""
    query = (
        select(users.c.name, indexes.c.name, files.c.filename, files.c.blob_sha256)
        .select_from(files.join(indexes).join(users))
        .where((files.c.blob_sha256 == sha256) | (files.c.core_metadata_sha256 == sha256))
        .order_by(files.c.id)
    )
    return [
        f"{user}/{index}/{filename}" + ("" if blob == sha256 else ".metadata")
        for user, index, filename, blob in conn.execute(query)
    ]


# --- blobs ----------------------------------------------------------------------------------


def _blob_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Mismatch(Exception):
    def __init__(self, sha256: str, got: str, size: int) -> None:
        super().__init__(f"blob {sha256} has sha256 {got} ({size} bytes)")
        self.sha256 = sha256


@dataclass
class BlobCopier:
    """Copies (or hard-links) blobs from one blob directory to another, verifying each sha256."""

    source: Path
    target: Path
    link: bool = True
    progress: BackupProgress | None = None
    linked: int = 0
    copied: int = 0
    nbytes: int = 0
    _dirs: set[Path] = field(default_factory=set)

    def copy(self, blob: _Blob) -> None:
        """Copy one blob; raises FileNotFoundError if it is absent, _Mismatch if it is wrong."""
        src = _blob_path(self.source, blob.sha256)
        dst = _blob_path(self.target, blob.sha256)
        if dst.parent not in self._dirs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(dst.parent)
        if self.link and self._hard_link(src, dst):
            digest, size = hash_file(dst, self._advance)
            self.linked += 1
        else:
            digest, size = copy_hashed(src, dst, self._advance, exclusive=True)
            self.copied += 1
        if digest != blob.sha256 or (blob.size is not None and size != blob.size):
            raise _Mismatch(blob.sha256, digest, size)
        self.nbytes += size
        self._advance(0, 1)

    def _hard_link(self, src: Path, dst: Path) -> bool:
        try:
            os.link(src, dst)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            if exc.errno != errno.EMLINK:
                self.link = False  # the target cannot hold links to the source: stop trying
            return False
        return True

    def _advance(self, nbytes: int, blobs: int = 0) -> None:
        if self.progress is not None:
            self.progress.advance(nbytes, blobs)

    def sync(self) -> None:
        """fsync every directory that received blobs, and the blob root."""
        for directory in sorted(self._dirs, reverse=True):
            _fsync(directory)
        for parent in {d.parent for d in self._dirs}:
            _fsync(parent)
        _fsync(self.target)


def _missing_message(conn: Connection, source: Path, missing: list[str]) -> str:
    described = []
    for sha256 in missing[:_NAMES_SHOWN]:
        names = referencing_files(conn, sha256) or ["a blobs table row"]
        more = len(names) - _NAMES_SHOWN
        shown = ", ".join(names[:_NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")
        described.append(f"{sha256} (referenced by {shown})")
    more = len(missing) - _NAMES_SHOWN
    return (
        f"{len(missing)} blob(s) referenced by the database are missing from {source}: "
        + "; ".join(described)
        + (f"; and {more} more" if more > 0 else "")
        + "; no backup was written"
    )


def _plan(conn: Connection, source: Path) -> tuple[int, int]:
    """Check that every required blob is present; return how many blobs and bytes to copy."""
    count = total = 0
    missing: list[str] = []
    for blob in referenced_blobs(conn):
        try:
            size = _blob_path(source, blob.sha256).stat().st_size
        except FileNotFoundError:
            if blob.required:
                missing.append(blob.sha256)
            continue
        count += 1
        total += size
    if missing:
        raise BackupError(_missing_message(conn, source, missing))
    return count, total


def copy_blobs(conn: Connection, copier: BlobCopier) -> None:
    """Copy every blob the snapshot ``conn`` names; optional ones only when present."""
    count, total = _plan(conn, copier.source)
    if copier.progress is not None:
        copier.progress.begin(count, total)
    for blob in referenced_blobs(conn):
        try:
            copier.copy(blob)
        except FileNotFoundError:
            if blob.required:  # vanished since the check: the source store is being damaged
                raise BackupError(_missing_message(conn, copier.source, [blob.sha256])) from None
        except _Mismatch as exc:
            names = ", ".join(referencing_files(conn, blob.sha256)) or "a blobs table row"
            raise BackupError(
                f"{exc}, not its name: the file in {copier.source} is damaged (used by {names}); "
                "no backup was written"
            ) from None
    copier.sync()


# --- the whole backup -------------------------------------------------------------------------


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Directories and files created in the block are the owner's alone (0700 and 0600).

    Backups and exports hold password hashes and, for backups, the server secret. A umask covers
    every file the block creates, including those made by SQLite and by copies, without a chmod
    race; hard links keep their source's mode. The umask is process-wide: for the offline
    commands only, never inside the server.
    """
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _copy_secret(source: Path, staging: Path) -> None:
    data = DataDirLayout(source).secret.read_bytes()
    fd = os.open(DataDirLayout(staging).secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_marker(staging: Path, marker: dict[str, Any], source: Path) -> None:
    marker = {**marker, "backup": {"source": str(source), "created": time.time()}}
    path = DataDirLayout(staging).marker
    path.write_text(json.dumps(marker))
    _fsync(path)


def _fill(source: Path, staging: Path, marker: dict[str, Any], copier: BlobCopier) -> int:
    target = DataDirLayout(staging)
    database_bytes = snapshot_database(DataDirLayout(source).database, target.database)
    engine = create_engine(target.sqlite_url)
    try:
        with engine.connect() as conn:
            copy_blobs(conn, copier)
    finally:
        engine.dispose()
    target.locks.mkdir()
    _copy_secret(source, staging)
    _write_marker(staging, marker, source)  # last: its presence means "initialised"
    _fsync(staging)
    return database_bytes


def _build(
    source: Path,
    out: Path,
    marker: dict[str, Any],
    link: bool,
    progress: BackupProgress | None,
) -> tuple[int, BlobCopier]:
    """Fill a hidden directory beside ``out``, then rename it to ``out``; clean up on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out, "backup")
    shutil.rmtree(staging, ignore_errors=True)
    copier = BlobCopier(DataDirLayout(source).blobs, DataDirLayout(staging).blobs, link, progress)
    try:
        with owner_only():
            staging.mkdir()
            DataDirLayout(staging).blobs.mkdir()
            database_bytes = _fill(source, staging, marker, copier)
        os.replace(staging, out)  # replaces an empty directory atomically
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync(out.parent)
    return database_bytes, copier


def backup_datadir(
    source: Path, out: Path, *, link: bool = True, progress: BackupProgress | None = None
) -> BackupSummary:
    """Write a complete, consistent copy of data directory ``source`` to ``out``.

    ``out`` must not exist or be an empty directory. Blobs are hard-linked when ``link`` and the
    file system allows it (they are immutable), otherwise copied; every one is verified.
    """
    started = time.monotonic()
    source, out = source.absolute(), out.absolute()
    marker = _read_marker(source)
    _check_target(source, out)
    try:
        database_bytes, copier = _build(source, out, marker, link, progress)
    except (OSError, sqlite3.Error, SQLAlchemyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackupError(f"backup of {source} to {out} failed: {reason}") from exc
    return BackupSummary(
        blobs=copier.linked + copier.copied,
        blob_bytes=copier.nbytes,
        linked=copier.linked,
        database_bytes=database_bytes,
        seconds=time.monotonic() - started,
    )


# --- progress and signals -------------------------------------------------------------------


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


class LineProgress:
    """One line on ``stream`` every ``interval`` seconds (for logs and pipes)."""

    def __init__(self, stream: TextIO, interval: float = 5.0) -> None:
        self._stream = stream
        self._interval = interval
        self._last = time.monotonic()
        self._blobs = self._total_blobs = 0
        self._bytes = self._total_bytes = 0

    def begin(self, blobs: int, total_bytes: int) -> None:
        self._total_blobs, self._total_bytes = blobs, total_bytes
        self._line(f"backup: copying {blobs} blobs ({_human(total_bytes)})")

    def advance(self, nbytes: int, blobs: int = 0) -> None:
        self._bytes += nbytes
        self._blobs += blobs
        if time.monotonic() - self._last >= self._interval:
            self._line(
                f"backup: {self._blobs}/{self._total_blobs} blobs, "
                f"{_human(self._bytes)} of {_human(self._total_bytes)}"
            )

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
        self._last = time.monotonic()


class _RichProgress:
    def __init__(self, bar: Progress) -> None:
        self._bar = bar
        self._task: TaskID | None = None
        self._blobs = self._total_blobs = 0

    def begin(self, blobs: int, total_bytes: int) -> None:
        self._total_blobs = blobs
        self._task = self._bar.add_task(f"blobs 0/{blobs}", total=total_bytes)

    def advance(self, nbytes: int, blobs: int = 0) -> None:
        self._blobs += blobs
        if self._task is not None:
            description = f"blobs {self._blobs}/{self._total_blobs}"
            self._bar.update(self._task, advance=nbytes, description=description)


@contextlib.contextmanager
def progress_on(stream: TextIO) -> Iterator[BackupProgress]:
    """A rich progress bar when ``stream`` is a terminal, otherwise a line every few seconds."""
    if not stream.isatty():
        yield LineProgress(stream)
        return
    from rich.console import Console

    with transfer_progress(Console(file=stream)) as bar:
        yield _RichProgress(bar)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while inside, so an interrupted backup cleans up after
    itself (SIGKILL cannot be caught: then the hidden staging directory stays behind)."""

    def _raise(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
