"""Projects and their files: mirror pages as refreshed from upstream, stage projects as uploaded,
and the blob rows their cached or uploaded bytes are stored under.

Each function takes the connection to use; call them through ``Database.read``/``write``, e.g.
``await db.read(project_rows.file_by_filename, index.id, filename)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from cheeseboard.store import records
from cheeseboard.store.records import FileRecord, NewFile, ProjectRecord
from cheeseboard.store.schema import blobs, files, projects, toxresults


def get_project(conn: Connection, index_id: int, name: str) -> ProjectRecord | None:
    row = (
        conn.execute(
            select(projects).where(projects.c.index_id == index_id, projects.c.name == name)
        )
    ).first()
    return None if row is None else records.project_from_row(row)


def project_with_files(
    conn: Connection, index_id: int, name: str
) -> tuple[ProjectRecord | None, list[FileRecord]]:
    """A project and its files, read in one transaction."""
    project = get_project(conn, index_id, name)
    return project, project_files(conn, project.id) if project else []


def project_files(conn: Connection, project_id: int) -> list[FileRecord]:
    rows = conn.execute(
        select(files).where(files.c.project_id == project_id).order_by(files.c.position)
    )
    return [records.file_from_row(row) for row in rows]


def file_by_filename(
    conn: Connection, index_id: int, filename: str
) -> tuple[FileRecord, str] | None:
    """The file row and its project's normalized name."""
    row = (
        conn.execute(
            select(files, projects.c.name.label("project_name"))
            .join(projects, projects.c.id == files.c.project_id)
            .where(files.c.index_id == index_id, files.c.filename == filename)
        )
    ).first()
    return None if row is None else (records.file_from_row(row), str(row.project_name))


def project_name(conn: Connection, project_id: int) -> str | None:
    value = conn.scalar(select(projects.c.name).where(projects.c.id == project_id))
    return None if value is None else str(value)


def stage_files(
    conn: Connection, index_ids: Sequence[int], name: str
) -> dict[int, list[FileRecord]]:
    """The files of project ``name`` on each of the given indexes, in upload order."""
    if not index_ids:
        return {}
    rows = conn.execute(
        select(files)
        .join(projects, projects.c.id == files.c.project_id)
        .where(projects.c.index_id.in_(index_ids), projects.c.name == name)
        .order_by(files.c.position, files.c.id)
    )
    found: dict[int, list[FileRecord]] = {}
    for row in rows:
        record = records.file_from_row(row)
        found.setdefault(record.index_id, []).append(record)
    return found


def project_names_of(conn: Connection, index_ids: Sequence[int]) -> list[str]:
    """Names of projects with a page on any of the indexes (found mirror names included)."""
    if not index_ids:
        return []
    rows = conn.execute(
        select(projects.c.name)
        .where(projects.c.index_id.in_(index_ids), projects.c.found.is_(True))
        .distinct()
        .order_by(projects.c.name)
    )
    return [str(name) for (name,) in rows]


def project_names(conn: Connection, index_id: int) -> list[str]:
    rows = conn.execute(
        select(projects.c.name)
        .where(projects.c.index_id == index_id, projects.c.found.is_(True))
        .order_by(projects.c.name)
    )
    return [str(name) for (name,) in rows]


def _ensure_project(conn: Connection, index_id: int, name: str, display_name: str) -> ProjectRecord:
    existing = get_project(conn, index_id, name)
    if existing is not None:
        return existing
    conn.execute(
        insert(projects).values(
            index_id=index_id, name=name, display_name=display_name, created=time.time(), found=True
        )
    )
    created = get_project(conn, index_id, name)
    assert created is not None
    return created


def save_mirror_page(
    conn: Connection,
    index_id: int,
    name: str,
    display_name: str,
    new_files: Sequence[NewFile],
    checked_at: float,
    etag: str | None,
    upstream_serial: int | None,
    status: str | None,
    status_reason: str | None,
    *,
    keep_known_facts: bool = False,
) -> bool:
    """Store a freshly fetched mirror page; return True if anything a page shows changed.

    Rows are diffed by filename so files already cached keep their blob, and an unchanged page
    writes only its check time. Statements are batched: a page of thousands of files costs a
    handful of round trips, not one per file. With ``keep_known_facts``, a fact (KnownFacts) the
    page does not give is kept from the stored row of the same file (no other sha256): a page
    that lacks sizes and upload times leaves those learnt before (``fill_file_facts``) in place.
    """
    project = _ensure_project(conn, index_id, name, display_name)
    old = {record.filename: record for record in project_files(conn, project.id)}
    changed = (
        not project.found or project.status != status or project.status_reason != status_reason
    )
    wanted: dict[str, tuple[int, NewFile]] = {}
    for position, new in enumerate(new_files):
        wanted.setdefault(new.filename, (position, new))  # first link wins, as in a merged page
    # Files another project of this index already lists stay with that project.
    taken = _filenames_elsewhere(conn, index_id, project.id, [f for f in wanted if f not in old])
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for filename, (position, new) in wanted.items():
        record = old.get(filename)
        values = {f: getattr(new, f) for f in records.FILE_FIELDS}
        if (
            keep_known_facts
            and record is not None
            and (values["sha256"] is None or record.sha256 in (None, values["sha256"]))
        ):
            for fact in KnownFacts._fields:
                if values[fact] is None:
                    values[fact] = getattr(record, fact)
        if record is None:
            if filename not in taken:
                inserts.append(
                    {
                        "index_id": index_id,
                        "project_id": project.id,
                        "filename": filename,
                        "position": position,
                        "created": checked_at,
                        "blob_sha256": None,
                        **values,
                    }
                )
            continue
        blob = record.blob_sha256
        if blob is not None:
            # Facts learned from the cached bytes stay unless upstream now says otherwise.
            values["sha256"] = values["sha256"] or record.sha256
            if values["size"] is None:
                values["size"] = record.size
            values["core_metadata_sha256"] = (
                values["core_metadata_sha256"] or record.core_metadata_sha256
            )
            if values["sha256"] != blob:
                blob = None  # upstream replaced the file: fetch it again
        current = {f: getattr(record, f) for f in records.FILE_FIELDS}
        if current != values or record.position != position or blob != record.blob_sha256:
            row = {"position": position, "blob_sha256": blob, **values}
            updates.append({"b_id": record.id, **{f"b_{k}": v for k, v in row.items()}})
    if inserts:
        conn.execute(insert(files), inserts)
    if updates:
        columns = [key[2:] for key in updates[0] if key != "b_id"]
        statement = (
            update(files)
            .where(files.c.id == bindparam("b_id"))
            .values({column: bindparam(f"b_{column}") for column in columns})
        )
        conn.execute(statement, updates)
    gone = [record.id for filename, record in old.items() if filename not in wanted]
    for chunk in records.chunks(gone):
        conn.execute(delete(files).where(files.c.id.in_(chunk)))
    changed = changed or bool(inserts or updates or gone)
    conn.execute(
        update(projects)
        .where(projects.c.id == project.id)
        .values(
            checked_at=checked_at,
            found=True,
            display_name=display_name,
            upstream_etag=etag,
            upstream_serial=upstream_serial,
            status=status,
            status_reason=status_reason,
        )
    )
    return changed


class KnownFacts(NamedTuple):
    """The facts of a file row an upstream may give later than its page (PyPI's JSON API)."""

    sha256: str | None
    size: int | None
    upload_time: str | None
    core_metadata_sha256: str | None


def fill_file_facts(conn: Connection, facts: Mapping[int, KnownFacts]) -> None:
    """Set these facts of the file rows with these ids, in one batched statement; the caller
    decides what may be overwritten (services/mirror.py fills only what a row lacks)."""
    if not facts:
        return
    params = [
        {"b_id": file_id, **{f"b_{k}": v for k, v in f._asdict().items()}}
        for file_id, f in facts.items()
    ]
    conn.execute(
        update(files)
        .where(files.c.id == bindparam("b_id"))
        .values({field: bindparam(f"b_{field}") for field in KnownFacts._fields}),
        params,
    )


def _filenames_elsewhere(
    conn: Connection, index_id: int, project_id: int, filenames: Sequence[str]
) -> set[str]:
    taken: set[str] = set()
    for chunk in records.chunks(filenames):
        rows = conn.execute(
            select(files.c.filename).where(
                files.c.index_id == index_id,
                files.c.project_id != project_id,
                files.c.filename.in_(chunk),
            )
        )
        taken.update(str(filename) for (filename,) in rows)
    return taken


def project_exists_on(conn: Connection, index_id: int, name: str) -> bool:
    """Whether ``name`` has a release file on the index (a stage project exists through its
    files; a doc zip alone does not make it one)."""
    query = (
        select(files.c.id)
        .join(projects, projects.c.id == files.c.project_id)
        .where(
            projects.c.index_id == index_id,
            projects.c.name == name,
            files.c.packagetype != "doczip",
        )
        .limit(1)
    )
    return conn.scalar(query) is not None


def ensure_stage_project(conn: Connection, index_id: int, name: str, display_name: str) -> int:
    return _ensure_project(conn, index_id, name, display_name).id


def put_stage_file(
    conn: Connection, index_id: int, project_id: int, new: NewFile, uploader: str | None
) -> None:
    """Insert an uploaded file, or replace the row of the same filename (volatile indexes).

    The caller decides in the same write transaction whether a row of that name may be
    replaced (``core.uploads.check_existing_file``); this only writes."""
    values = {f: getattr(new, f) for f in records.FILE_FIELDS}
    row = conn.execute(
        select(files.c.id, files.c.sha256).where(
            files.c.index_id == index_id, files.c.filename == new.filename
        )
    ).first()
    if row is not None:
        existing = row.id
        if row.sha256 != new.sha256:  # other bytes: the tox results were of the old ones
            conn.execute(delete(toxresults).where(toxresults.c.file_id == existing))
        conn.execute(
            update(files)
            .where(files.c.id == existing)
            .values(blob_sha256=new.sha256, uploaded_by=uploader, **values)
        )
        return
    position = conn.scalar(
        select(func.count()).select_from(files).where(files.c.project_id == project_id)
    )
    conn.execute(
        insert(files).values(
            index_id=index_id,
            project_id=project_id,
            filename=new.filename,
            blob_sha256=new.sha256,
            uploaded_by=uploader,
            position=int(position or 0),
            created=time.time(),
            **values,
        )
    )


def save_mirror_not_found(conn: Connection, index_id: int, name: str, checked_at: float) -> bool:
    """Remember that upstream has no such project; return True if it had a page before."""
    project = get_project(conn, index_id, name)
    if project is None:
        conn.execute(
            insert(projects).values(
                index_id=index_id,
                name=name,
                display_name=name,
                created=checked_at,
                checked_at=checked_at,
                found=False,
            )
        )
        return False
    conn.execute(delete(files).where(files.c.project_id == project.id))
    conn.execute(
        update(projects)
        .where(projects.c.id == project.id)
        .values(checked_at=checked_at, found=False)
    )
    return project.found


def mark_checked(conn: Connection, project_id: int, checked_at: float) -> None:
    conn.execute(update(projects).where(projects.c.id == project_id).values(checked_at=checked_at))


def record_cached_file(
    conn: Connection,
    file_id: int,
    blob_sha256: str,
    size: int,
    core_metadata_sha256: str | None = None,
) -> bool:
    """Note that a file's bytes are stored; return True if a page-visible fact changed."""
    row = (conn.execute(select(files).where(files.c.id == file_id))).first()
    if row is None:
        return False
    record = records.file_from_row(row)
    values: dict[str, Any] = {"blob_sha256": blob_sha256}
    if record.sha256 is None:
        values["sha256"] = blob_sha256
    if record.size is None:
        values["size"] = size
    if record.core_metadata_sha256 is None and core_metadata_sha256 is not None:
        values["core_metadata_sha256"] = core_metadata_sha256
    conn.execute(update(files).where(files.c.id == file_id).values(**values))
    add_blob(conn, blob_sha256, size)
    return len(values) > 1


def set_core_metadata(conn: Connection, file_id: int, sha256: str) -> None:
    conn.execute(update(files).where(files.c.id == file_id).values(core_metadata_sha256=sha256))


def add_blob(conn: Connection, sha256: str, size: int) -> None:
    exists = conn.scalar(select(blobs.c.sha256).where(blobs.c.sha256 == sha256))
    if exists is None:
        conn.execute(insert(blobs).values(sha256=sha256, size=size, created=time.time()))
