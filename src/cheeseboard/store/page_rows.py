"""What each rendered simple page shows, as a fingerprint, and since when (a cache, never exported).

One row per (index, project) page that was found: the fingerprint of its content (a hash of the
page model, services/pages.py), the changelog serial its JSON carries as ``_last-serial`` and the
time it got that content (its ``Last-Modified``). Every worker and node building a page with the
same content adopts the row's serial and time, so the same content renders to the same bytes and
the same strong ETag everywhere, across restarts. Project lists use the project name ``+list``
(no project name can contain ``+``).

The table is a cache: ops/dump neither exports nor imports it, a lost row only means the next
build picks a new serial and time, and deleting an index deletes its rows (foreign key).
Each function takes the connection to use; call them through ``Database.read``/``write``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Column, Float, ForeignKey, Integer, String, Table, func, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import changelog, indexes, metadata

LIST_KEY = "+list"
"""The project name a project list's row is kept under."""

page_states = Table(
    "page_states",
    metadata,
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True),
    Column("project", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("serial", Integer, nullable=False),
    Column("modified", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class PageState:
    """The content a page has had since ``modified`` (wall clock), and its ``_last-serial``."""

    fingerprint: str
    serial: int
    modified: float
    new: bool = False
    """Made by this ``claim_state``: no rendering can be stored for it yet."""


def get_state(conn: Connection, index_id: int, project: str) -> PageState | None:
    row = conn.execute(
        select(page_states.c.fingerprint, page_states.c.serial, page_states.c.modified).where(
            page_states.c.index_id == index_id, page_states.c.project == project
        )
    ).first()
    return None if row is None else PageState(str(row[0]), int(row[1]), float(row[2]))


def claim_state(conn: Connection, index_id: int, project: str, fingerprint: str) -> PageState:
    """The state of a page whose content has ``fingerprint``: the stored one when it has that
    fingerprint already (another worker or node built the same content first), else a new one
    (the newest serial, now) that replaces the stored one. Run in a write transaction: writes
    are serialized (store/db.py), so concurrent builders of the same content agree."""
    current = get_state(conn, index_id, project)
    if current is not None and current.fingerprint == fingerprint:
        return current
    serial = int(conn.scalar(select(func.max(changelog.c.serial))) or 0)
    state = PageState(fingerprint, serial, time.time(), new=True)
    if conn.scalar(select(indexes.c.id).where(indexes.c.id == index_id)) is None:
        return state  # the index was deleted meanwhile: nothing to remember
    values = {"fingerprint": fingerprint, "serial": state.serial, "modified": state.modified}
    if current is None:
        conn.execute(insert(page_states).values(index_id=index_id, project=project, **values))
    else:
        conn.execute(
            sql_update(page_states)
            .where(page_states.c.index_id == index_id, page_states.c.project == project)
            .values(**values)
        )
    return state
