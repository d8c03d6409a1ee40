"""Server-wide facts in the ``server_info`` table: the server's uuid, the shared signing secret.

Each function takes the connection to use; call them through ``Database.read``/``write``.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import server_info


def get_info(conn: Connection, key: str) -> str | None:
    value = conn.scalar(select(server_info.c.value).where(server_info.c.key == key))
    return None if value is None else str(value)


def set_info(conn: Connection, key: str, value: str) -> None:
    conn.execute(delete(server_info).where(server_info.c.key == key))
    conn.execute(insert(server_info).values(key=key, value=value))


def shared_secret(conn: Connection, candidate: str) -> str:
    """The secret every node signs with: the stored one, or ``candidate`` if none is yet.

    Writers run one at a time, so nodes starting together agree on the first one stored.
    """
    stored = get_info(conn, "secret")
    if stored is not None:
        return stored
    conn.execute(insert(server_info).values(key="secret", value=candidate))
    return candidate


def ping(conn: Connection) -> None:
    """A round trip to the database, for readiness checks (services/status.py)."""
    conn.execute(select(1))
