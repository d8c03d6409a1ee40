"""The changelog: one row per committed change, with its serial and the (index, project) it touched.

Processes and nodes catch up on it to invalidate their caches (see services/changes.py). Each
function takes the connection to use; call them through ``Database.read``/``write``.
"""

from __future__ import annotations

import time

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.core.changes import ChangeKind
from cheeseboard.store.records import Change
from cheeseboard.store.schema import changelog


def log_change(
    conn: Connection, index_id: int | None, project: str | None, kind: ChangeKind
) -> int:
    result = conn.execute(
        insert(changelog).values(created=time.time(), index_id=index_id, project=project, kind=kind)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def max_serial(conn: Connection) -> int:
    value = conn.scalar(select(func.max(changelog.c.serial)))
    return int(value or 0)


def changes_since(conn: Connection, serial: int, limit: int = 10_000) -> list[Change]:
    rows = conn.execute(
        select(changelog)
        .where(changelog.c.serial > serial)
        .order_by(changelog.c.serial)
        .limit(limit)
    )
    return [Change(r.serial, r.index_id, r.project, ChangeKind(r.kind)) for r in rows]
