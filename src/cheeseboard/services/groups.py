"""Local groups (issue 24): root creates them, names their members, deletes them. A group's
members are what ``:group:NAME`` names in ``acl_upload``, ``acl_read``, ``acl_toxresult_upload``
and ``--restrict-modify`` (core/acl.py).

Each change is one write transaction with its changelog row (kind ``groups``: every worker and
node reloads its credentials, so a removed member loses access at once) and its audit entry.
Group names follow the user name rules; a group has at most ``MAX_MEMBERS`` members, a user is
in at most ``MAX_GROUPS_PER_USER`` local groups and there are at most ``MAX_GROUPS`` groups, so
what every process keeps in memory and every permission check walks stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.names import InvalidName, checked_segment_name
from cheeseboard.services import audit
from cheeseboard.services.auth import AuthService, Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.store import group_rows
from cheeseboard.store.db import Database
from cheeseboard.store.group_rows import GroupRow

MAX_GROUPS = 1000
MAX_MEMBERS = 1000
MAX_GROUPS_PER_USER = 100
MAX_DESCRIPTION = 1000
MAX_CHANGES = 1000
"""User names in one PATCH's ``add`` and ``remove`` together."""


def group_json(row: GroupRow) -> dict[str, Any]:
    """A group as the API shows it."""
    return {"name": row.name, "description": row.description, "members": list(row.members)}


def checked_group_name(name: str) -> str:
    """A valid group name (the rules of user names), or BadRequest saying why not."""
    try:
        return checked_segment_name("group", name)
    except InvalidName as exc:
        raise BadRequest(str(exc)) from exc


def _description(body: Mapping[str, Any]) -> str | None:
    value = body.get("description")
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("group field 'description' must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise BadRequest(f"group description is longer than {MAX_DESCRIPTION} characters")
    return value


def _names(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{key}' must be a list of user names")
    return list(dict.fromkeys(value))


class GroupService:
    """Create, change, delete and list local groups; root only."""

    def __init__(self, db: Database, changes: ChangeFeed, auth: AuthService) -> None:
        self._db = db
        self._changes = changes
        self._auth = auth

    @staticmethod
    def permit(identity: Identity) -> None:
        """Raise Unauthorized/Forbidden unless ``identity`` may manage groups."""
        decision = acl.may_manage_groups(identity)
        if decision.allowed:
            return
        raise (Unauthorized if identity.anonymous else Forbidden)(decision.reason)

    async def list(self, identity: Identity) -> list[GroupRow]:
        self.permit(identity)
        return await self._db.read(group_rows.load_groups)

    async def get(self, identity: Identity, name: str) -> GroupRow:
        self.permit(identity)
        found = await self._db.read(group_rows.load_groups, name)
        if not found:
            raise NotFound(f"no group {name}")
        return found[0]

    async def create(self, identity: Identity, name: str, body: Mapping[str, Any]) -> GroupRow:
        """Create the group, or set the description of an existing one (``PUT``: idempotent)."""
        self.permit(identity)
        checked_group_name(name)
        unknown = sorted(set(body) - {"description"})
        if unknown:
            raise BadRequest("unknown keys in group: " + ", ".join(unknown))
        description = _description(body)
        await self._changes.write(_put_group, audit.actor(identity), name, description)
        return await self.get(identity, name)

    async def delete(self, identity: Identity, name: str) -> None:
        self.permit(identity)
        await self._changes.write(_delete_group, audit.actor(identity), name)

    async def change_members(
        self, identity: Identity, name: str, body: Mapping[str, Any]
    ) -> GroupRow:
        """``{"add": [users], "remove": [users]}``: every named user must exist."""
        self.permit(identity)
        unknown = sorted(set(body) - {"add", "remove"})
        if unknown:
            raise BadRequest("unknown keys in group change: " + ", ".join(unknown))
        add, remove = _names(body, "add"), _names(body, "remove")
        if len(add) + len(remove) > MAX_CHANGES:
            raise BadRequest(f"at most {MAX_CHANGES} members may change at once")
        both = sorted(set(add) & set(remove))
        if both:
            raise BadRequest("a user is both added and removed: " + ", ".join(both))
        missing = sorted(u for u in add if self._auth.user(u) is None)
        if missing:
            raise BadRequest("no such user: " + ", ".join(missing))
        await self._changes.write(_change_members, audit.actor(identity), name, add, remove)
        return await self.get(identity, name)


def _put_group(tx: Transaction, who: audit.Actor, name: str, description: str | None) -> None:
    if group_rows.load_groups(tx.conn, name):
        group_rows.set_description(tx.conn, name, description)
        audit.record(tx, who, "group-modify", name, {"fields": ["description"]})
    else:
        if len(group_rows.load_groups(tx.conn)) >= MAX_GROUPS:
            raise BadRequest(f"there are {MAX_GROUPS} groups already (the most there may be)")
        group_rows.create_group(tx.conn, name, description)
        audit.record(tx, who, "group-create", name)
    tx.log(None, None, ChangeKind.GROUPS)


def _delete_group(tx: Transaction, who: audit.Actor, name: str) -> None:
    found = group_rows.load_groups(tx.conn, name)
    if not found:
        raise NotFound(f"no group {name}")
    group_rows.delete_group(tx.conn, name)
    audit.record(tx, who, "group-delete", name, {"members": list(found[0].members)})
    tx.log(None, None, ChangeKind.GROUPS)


def _change_members(
    tx: Transaction, who: audit.Actor, name: str, add: list[str], remove: list[str]
) -> None:
    """Read and checked in the transaction, so concurrent changes can't pass the bounds."""
    found = group_rows.load_groups(tx.conn, name)
    if not found:
        raise NotFound(f"no group {name}")
    members = set(found[0].members)
    added = []
    for user in add:
        if user in members:
            continue
        if group_rows.group_count(tx.conn, user) >= MAX_GROUPS_PER_USER:
            raise BadRequest(f"user {user} is in {MAX_GROUPS_PER_USER} groups already (the most)")
        try:
            group_rows.add_member(tx.conn, name, user)
        except LookupError as exc:
            raise BadRequest(f"no such user: {exc.args[0]}") from exc
        members.add(user)
        added.append(user)
    removed = [user for user in remove if group_rows.remove_member(tx.conn, name, user)]
    members.difference_update(removed)
    if len(members) > MAX_MEMBERS:
        raise BadRequest(f"group {name} would have more than {MAX_MEMBERS} members")
    if added or removed:
        audit.record(tx, who, "group-members", name, {"added": added, "removed": removed})
        tx.log(None, None, ChangeKind.GROUPS)
