"""SQL for scoped API tokens (SQLAlchemy Core)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import tokens, users


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    user: str
    description: str
    indexes: tuple[str, ...]
    created: float
    expires: float


def load_tokens(conn: Connection) -> list[TokenRecord]:
    rows = conn.execute(
        select(tokens, users.c.name.label("user")).join(users, users.c.id == tokens.c.user_id)
    ).all()
    return [
        TokenRecord(r.id, r.user, r.description or "", tuple(r.indexes), r.created, r.expires)
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
        )
    )


def delete_token(conn: Connection, token_id: str) -> bool:
    return bool(conn.execute(delete(tokens).where(tokens.c.id == token_id)).rowcount)


def delete_user_tokens(conn: Connection, user_id: int) -> None:
    conn.execute(delete(tokens).where(tokens.c.user_id == user_id))
