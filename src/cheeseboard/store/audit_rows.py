"""SQL for the audit log (issue 21): an append-only record of who did what and when.

Entries are appended inside the write transaction of the change they describe, so a change and
its record commit together or not at all. Nothing in the server updates or deletes a row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Row

from cheeseboard.store.schema import audit_log

MAX_DETAIL_BYTES = 16 * 1024
"""A detail is cut to this many bytes of JSON (a config change quoting a 1,000-entry list is
recorded as changed, not copied whole)."""
MAX_READ = 1000  # rows one read returns at most
MAX_TARGET = 512  # characters of a target kept (a failed sign-in's user name is the caller's)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing done: ``actor`` (None: anonymous or the server itself) did ``action`` (e.g.
    ``user-create``, ``block-add``, ``login-failed``) to ``target`` (e.g. ``alice/dev``)."""

    actor: str | None
    action: str
    target: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)
    client: str | None = None


def rfc3339(at: float) -> str:
    """``at`` (seconds since the epoch) as RFC 3339 UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: float
    actor: str | None
    action: str
    target: str | None
    detail: Mapping[str, object]
    client: str | None

    def to_json(self) -> dict[str, object]:
        """The row as the API, ``cheeseboard-server audit --json`` and dumps show it."""
        return {
            "id": self.id,
            "at": rfc3339(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": dict(self.detail),
            "client": self.client,
        }


def _bounded(detail: Mapping[str, object]) -> dict[str, object]:
    text = json.dumps(dict(detail), default=str, sort_keys=True)
    if len(text.encode()) <= MAX_DETAIL_BYTES:
        loaded: dict[str, object] = json.loads(text)
        return loaded
    return {"truncated": text.encode()[:MAX_DETAIL_BYTES].decode(errors="ignore")}


def append(conn: Connection, entry: AuditEntry, at: float | None = None) -> int:
    """Record ``entry`` (in the caller's write transaction); returns its id."""
    result = conn.execute(
        insert(audit_log).values(
            at=time.time() if at is None else at,
            actor=entry.actor[:64] if entry.actor else None,
            action=entry.action[:64],
            target=entry.target[:MAX_TARGET] if entry.target else None,
            detail=_bounded(entry.detail),
            client=entry.client[:64] if entry.client else None,
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def read(
    conn: Connection,
    *,
    after_id: int = 0,
    limit: int = 100,
    actor: str | None = None,
    action: str | None = None,
    since: float | None = None,
    newest_first: bool = True,
) -> list[AuditRow]:
    """Rows with an id above ``after_id`` (all when 0) and recorded at or after ``since``,
    filtered, at most ``limit`` (bounded by MAX_READ), newest first unless told otherwise."""
    query = select(audit_log).where(audit_log.c.id > after_id)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    order = audit_log.c.id.desc() if newest_first else audit_log.c.id.asc()
    query = query.order_by(order).limit(max(1, min(limit, MAX_READ)))
    return [_row(row) for row in conn.execute(query)]


def every(conn: Connection) -> Iterator[AuditRow]:
    """All rows, oldest first, streamed (for export: not bounded by MAX_READ)."""
    query = select(audit_log).order_by(audit_log.c.id)
    for row in conn.execution_options(stream_results=True, yield_per=1000).execute(query):
        yield _row(row)


def _row(row: Row[Any]) -> AuditRow:
    return AuditRow(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        detail=row.detail or {},
        client=row.client,
    )


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
