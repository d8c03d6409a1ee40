"""Reads for the web UI's listings: projects per index, a page of an index's projects with
their latest release. Pages are bounded (``limit``) so a big mirror never loads whole."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import files, projects
from cheeseboard.store.search import best_versions


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """One line of an index page."""

    name: str
    display_name: str
    version: str | None
    summary: str | None
    updated: float | None


def project_counts(conn: Connection) -> dict[int, int]:
    """Projects with a page, per index id (mirrors: the names seen so far)."""
    rows = conn.execute(
        select(projects.c.index_id, func.count())
        .where(projects.c.found.is_(True))
        .group_by(projects.c.index_id)
    )
    return {int(index_id): int(count) for index_id, count in rows}


def index_projects(
    conn: Connection, index_ids: Sequence[int], limit: int, offset: int
) -> tuple[list[ProjectRow], int]:
    """A page of the projects on ``index_ids`` by name, each with its latest release (stages),
    and how many there are in all."""
    where = (projects.c.index_id.in_(index_ids), projects.c.found.is_(True))
    total = int(conn.scalar(select(func.count(projects.c.name.distinct())).where(*where)) or 0)
    names = [
        str(name)
        for (name,) in conn.execute(
            select(projects.c.name)
            .where(*where)
            .group_by(projects.c.name)
            .order_by(projects.c.name)
            .limit(limit)
            .offset(offset)
        )
    ]
    if not names:
        return [], total
    rows = conn.execute(
        select(
            projects.c.id,
            projects.c.index_id,
            projects.c.name,
            projects.c.display_name,
            projects.c.created,
        ).where(*where, projects.c.name.in_(names))
    ).all()
    order = {index_id: position for position, index_id in enumerate(index_ids)}
    first: dict[str, tuple[int, str, float]] = {}
    for project_id, _index_id, name, display_name, created in sorted(
        rows, key=lambda row: order.get(row.index_id, len(order))
    ):
        first.setdefault(str(name), (int(project_id), str(display_name), float(created)))
    ids = [value[0] for value in first.values()]
    latest = best_versions(conn, ids)
    uploads = dict(
        conn.execute(
            select(files.c.project_id, func.max(files.c.created))
            .where(files.c.project_id.in_(ids))
            .group_by(files.c.project_id)
        ).all()
    )
    result = []
    for name in names:
        project_id, display_name, created = first[name]
        version, summary = latest.get(project_id, (None, None))
        updated = uploads.get(project_id) or created
        result.append(ProjectRow(name, display_name, version, summary, updated))
    return result, total
