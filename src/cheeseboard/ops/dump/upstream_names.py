"""The dependency-confusion guard for imports: which projects an import would bring onto a stage
although a mirror in the stage's bases has the name.

An import is offline: it cannot ask upstream as services/upstream_names.py does for uploads. It
decides from what the target store and the dump know together, after the dump's rows are written
in the import's transaction: a mirror "has" a name when it holds a project row for it that
upstream answered (``found``), whether the target had cached it or the dump carried it. A stage
project is checked when the import gives it its first release file (a doc zip alone does not
make a name "ours", as for uploads), unless the stage says ``allow_upstream_names``.

Names neither side has cached are not detected; the import then leaves the project as the source
had it, and later uploads of it pass as for any existing project.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cheeseboard.core.sro import IndexNode, resolution_order
from cheeseboard.store.schema import indexes, projects, users


@dataclass(frozen=True, slots=True)
class Shadowing:
    """A stage project whose name mirrors in the stage's bases also have."""

    index: str
    project: str
    mirrors: tuple[str, ...]

    def message(self) -> str:
        return (
            f"{self.project!r} exists on {', '.join(self.mirrors)}; adding it to {self.index} "
            "would shadow the public package"
        )


def shadowing(conn: Connection, candidates: Iterable[tuple[int, str]]) -> list[Shadowing]:
    """Of the ``(index id, project)`` pairs an import gave their first release file, those a
    mirror in the index's resolution order has, on stages without ``allow_upstream_names``."""
    rows = conn.execute(
        select(
            indexes.c.id, indexes.c.name, indexes.c.type, indexes.c.config, users.c.name.label("u")
        ).join(users, users.c.id == indexes.c.user_id)
    ).all()
    names = {row.id: f"{row.u}/{row.name}" for row in rows}
    ids = {fullname: index_id for index_id, fullname in names.items()}
    configs = {row.id: dict(row.config or {}) for row in rows}
    nodes = {
        names[row.id]: IndexNode.from_config(names[row.id], {**configs[row.id], "type": row.type})
        for row in rows
    }
    found: list[Shadowing] = []
    for index_id, project in sorted(candidates):
        fullname = names[index_id]
        if nodes[fullname].is_mirror or configs[index_id].get("allow_upstream_names", False):
            continue
        mirrors = tuple(
            member
            for member in resolution_order(fullname, nodes)
            if nodes[member].is_mirror and _has(conn, ids[member], project)
        )
        if mirrors:
            found.append(Shadowing(fullname, project, mirrors))
    return found


def _has(conn: Connection, mirror_id: int, project: str) -> bool:
    query = select(projects.c.id).where(
        projects.c.index_id == mirror_id, projects.c.name == project, projects.c.found.is_(True)
    )
    return conn.scalar(query) is not None
