"""Scoped tokens get a scope: ``upload`` (read and upload to their indexes, what every token
made before could do, so existing rows get it) or ``read`` (read their indexes only).

A plain ``ADD COLUMN ... NOT NULL DEFAULT``: SQLite and PostgreSQL both fill existing rows from
the default, and no table is copied (no batch mode: see 0005 for why that matters on SQLite).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tokens", sa.Column("scope", sa.String(16), nullable=False, server_default="upload")
    )
