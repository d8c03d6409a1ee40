"""Account identity for tokens (``users.uid``) and revoked login tokens (web sign-out).

Tokens used to be bound to the user's name and password hash, so deleting a user and creating
one of the same name with the same hash brought its old tokens back to life. Each user now gets a
random ``uid`` that tokens sign; existing users get one here (which ends their current tokens
once: devpi-client asks for a new login).

On SQLite the column stays NULL-able: making it NOT NULL needs Alembic's batch mode, which copies
``users`` and drops the original, and with ``foreign_keys=ON`` (store/db.py) that drop would
cascade to every index and token. The application always writes a uid (store/schema.py's
default); PostgreSQL enforces it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The table as this revision knows it (never the current schema module: it moves on).
_users = sa.table("users", sa.column("id"), sa.column("uid"))


def upgrade() -> None:
    op.add_column("users", sa.Column("uid", sa.String(32)))
    conn = op.get_bind()
    for (user_id,) in conn.execute(sa.select(_users.c.id)).all():
        conn.execute(
            sa.update(_users).where(_users.c.id == user_id).values(uid=secrets.token_hex(16))
        )
    if conn.dialect.name == "postgresql":
        op.alter_column("users", "uid", nullable=False)
    op.create_table(
        "revoked_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("expires", sa.Float, nullable=False),
    )
