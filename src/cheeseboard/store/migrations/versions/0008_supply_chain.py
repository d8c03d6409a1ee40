"""The supply-chain guard (issue 21): blocks, advisories and the audit log.

- ``blocks``: what may not be installed (a project, a version range, a filename or a sha256),
  server-wide (``index_id`` NULL) or for an index and everything inheriting it; made by hand
  (``source`` "manual") or from a malicious-package advisory (``source`` "osv:MAL-…").
- ``advisories``: OSV entries for PyPI projects, one row per advisory id (a re-import
  replaces it); ``affected`` holds the versions and ranges as OSV gives them.
- ``audit_log``: append-only, who did what and when; never updated or deleted by the server.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "index_id", sa.Integer, sa.ForeignKey("indexes.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("project", sa.String(255)),
        sa.Column("specifier", sa.Text),
        sa.Column("filename", sa.String(255)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("source", sa.String(128), nullable=False, server_default="manual"),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_blocks_project", "blocks", ["project"])
    op.create_table(
        "advisories",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("details", sa.Text),
        sa.Column("aliases", sa.JSON, nullable=False),
        sa.Column("affected", sa.JSON, nullable=False),
        sa.Column("fixed", sa.JSON, nullable=False),
        sa.Column("link", sa.Text),
        sa.Column("modified", sa.String(40)),
        sa.Column("withdrawn", sa.String(40)),
        sa.Column("imported", sa.Float, nullable=False),
    )
    op.create_index("ix_advisories_project", "advisories", ["project"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("client", sa.String(64)),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
