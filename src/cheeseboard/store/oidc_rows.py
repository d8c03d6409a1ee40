"""SQL for OIDC sign-in: the account's identity source, and states used once.

A sign-in's ``state`` is recorded (as a digest, in ``oidc_token_uses`` with the ID tokens that
trusted publishing exchanges) when its callback arrives, so a replayed callback is refused on
every worker and node.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import new_uid, oidc_token_uses, users


def auth_source(conn: Connection, name: str) -> tuple[bool, str | None]:
    """Whether the user exists, and its identity source (None: a local account)."""
    row = conn.execute(select(users.c.auth_source).where(users.c.name == name)).first()
    return (False, None) if row is None else (True, row.auth_source)


def use_once(conn: Connection, digest: str, expires: float) -> bool:
    """Record ``digest`` as used until ``expires``; False if it was used already (two
    concurrent uses on PostgreSQL: the second one's transaction fails on the primary key)."""
    conn.execute(delete(oidc_token_uses).where(oidc_token_uses.c.expires < time.time()))
    used = select(oidc_token_uses.c.digest).where(oidc_token_uses.c.digest == digest)
    if conn.execute(used).first() is not None:
        return False
    conn.execute(insert(oidc_token_uses).values(digest=digest, expires=expires))
    return True


def create_external_user(conn: Connection, name: str, source: str, **extra: Any) -> None:
    """An account made by an identity source: no usable local password (``!`` is no hash)."""
    conn.execute(
        insert(users).values(
            name=name,
            pwhash=f"!{source}",
            uid=new_uid(),
            created=time.time(),
            auth_source=source,
            **extra,
        )
    )
