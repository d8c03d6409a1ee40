"""SQL for PEP 792 project statuses set by owners (issue 21): the ``status`` and
``status_reason`` columns of ``projects`` (NULL: active), which mirrors fill from upstream."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import indexes, projects

QUARANTINED = "quarantined"

Status = tuple[str | None, str | None]
"""A project's status and reason (None, None: active)."""


def set_status(conn: Connection, project_id: int, status: str | None, reason: str | None) -> None:
    conn.execute(
        update(projects)
        .where(projects.c.id == project_id)
        .values(status=status, status_reason=reason if status else None)
    )


CLOSED = ("archived", QUARANTINED)
"""Statuses under which a project takes no uploads (PEP 792)."""


def status_of(conn: Connection, index_id: int, name: str) -> str | None:
    """The status set on project ``name`` of the index (None: active or no such project)."""
    value = conn.scalar(
        select(projects.c.status).where(projects.c.index_id == index_id, projects.c.name == name)
    )
    return None if value is None else str(value)


def statuses_of(conn: Connection, index_ids: Sequence[int], name: str) -> dict[int, Status]:
    """The status of project ``name`` on each of the given indexes that has it set."""
    if not index_ids:
        return {}
    rows = conn.execute(
        select(projects.c.index_id, projects.c.status, projects.c.status_reason).where(
            projects.c.index_id.in_(index_ids),
            projects.c.name == name,
            projects.c.status.is_not(None),
        )
    )
    return {int(row.index_id): (row.status, row.status_reason) for row in rows}


def quarantined_ids(conn: Connection) -> set[int]:
    """Ids of the quarantined projects of stages (a handful: read whole, kept in memory).
    Mirrors' statuses are upstream's: a quarantined upstream project lists no files."""
    rows = conn.execute(
        select(projects.c.id)
        .join(indexes, indexes.c.id == projects.c.index_id)
        .where(projects.c.status == QUARANTINED, indexes.c.type == "stage")
    )
    return {int(project_id) for (project_id,) in rows}
