"""Tox results (issue 22): what ``devpi test`` posts to a release file's URL, one row per
result, removed with its file.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "toxresults",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "file_id", sa.Integer, sa.ForeignKey("files.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(64)),
        sa.Column("created", sa.Float, nullable=False),
        sa.UniqueConstraint("file_id", "name"),
    )
