"""SQL for trusted publishers and the ID tokens already exchanged (SQLAlchemy Core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import indexes, oidc_token_uses, tokens, trusted_publishers, users


@dataclass(frozen=True, slots=True)
class PublisherRow:
    id: int
    index_id: int
    issuer: str
    audience: str
    claims: dict[str, Any]
    description: str
    created: float
    created_by: str | None


def _row(r: Any) -> PublisherRow:
    return PublisherRow(
        r.id,
        r.index_id,
        r.issuer,
        r.audience,
        dict(r.claims),
        r.description or "",
        r.created,
        r.created_by,
    )


def of_index(conn: Connection, index_id: int) -> list[PublisherRow]:
    query = (
        select(trusted_publishers)
        .where(trusted_publishers.c.index_id == index_id)
        .order_by(trusted_publishers.c.id)
    )
    return [_row(r) for r in conn.execute(query)]


def of_issuer(conn: Connection, issuer: str, audience: str) -> list[PublisherRow]:
    """Every publisher (on any index) that trusts ``issuer`` for ``audience``."""
    query = (
        select(trusted_publishers)
        .where(trusted_publishers.c.issuer == issuer, trusted_publishers.c.audience == audience)
        .order_by(trusted_publishers.c.id)
    )
    return [_row(r) for r in conn.execute(query)]


def add(conn: Connection, row: PublisherRow) -> int:
    result = conn.execute(
        insert(trusted_publishers).values(
            index_id=row.index_id,
            issuer=row.issuer,
            audience=row.audience,
            claims=row.claims,
            description=row.description,
            created=row.created,
            created_by=row.created_by,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def remove(conn: Connection, index_id: int, publisher_id: int) -> PublisherRow | None:
    """Delete the publisher ``publisher_id`` of ``index_id``; the row it was, or None."""
    found = conn.execute(
        select(trusted_publishers).where(
            trusted_publishers.c.id == publisher_id, trusted_publishers.c.index_id == index_id
        )
    ).first()
    if found is None:
        return None
    conn.execute(delete(trusted_publishers).where(trusted_publishers.c.id == publisher_id))
    return _row(found)


def claim_token_use(conn: Connection, digest: str, expires: float, now: float) -> bool:
    """Record one use of an ID token (by digest) until it expires; False if it was used before.
    Rows of expired tokens go at the same time: the table holds only tokens that could still be
    presented. Two nodes racing on one token both insert; the primary key fails one of them."""
    conn.execute(delete(oidc_token_uses).where(oidc_token_uses.c.expires <= now))
    used = conn.scalar(select(oidc_token_uses.c.digest).where(oidc_token_uses.c.digest == digest))
    if used is not None:
        return False
    conn.execute(insert(oidc_token_uses).values(digest=digest, expires=expires))
    return True


def drop_expired_minted(conn: Connection, prefix: str, now: float) -> None:
    """Delete the expired scoped tokens that trusted publishing minted (named by ``prefix``),
    so short-lived tokens do not pile up in the owner's list."""
    conn.execute(
        delete(tokens).where(tokens.c.expires <= now, tokens.c.description.startswith(prefix))
    )


def load_all(conn: Connection) -> list[tuple[str, PublisherRow]]:
    """Every publisher with its index's full name (export)."""
    query = (
        select(trusted_publishers, users.c.name.label("owner"), indexes.c.name.label("index_name"))
        .join(indexes, indexes.c.id == trusted_publishers.c.index_id)
        .join(users, users.c.id == indexes.c.user_id)
        .order_by(trusted_publishers.c.id)
    )
    return [(f"{r.owner}/{r.index_name}", _row(r)) for r in conn.execute(query)]
