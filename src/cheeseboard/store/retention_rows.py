"""Rows retention reads and writes (issue 23): last-use times of cached mirror files, the cached
files in least-recently-used order, eviction, and the releases of a stage index.

Removing releases is not here: retention calls the release service, as ``DELETE`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from cheeseboard.core.distfiles import canonical_version
from cheeseboard.store import records
from cheeseboard.store.schema import blobs, file_access, files, indexes, projects, releases, users


@dataclass(frozen=True, slots=True)
class CachedFile:
    """A mirror file whose bytes are stored, with when it was last served (or stored)."""

    id: int
    index_id: int
    index: str  # user/name
    project: str
    filename: str
    blob_sha256: str
    size: int
    last_used: float


@dataclass(frozen=True, slots=True)
class StageRelease:
    """A release of a stage project, with when it was uploaded."""

    project: str
    version: str
    created: float
    size: int  # bytes of its files


def record_access(conn: Connection, used: Mapping[int, float]) -> int:
    """Raise the last-use time of each file to the time given (never lower it: another worker
    may have written a later one); rows of files removed meanwhile are skipped. Returns the
    number of files written. One statement per chunk and kind (executemany): a flush of 10,000
    files holds the writer for tens of milliseconds, not a second."""
    written = 0
    for chunk in records.chunks(sorted(used)):
        alive = set(conn.scalars(select(files.c.id).where(files.c.id.in_(chunk))))
        rows = conn.execute(
            select(file_access.c.file_id, file_access.c.last_used).where(
                file_access.c.file_id.in_(chunk)
            )
        )
        known: dict[int, float] = {row[0]: row[1] for row in rows}
        fresh = [
            {"file_id": fid, "last_used": used[fid]}
            for fid in chunk
            if fid in alive and fid not in known
        ]
        later = [
            {"fid": fid, "when": used[fid]}
            for fid in chunk
            if fid in alive and fid in known and known[fid] < used[fid]
        ]
        if fresh:
            conn.execute(insert(file_access), fresh)
        if later:
            conn.execute(
                update(file_access)
                .where(file_access.c.file_id == bindparam("fid"))
                .values(last_used=bindparam("when")),
                later,
            )
        written += len(fresh) + len(later)
    return written


def cached_mirror_bytes(conn: Connection) -> int:
    """Bytes of all stored files of mirror indexes."""
    query = (
        select(func.coalesce(func.sum(func.coalesce(files.c.size, 0)), 0))
        .select_from(files.join(indexes, indexes.c.id == files.c.index_id))
        .where(indexes.c.type == "mirror", files.c.blob_sha256.is_not(None))
    )
    return int(conn.scalar(query) or 0)


def cached_mirror_files(conn: Connection) -> list[CachedFile]:
    """Every stored file of every mirror index, least recently used first (a file never served
    since it was stored counts from when its row was made)."""
    last_used = func.coalesce(file_access.c.last_used, files.c.created)
    query = (
        select(
            files.c.id,
            files.c.index_id,
            users.c.name,
            indexes.c.name,
            projects.c.name,
            files.c.filename,
            files.c.blob_sha256,
            func.coalesce(files.c.size, blobs.c.size, 0),
            last_used,
        )
        .select_from(
            files.join(indexes, indexes.c.id == files.c.index_id)
            .join(users, users.c.id == indexes.c.user_id)
            .join(projects, projects.c.id == files.c.project_id)
            .outerjoin(file_access, file_access.c.file_id == files.c.id)
            .outerjoin(blobs, blobs.c.sha256 == files.c.blob_sha256)
        )
        .where(indexes.c.type == "mirror", files.c.blob_sha256.is_not(None))
        .order_by(last_used, files.c.id)
    )
    return [
        CachedFile(fid, index_id, f"{user}/{index}", project, name, sha, int(size), float(used))
        for fid, index_id, user, index, project, name, sha, size, used in conn.execute(query)
    ]


def evict(conn: Connection, file_id: int, blob_sha256: str) -> bool:
    """Mark a mirror file not stored, as if never fetched, unless its row changed meanwhile;
    the blob row goes too when no file names the bytes any more. Returns whether it was done."""
    done = conn.execute(
        update(files)
        .where(files.c.id == file_id, files.c.blob_sha256 == blob_sha256)
        .values(blob_sha256=None)
    ).rowcount
    if not done:
        return False
    conn.execute(delete(file_access).where(file_access.c.file_id == file_id))
    if not is_named(conn, blob_sha256):
        conn.execute(delete(blobs).where(blobs.c.sha256 == blob_sha256))
    return True


def is_named(conn: Connection, sha256: str) -> bool:
    """Does any file row name these bytes (as the file or as its core metadata)?"""
    named = or_(files.c.blob_sha256 == sha256, files.c.core_metadata_sha256 == sha256)
    return bool(conn.scalar(select(exists().where(named))))


def stage_releases(conn: Connection, index_id: int) -> list[StageRelease]:
    """The releases of every project of a stage index, with the bytes of their files."""
    sizes: dict[tuple[int, str], int] = {}
    query = select(files.c.project_id, files.c.version, func.coalesce(files.c.size, 0)).where(
        files.c.index_id == index_id, files.c.version.is_not(None)
    )
    for project_id, version, size in conn.execute(query):
        key = (project_id, canonical_version(version))
        sizes[key] = sizes.get(key, 0) + int(size)
    listed = (
        select(
            projects.c.name,
            releases.c.project_id,
            releases.c.version,
            releases.c.canonical_version,
            releases.c.created,
        )
        .select_from(releases.join(projects, projects.c.id == releases.c.project_id))
        .where(projects.c.index_id == index_id)
        .order_by(projects.c.name, releases.c.id)
    )
    return [
        StageRelease(name, version, float(created), sizes.get((project_id, canonical), 0))
        for name, project_id, version, canonical, created in conn.execute(listed)
    ]
