"""SQL for local groups and their members (tables of migration 0011). Each function takes the
connection to use; members are named by user name, stored by user id."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import group_members, groups, users


@dataclass(frozen=True, slots=True)
class GroupRow:
    name: str
    description: str | None
    created: float
    members: tuple[str, ...]  # user names, sorted


def load_memberships(conn: Connection) -> dict[str, frozenset[str]]:
    """user name -> the names of the local groups it is in (users in none are absent)."""
    query = (
        select(users.c.name, groups.c.name)
        .select_from(group_members.join(users).join(groups))
        .order_by(users.c.name)
    )
    found: dict[str, set[str]] = defaultdict(set)
    for user, group in conn.execute(query):
        found[user].add(group)
    return {user: frozenset(names) for user, names in found.items()}


def load_groups(conn: Connection, name: str | None = None) -> list[GroupRow]:
    """Every group (or the one named ``name``) with its members, by name."""
    query = select(groups).order_by(groups.c.name)
    if name is not None:
        query = query.where(groups.c.name == name)
    rows = conn.execute(query).all()
    members: dict[int, list[str]] = defaultdict(list)
    if rows:
        member_query = (
            select(group_members.c.group_id, users.c.name)
            .select_from(group_members.join(users))
            .where(group_members.c.group_id.in_([r.id for r in rows]))
            .order_by(users.c.name)
        )
        for group_id, user in conn.execute(member_query):
            members[int(group_id)].append(user)
    return [GroupRow(r.name, r.description, r.created, tuple(members[r.id])) for r in rows]


def _group_id(conn: Connection, name: str) -> int | None:
    value = conn.scalar(select(groups.c.id).where(groups.c.name == name))
    return None if value is None else int(value)


def create_group(
    conn: Connection, name: str, description: str | None, created: float | None = None
) -> None:
    """A new group (``created``: when, for an import; now by default)."""
    when = time.time() if created is None else created
    conn.execute(insert(groups).values(name=name, description=description, created=when))


def set_description(conn: Connection, name: str, description: str | None) -> bool:
    result = conn.execute(
        update(groups).where(groups.c.name == name).values(description=description)
    )
    return bool(result.rowcount)


def delete_group(conn: Connection, name: str) -> bool:
    group = _group_id(conn, name)
    if group is None:
        return False
    conn.execute(delete(group_members).where(group_members.c.group_id == group))
    conn.execute(delete(groups).where(groups.c.id == group))
    return True


def group_count(conn: Connection, user: str) -> int:
    """How many groups ``user`` is in."""
    query = select(func.count()).select_from(group_members.join(users)).where(users.c.name == user)
    return int(conn.scalar(query) or 0)


def add_member(conn: Connection, name: str, user: str) -> bool:
    """Add ``user`` to the group; False if it was a member already."""
    group = _group_id(conn, name)
    user_id = conn.scalar(select(users.c.id).where(users.c.name == user))
    if group is None or user_id is None:
        raise LookupError(name if group is None else user)
    exists = conn.scalar(
        select(group_members.c.user_id).where(
            group_members.c.group_id == group, group_members.c.user_id == user_id
        )
    )
    if exists is not None:
        return False
    conn.execute(insert(group_members).values(group_id=group, user_id=user_id))
    return True


def remove_member(conn: Connection, name: str, user: str) -> bool:
    """Remove ``user`` from the group; False if it was not a member."""
    group = _group_id(conn, name)
    user_id = conn.scalar(select(users.c.id).where(users.c.name == user))
    if group is None or user_id is None:
        return False
    result = conn.execute(
        delete(group_members).where(
            group_members.c.group_id == group, group_members.c.user_id == user_id
        )
    )
    return bool(result.rowcount)
