"""Tox results attached to release files (``devpi test``): add one, list those of some files,
find one by name. Call them through ``Database.read``/``write``, e.g.
``await db.read(toxresult_rows.for_files, [file.id])``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.store import records
from cheeseboard.store.records import ToxResultRecord
from cheeseboard.store.schema import files, toxresults


def count_for_file(conn: Connection, file_id: int) -> int:
    return int(conn.scalar(select(func.count()).where(toxresults.c.file_id == file_id)) or 0)


def add(conn: Connection, result: ToxResultRecord) -> int:
    """Store ``result`` (its ``id`` is ignored); the new row's id."""
    values = {
        "file_id": result.file_id,
        "name": result.name,
        "data": result.data,
        "sha256": result.sha256,
        "uploaded_by": result.uploaded_by,
        "created": result.created,
    }
    key = conn.execute(insert(toxresults).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def for_files(conn: Connection, file_ids: Sequence[int]) -> dict[int, list[ToxResultRecord]]:
    """The results of each of ``file_ids`` that has any, oldest first."""
    found: dict[int, list[ToxResultRecord]] = {}
    for chunk in records.chunks(list(file_ids)):
        rows = conn.execute(
            select(toxresults)
            .where(toxresults.c.file_id.in_(chunk))
            .order_by(toxresults.c.created, toxresults.c.id)
        )
        for row in rows:
            result = records.record(ToxResultRecord, row)
            found.setdefault(result.file_id, []).append(result)
    return found


def by_name(conn: Connection, index_id: int, name: str) -> ToxResultRecord | None:
    """The result called ``name`` among the files of index ``index_id``."""
    row = conn.execute(
        select(toxresults)
        .join(files, files.c.id == toxresults.c.file_id)
        .where(files.c.index_id == index_id, toxresults.c.name == name)
    ).first()
    return None if row is None else records.record(ToxResultRecord, row)


def copy(conn: Connection, source_file_id: int, target_file_id: int) -> list[str]:
    """Give the file ``target_file_id`` the results of ``source_file_id`` it lacks (a push);
    the names copied."""
    have = set(
        conn.scalars(select(toxresults.c.name).where(toxresults.c.file_id == target_file_id))
    )
    copied = []
    for result in for_files(conn, [source_file_id]).get(source_file_id, []):
        if result.name not in have:
            add(conn, dataclasses.replace(result, file_id=target_file_id))
            copied.append(result.name)
    return copied
