"""SQL for imported OSV advisories (issue 21) and the blocks their ``MAL-`` entries made.

The table has one row per advisory and project: the row of an advisory's first project has the
OSV id as its key, each further project's ``<id>#<project>`` (an advisory naming several projects
is rare on PyPI). Blocks an import made carry the source ``osv:<id>``; they are replaced here by
exact source, so re-importing one advisory never touches another's blocks or a person's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import advisories, blocks

SOURCE_PREFIX = "osv:"
_CHUNK = 500  # ids per IN (...) clause


@dataclass(frozen=True, slots=True)
class AdvisoryRow:
    id: str  # the OSV id (without the "#project" of a further project's key)
    project: str
    summary: str | None
    details: str | None
    aliases: list[str]
    affected: Mapping[str, Any]
    fixed: list[str]
    link: str | None
    modified: str | None
    withdrawn: str | None


def row_key(advisory_id: str, position: int, project: str) -> str:
    return advisory_id if position == 0 else f"{advisory_id}#{project}"


def source_of(advisory_id: str) -> str:
    return SOURCE_PREFIX + advisory_id


def modified_by_id(conn: Connection) -> dict[str, str | None]:
    """Each stored advisory's ``modified`` (first-project rows), to skip unchanged ones."""
    rows = conn.execute(select(advisories.c.id, advisories.c.modified))
    return {row.id: row.modified for row in rows if "#" not in row.id}


def remove(conn: Connection, advisory_ids: Iterable[str]) -> int:
    """Delete the rows and the blocks of these advisories; returns how many blocks went."""
    ids = list(advisory_ids)
    removed_blocks = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        further = [advisories.c.id.startswith(f"{i}#", autoescape=True) for i in chunk]
        conn.execute(delete(advisories).where(or_(advisories.c.id.in_(chunk), *further)))
        sources = [source_of(i) for i in chunk]
        removed_blocks += conn.execute(delete(blocks).where(blocks.c.source.in_(sources))).rowcount
    return removed_blocks


def insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert advisory rows (column: value mappings), in batches."""
    for start in range(0, len(rows), _CHUNK):
        conn.execute(insert(advisories), rows[start : start + _CHUNK])


def for_project(conn: Connection, project: str) -> list[AdvisoryRow]:
    """The advisories naming ``project`` (normalized), in id order."""
    query = select(advisories).where(advisories.c.project == project).order_by(advisories.c.id)
    return [
        AdvisoryRow(
            id=row.id.split("#", 1)[0],
            project=row.project,
            summary=row.summary,
            details=row.details,
            aliases=list(row.aliases or []),
            affected=row.affected or {},
            fixed=list(row.fixed or []),
            link=row.link,
            modified=row.modified,
            withdrawn=row.withdrawn,
        )
        for row in conn.execute(query)
    ]
