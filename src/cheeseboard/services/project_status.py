"""PEP 792 statuses of stage projects, set by the index owner or root (issue 21).

``archived`` and ``deprecated`` are shown on the simple pages; ``quarantined`` also takes the
project's files off them and refuses their downloads. The simple pages read the status from the
project row when they are built (services/pages.py); downloads ask ``is_quarantined``, a set in
memory, so that the hot path (http/hot.py) can decide without awaiting anything. Every change is
one transaction with its changelog row (every worker drops the project's pages and reloads the
set) and its audit entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.names import normalize_project_name
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.store import audit_rows, project_rows, project_status_rows
from cheeseboard.store.audit_rows import AuditEntry
from cheeseboard.store.db import Database
from cheeseboard.store.project_status_rows import QUARANTINED
from cheeseboard.store.records import Change, FileRecord, IndexRecord

ACTIVE = "active"
STATUSES = (ACTIVE, "archived", "deprecated", QUARANTINED)
MAX_REASON = 1000
"""Characters of a reason: it is repeated on every simple page of the project."""
AUDIT_ACTION = "project-status"
# Changes after which the set of quarantined projects may differ (rows deleted with a project,
# an index or a user): it is read again.
_RELOAD = frozenset(
    {
        ChangeKind.PROJECT_STATUS,
        ChangeKind.REMOVE,
        ChangeKind.INDEX_DELETED,
        ChangeKind.USER_DELETED,
    }
)


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    """A stage project's status (``active`` when none is set) and its reason."""

    index: str
    project: str
    status: str
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"project": self.project, "status": self.status}
        if self.reason:
            data["reason"] = self.reason
        return data


def parse_request(body: object) -> tuple[str, str | None]:
    """The status and reason of a ``+status`` request body; raises BadRequest."""
    usage = '{"status": "archived" | "deprecated" | "quarantined" | "active", "reason": "..."}'
    if not isinstance(body, dict):
        raise BadRequest(f"send a JSON object: {usage}")
    status, reason = body.get("status"), body.get("reason")
    if status not in STATUSES:
        raise BadRequest(f"unknown status {status!r}; send {usage}")
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("the reason must be a string")
    if reason is not None and len(reason) > MAX_REASON:
        raise BadRequest(f"the reason is longer than {MAX_REASON} characters")
    return str(status), reason or None


class ProjectStatusService:
    """Read and set the PEP 792 status of stage projects."""

    def __init__(self, db: Database, changes: ChangeFeed) -> None:
        self._db = db
        self._changes = changes
        self._quarantined: frozenset[int] = frozenset()

    async def load(self) -> None:
        self._quarantined = frozenset(await self._db.read(project_status_rows.quarantined_ids))

    async def on_change(self, change: Change) -> None:
        if change.kind in _RELOAD or not change.kind.known:
            await self.load()

    def is_quarantined(self, project_id: int) -> bool:
        """Whether the files of this project (a stage's) may not be downloaded: a memory read."""
        return project_id in self._quarantined

    def check_download(self, index: IndexRecord, record: FileRecord) -> None:
        """Raise Forbidden when ``record`` belongs to a quarantined project."""
        if record.project_id in self._quarantined:
            raise Forbidden(
                f"{record.filename}: its project is quarantined on {index.fullname} (PEP 792); "
                "its files may not be downloaded"
            )

    @staticmethod
    def _stage(index: IndexRecord) -> None:
        if index.type != "stage":
            raise BadRequest(
                f"{index.fullname} is a mirror: its projects take upstream's status (PEP 792)"
            )

    async def get(self, index: IndexRecord, project: str) -> ProjectStatus:
        """The status of ``project`` on the stage ``index``; raises NotFound, BadRequest."""
        self._stage(index)
        name = normalize_project_name(project)
        record = await self._db.read(project_rows.get_project, index.id, name)
        if record is None:
            raise NotFound(f"no project {project!r} on {index.fullname}")
        return ProjectStatus(index.fullname, name, record.status or ACTIVE, record.status_reason)

    @staticmethod
    def permit(identity: Identity, index: IndexRecord) -> None:
        """Raise Unauthorized/Forbidden unless ``identity`` may set statuses on ``index``."""
        decision = acl.may_modify_index(identity.user, index.user)
        if not decision.allowed:
            if identity.anonymous:
                raise Unauthorized("set a project status: authentication required")
            raise Forbidden(f"set a project status: {decision.reason}")

    async def set(
        self,
        identity: Identity,
        index: IndexRecord,
        project: str,
        status: str,
        reason: str | None = None,
        client: str | None = None,
    ) -> ProjectStatus:
        """Set the status (``active`` clears it) as ``identity``; returns the new one."""
        self._stage(index)
        self.permit(identity, index)
        if status not in STATUSES:
            raise BadRequest(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        if reason is not None and len(reason) > MAX_REASON:
            raise BadRequest(f"the reason is longer than {MAX_REASON} characters")
        name = normalize_project_name(project)
        stored = None if status == ACTIVE else status
        entry = AuditEntry(identity.user, AUDIT_ACTION, f"{index.fullname}/{name}", client=client)
        await self._changes.write(_set, index, name, stored, reason or None, entry)
        return ProjectStatus(index.fullname, name, status, reason or None if stored else None)


def _set(
    tx: Transaction,
    index: IndexRecord,
    name: str,
    status: str | None,
    reason: str | None,
    entry: AuditEntry,
) -> None:
    record = project_rows.get_project(tx.conn, index.id, name)
    if record is None:
        raise NotFound(f"no project {name!r} on {index.fullname}")
    reason = reason if status else None
    if (record.status, record.status_reason) == (status, reason):
        return  # nothing changes: no changelog row, no audit entry
    project_status_rows.set_status(tx.conn, record.id, status, reason)
    tx.log(index.id, name, ChangeKind.PROJECT_STATUS)
    detail = {
        "old": {"status": record.status or ACTIVE, "reason": record.status_reason},
        "new": {"status": status or ACTIVE, "reason": reason},
    }
    audit_rows.append(tx.conn, dataclasses.replace(entry, detail=detail))
