"""Releases of stage projects (metadata, yank state) and who uploaded each file.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("canonical_version", sa.String(128), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("yanked", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
        sa.UniqueConstraint("project_id", "canonical_version"),
    )
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("uploaded_by", sa.String(64)))
