"""Initial schema: users, indexes, projects, files, blobs, changelog, server_info.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("pwhash", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("custom_data", sa.JSON),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("modified", sa.Float),
    )
    op.create_table(
        "indexes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.UniqueConstraint("user_id", "name"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("checked_at", sa.Float),
        sa.Column("found", sa.Boolean, nullable=False),
        sa.Column("upstream_etag", sa.Text),
        sa.Column("upstream_serial", sa.Integer),
        sa.Column("status", sa.String(16)),
        sa.Column("status_reason", sa.Text),
        sa.UniqueConstraint("index_id", "name"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("version", sa.String(128)),
        sa.Column("packagetype", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size", sa.Integer),
        sa.Column("requires_python", sa.Text),
        sa.Column("yanked", sa.Text),
        sa.Column("upload_time", sa.String(32)),
        sa.Column("core_metadata_sha256", sa.String(64)),
        sa.Column("upstream_url", sa.Text),
        sa.Column("blob_sha256", sa.String(64)),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.UniqueConstraint("index_id", "filename"),
    )
    op.create_index("ix_files_project", "files", ["project_id"])
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "changelog",
        sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("index_id", sa.Integer),
        sa.Column("project", sa.String(255)),
        sa.Column("kind", sa.String(32), nullable=False),
    )
    op.create_table(
        "server_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
