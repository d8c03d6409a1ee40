"""Releases of stage projects: their metadata, yanking (PEP 592), and removing releases, files and
emptied projects.

Each function takes the connection to use; call them through ``Database.read``/``write``, e.g.
``await db.read(release_rows.project_releases, index.id, name)``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from cheeseboard.core.distfiles import version_sort_key
from cheeseboard.store import project_rows, records
from cheeseboard.store.records import FileRecord, ProjectRecord, ReleaseRecord
from cheeseboard.store.schema import files, projects, releases


def upsert_release(
    conn: Connection,
    project_id: int,
    version: str,
    canonical: str,
    metadata: dict[str, Any],
    replace_metadata: bool = True,
) -> None:
    """Create the release, or refresh its metadata (a later file of the same release) unless
    ``replace_metadata`` is False (a doc zip must not replace what the artifacts said)."""
    existing = conn.scalar(
        select(releases.c.id).where(
            releases.c.project_id == project_id, releases.c.canonical_version == canonical
        )
    )
    if existing is None:
        conn.execute(
            insert(releases).values(
                project_id=project_id,
                version=version,
                canonical_version=canonical,
                metadata=metadata,
                created=time.time(),
            )
        )
    elif replace_metadata:
        conn.execute(update(releases).where(releases.c.id == existing).values(metadata=metadata))


def latest_version(conn: Connection, index_id: int, name: str) -> str | None:
    """The newest release version of a stage project (PEP 440 order), for doc uploads."""
    project = project_rows.get_project(conn, index_id, name)
    if project is None:
        return None
    versions = [
        str(v)
        for (v,) in conn.execute(
            select(releases.c.version).where(releases.c.project_id == project.id)
        )
    ]
    return max(versions, key=version_sort_key) if versions else None


def release_version(conn: Connection, index_id: int, name: str, canonical: str) -> str | None:
    """The version, as stored, of the stage project's release that is ``canonical``; None if the
    index has no such release (a doc zip attaches only to an existing one)."""
    return conn.scalar(
        select(releases.c.version)
        .join(projects, projects.c.id == releases.c.project_id)
        .where(
            projects.c.index_id == index_id,
            projects.c.name == name,
            releases.c.canonical_version == canonical,
        )
    )


def project_releases(
    conn: Connection, index_id: int, name: str
) -> tuple[ProjectRecord | None, list[ReleaseRecord], list[FileRecord]]:
    """A stage project with its releases and files, in one snapshot."""
    project = project_rows.get_project(conn, index_id, name)
    if project is None:
        return None, [], []
    rows = conn.execute(
        select(releases).where(releases.c.project_id == project.id).order_by(releases.c.id)
    )
    found = [records.release_from_row(row) for row in rows]
    return project, found, project_rows.project_files(conn, project.id)


def delete_file_rows(conn: Connection, file_ids: Sequence[int]) -> None:
    for chunk in records.chunks(list(file_ids)):
        conn.execute(delete(files).where(files.c.id.in_(chunk)))


def delete_release_rows(conn: Connection, release_ids: Sequence[int]) -> None:
    for chunk in records.chunks(list(release_ids)):
        conn.execute(delete(releases).where(releases.c.id.in_(chunk)))


def delete_project_if_empty(conn: Connection, project_id: int) -> bool:
    """Remove a project row once it has neither files nor releases."""
    has_files = conn.scalar(select(files.c.id).where(files.c.project_id == project_id).limit(1))
    has_releases = conn.scalar(
        select(releases.c.id).where(releases.c.project_id == project_id).limit(1)
    )
    if has_files is None and has_releases is None:
        conn.execute(delete(projects).where(projects.c.id == project_id))
        return True
    return False


def set_yanked(
    conn: Connection, release_id: int, file_ids: Sequence[int], reason: str | None
) -> None:
    """Yank (reason, possibly empty) or un-yank (None) a release and all its files (PEP 592)."""
    conn.execute(update(releases).where(releases.c.id == release_id).values(yanked=reason))
    for chunk in records.chunks(list(file_ids)):
        conn.execute(update(files).where(files.c.id.in_(chunk)).values(yanked=reason))
