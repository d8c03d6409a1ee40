"""The audit log's service side (issue 21): who is acting, the entries the use cases record, and
reading the log (root only).

A use case takes an ``Actor`` in its request's task (the client address is a context variable
there, services/throttle.py) and records entries with ``record`` inside the write transaction of
the change, on the database thread: the change and its entry commit together or not at all.
Details name what changed, never a password or its hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cheeseboard.core import acl
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import Transaction
from cheeseboard.services.throttle import client_address
from cheeseboard.store import audit_rows
from cheeseboard.store.audit_rows import AuditEntry, AuditRow
from cheeseboard.store.db import Database

SMALL_VALUE = 200
"""Bytes of JSON up to which a config value is quoted in a detail; a longer one (a long list of
exemptions or bases) is recorded as changed, with its size."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, and from which client address (None: not from a request)."""

    user: str | None
    client: str | None = None

    def entry(
        self, action: str, target: str | None, detail: Mapping[str, object] | None = None
    ) -> AuditEntry:
        return AuditEntry(self.user, action, target, detail or {}, self.client)


def actor(identity: Identity) -> Actor:
    """The acting user and the address of the request being served (call it in that task)."""
    return Actor(identity.user, client_address.get())


def record(
    tx: Transaction,
    who: Actor,
    action: str,
    target: str | None,
    detail: Mapping[str, object] | None = None,
) -> None:
    """Append an entry in ``tx`` (the change's own write transaction)."""
    audit_rows.append(tx.conn, who.entry(action, target, detail))


def shown(value: Any) -> Any:
    """``value`` itself when its JSON is small, else a note of its size."""
    text = json.dumps(value, default=str, sort_keys=True)
    if len(text.encode()) <= SMALL_VALUE:
        return value
    if isinstance(value, list | dict):
        return f"({len(value)} entries)"
    return f"({len(text)} characters)"


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The keys whose values differ, each with its old and new value (small ones quoted)."""
    changed: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changed[key] = {"old": shown(old.get(key)), "new": shown(new.get(key))}
    return changed


async def read_log(
    db: Database,
    identity: Identity,
    *,
    after: int = 0,
    limit: int = 100,
    user: str | None = None,
    action: str | None = None,
) -> list[AuditRow]:
    """The newest entries (filtered by acting ``user`` and ``action``); root only."""
    if identity.user != acl.ROOT:
        if identity.anonymous:
            raise Unauthorized("root only")
        raise Forbidden("root only")
    return await db.read(audit_rows.read, after_id=after, limit=limit, actor=user, action=action)


def compact(detail: Mapping[str, object]) -> str:
    """A detail on one line, for the CLI and the web page (empty for no detail)."""
    if not detail:
        return ""
    return json.dumps(dict(detail), default=str, sort_keys=True, separators=(",", ":"))
