"""Releases of stage projects (metadata, yank state) and who uploaded each file.

Stage files stored before this revision get their release rows here: name and version (the
metadata the artifacts said is not read back), yanked when all files of the release are.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from alembic import op
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

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
    _backfill_releases()


# The tables as this revision knows them (never the current schema module: it moves on).
_indexes = sa.table("indexes", sa.column("id"), sa.column("type"))
_projects = sa.table("projects", sa.column("id"), sa.column("index_id"), sa.column("display_name"))
_files = sa.table(
    "files", sa.column("id"), sa.column("project_id"), sa.column("version"), sa.column("yanked")
)
_releases = sa.table(
    "releases",
    sa.column("project_id"),
    sa.column("version"),
    sa.column("canonical_version"),
    sa.column("metadata", sa.JSON),
    sa.column("yanked"),
    sa.column("created"),
)


def _canonical(version: str) -> str:
    try:
        return canonicalize_version(Version(version))
    except InvalidVersion:
        return version


def _backfill_releases() -> None:
    conn = op.get_bind()
    query = (
        sa.select(_files.c.project_id, _files.c.version, _files.c.yanked, _projects.c.display_name)
        .join(_projects, _projects.c.id == _files.c.project_id)
        .join(_indexes, _indexes.c.id == _projects.c.index_id)
        .where(_indexes.c.type != "mirror", _files.c.version.is_not(None))
        .order_by(_files.c.id)
    )
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for project_id, version, yanked, display_name in conn.execute(query):
        release = found.setdefault(
            (project_id, _canonical(version)),
            {
                "project_id": project_id,
                "version": version,
                "canonical_version": _canonical(version),
                "metadata": {"name": display_name, "version": version},
                "yanked": yanked,
                "created": time.time(),
            },
        )
        if yanked is None:
            release["yanked"] = None  # yanked only when every file is
    if found:
        conn.execute(sa.insert(_releases), list(found.values()))
