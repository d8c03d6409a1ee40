"""Documentation zips of stage projects: which versions have one, and its file row.

A doc zip is a file row with packagetype ``doczip`` (see services/uploads.py, ``upload_docs``);
these read it without touching the release queries. Call them through the database's read
threads, e.g. ``await db.read(docs.doc_versions, index.id, "my-project")``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cheeseboard.core.distfiles import canonical_version, version_sort_key
from cheeseboard.store.records import FileRecord, file_from_row
from cheeseboard.store.schema import files, projects

DOCZIP = "doczip"


def doc_zips(conn: Connection, index_id: int, project: str) -> list[FileRecord]:
    """The doc zip rows of a project (normalized name) on one index, in upload order."""
    rows = conn.execute(
        select(files)
        .join(projects, projects.c.id == files.c.project_id)
        .where(
            projects.c.index_id == index_id,
            projects.c.name == project,
            files.c.packagetype == DOCZIP,
        )
        .order_by(files.c.created, files.c.id)
    )
    return [file_from_row(row) for row in rows]


def doc_versions(conn: Connection, index_id: int, project: str) -> set[str]:
    """The versions (as uploaded) of a project that have documentation on this index.

    From async code: ``await db.read(doc_versions, index_id, normalized_name)``.
    """
    return {record.version for record in doc_zips(conn, index_id, project) if record.version}


def pick_doc_zip(records: list[FileRecord], version: str) -> FileRecord | None:
    """The doc zip for ``version``: ``+latest``, ``+stable``, or a version compared canonically.

    ``+latest`` is the highest version with docs; ``+stable`` the highest that is not a pre- or
    dev-release. Of two zips for the same canonical version (``1.0`` and ``1.0.0``) the exact
    spelling wins, then the newer upload.
    """
    usable = [r for r in records if r.version and r.blob_sha256]
    if version in ("+latest", "+stable"):
        if version == "+stable":
            usable = [r for r in usable if _is_stable(r.version or "")]
        if not usable:
            return None
        # max() keeps the first of equal keys; upload order puts the newest upload last.
        return max(reversed(usable), key=lambda r: version_sort_key(r.version or ""))
    wanted = canonical_version(version)
    same = [r for r in usable if canonical_version(r.version or "") == wanted]
    exact = [r for r in same if r.version == version]
    chosen = exact or same
    return chosen[-1] if chosen else None


def _is_stable(version: str) -> bool:
    kind, parsed = version_sort_key(version)
    return kind == 1 and not isinstance(parsed, str) and not parsed.is_prerelease
