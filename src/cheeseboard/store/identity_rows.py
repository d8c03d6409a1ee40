"""SQL for accounts an identity source made (``users.auth_source``, migration 0011)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cheeseboard.store import accounts
from cheeseboard.store.schema import users

NO_PASSWORD = "!external"  # noqa: S105 - not a hash: no password ever matches it
"""The ``pwhash`` of an account an identity source made: it has no local password."""


def load_auth_sources(conn: Connection) -> dict[str, str]:
    """user name -> the source that made it (``ldap``, ``oidc``), for accounts not local."""
    query = select(users.c.name, users.c.auth_source).where(users.c.auth_source.is_not(None))
    return {str(name): str(source) for name, source in conn.execute(query)}


def create_external_user(conn: Connection, name: str, source: str) -> bool:
    """An account for ``name`` from ``source`` unless one exists; whether it was created."""
    if accounts.user_id(conn, name) is not None:
        return False
    accounts.create_user(conn, name, NO_PASSWORD, auth_source=source)
    return True
