"""Retention (issue 23): when each cached mirror file was last served, for least-recently-used
eviction under ``--mirror-cache-size``.

A table of its own rather than a column of ``files``: the times are written in batches by every
worker and are not part of a dump (export copies every column of ``files``).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_access",
        sa.Column(
            "file_id",
            sa.Integer,
            sa.ForeignKey("files.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("last_used", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("file_access")
