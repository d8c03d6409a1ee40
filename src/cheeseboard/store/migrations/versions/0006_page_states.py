"""Page states: what each rendered simple page shows (a fingerprint) and since when.

A cache (store/page_rows.py): rows are made by serving pages, never exported or imported, and
an empty table only means pages get a new ``_last-serial`` and ``Last-Modified`` once.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_states",
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("project", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.Column("modified", sa.Float, nullable=False),
    )
