"""SQL for users and indexes (SQLAlchemy Core). Each function takes the connection to use.

The rows they return, UserRecord and IndexRecord, are in store/records.py.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from cheeseboard.store.records import IndexRecord, UserRecord
from cheeseboard.store.schema import files, indexes, new_uid, projects, tokens, users

USER_FIELDS = ("email", "title", "description", "custom_data")


def load_users(conn: Connection) -> list[UserRecord]:
    rows = conn.execute(select(users)).all()
    return [
        UserRecord(
            r.id,
            r.name,
            r.pwhash,
            r.email,
            r.title,
            r.description,
            r.custom_data,
            r.created,
            r.modified,
            r.uid or "",
        )
        for r in rows
    ]


def create_user(conn: Connection, name: str, pwhash: str, **extra: Any) -> int:
    """A new account with a fresh ``uid`` (a caller cannot pass one: tokens bind to it)."""
    extra.pop("uid", None)
    result = conn.execute(
        insert(users).values(name=name, pwhash=pwhash, uid=new_uid(), created=time.time(), **extra)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def user_id(conn: Connection, name: str) -> int | None:
    value = conn.scalar(select(users.c.id).where(users.c.name == name))
    return None if value is None else int(value)


def update_user(conn: Connection, name: str, **values: Any) -> bool:
    result = conn.execute(
        update(users).where(users.c.name == name).values(modified=time.time(), **values)
    )
    return bool(result.rowcount)


def delete_user(conn: Connection, name: str) -> None:
    owner = user_id(conn, name)
    if owner is None:
        return
    for (index_id,) in conn.execute(select(indexes.c.id).where(indexes.c.user_id == owner)):
        delete_index(conn, int(index_id))
    conn.execute(delete(tokens).where(tokens.c.user_id == owner))
    conn.execute(delete(users).where(users.c.id == owner))


def create_index(
    conn: Connection, owner_id: int, name: str, type_: str, config: dict[str, Any]
) -> int:
    result = conn.execute(
        insert(indexes).values(
            user_id=owner_id, name=name, type=type_, config=config, created=time.time()
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_index_config(conn: Connection, index_id: int, config: dict[str, Any]) -> None:
    conn.execute(update(indexes).where(indexes.c.id == index_id).values(config=config))


def delete_index(conn: Connection, index_id: int) -> None:
    """Remove an index with its projects and file rows (blobs are collected separately)."""
    conn.execute(delete(files).where(files.c.index_id == index_id))
    conn.execute(delete(projects).where(projects.c.index_id == index_id))
    conn.execute(delete(indexes).where(indexes.c.id == index_id))


def load_indexes(conn: Connection) -> list[IndexRecord]:
    query = select(
        indexes.c.id, users.c.name.label("user"), indexes.c.name, indexes.c.type, indexes.c.config
    ).join(users, users.c.id == indexes.c.user_id)
    rows = conn.execute(query).all()
    return [IndexRecord(r.id, r.user, r.name, r.type, dict(r.config)) for r in rows]
