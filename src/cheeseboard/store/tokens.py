"""SQL for scoped API tokens and revoked login tokens (SQLAlchemy Core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import revoked_tokens, tokens, users

Scope = Literal["read", "upload"]
SCOPES: tuple[Scope, ...] = ("read", "upload")
"""``upload``: read and upload to its indexes (the default, what tokens made before 0007 do);
``read``: read its indexes only (installs in CI)."""


def as_scope(value: object) -> Scope:
    """A stored scope (anything unknown reads as the narrower ``read``)."""
    return "upload" if value == "upload" else "read"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    user: str
    description: str
    indexes: tuple[str, ...]
    created: float
    expires: float
    scope: Scope = "upload"


def load_tokens(conn: Connection) -> list[TokenRecord]:
    rows = conn.execute(
        select(tokens, users.c.name.label("user")).join(users, users.c.id == tokens.c.user_id)
    ).all()
    return [
        TokenRecord(
            r.id,
            r.user,
            r.description or "",
            tuple(r.indexes),
            r.created,
            r.expires,
            as_scope(r.scope),
        )
        for r in rows
    ]


def create_token(conn: Connection, record: TokenRecord, user_id: int) -> None:
    conn.execute(
        insert(tokens).values(
            id=record.id,
            user_id=user_id,
            description=record.description,
            indexes=list(record.indexes),
            created=record.created,
            expires=record.expires,
            scope=record.scope,
        )
    )


def delete_token(conn: Connection, token_id: str) -> bool:
    return bool(conn.execute(delete(tokens).where(tokens.c.id == token_id)).rowcount)


def delete_user_tokens(conn: Connection, user_id: int) -> None:
    conn.execute(delete(tokens).where(tokens.c.user_id == user_id))


def load_revoked(conn: Connection, now: float) -> set[str]:
    """Digests of the revoked login tokens that have not expired yet."""
    query = select(revoked_tokens.c.digest).where(revoked_tokens.c.expires > now)
    return {str(digest) for digest in conn.scalars(query)}


def revoke(conn: Connection, digest: str, expires: float, now: float) -> None:
    """Record a revoked token until it would expire; rows of expired tokens go at the same time,
    so the table holds only tokens that could still be presented."""
    conn.execute(delete(revoked_tokens).where(revoked_tokens.c.expires <= now))
    exists = conn.scalar(select(revoked_tokens.c.digest).where(revoked_tokens.c.digest == digest))
    if exists is None:
        conn.execute(insert(revoked_tokens).values(digest=digest, expires=expires))
