"""SQL for blocks (issue 21): what may not be installed, server-wide or per index.

A block names a project (optionally a PEP 440 specifier set), a filename, or a sha256, or a
combination; ``source`` tells a hand-made block ("manual") from one an advisory import made
("osv:MAL-…"), so a re-import replaces its own blocks and never a person's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.store.schema import blocks, indexes, users

MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class NewBlock:
    """A block to add. ``index_id`` None: server-wide."""

    index_id: int | None
    project: str | None
    specifier: str | None
    filename: str | None
    sha256: str | None
    reason: str
    author: str
    source: str = MANUAL


@dataclass(frozen=True, slots=True)
class BlockRecord:
    id: int
    index: str | None  # "user/index", None for server-wide
    index_id: int | None
    project: str | None
    specifier: str | None
    filename: str | None
    sha256: str | None
    reason: str
    author: str
    source: str
    created: float


def add(conn: Connection, block: NewBlock, created: float) -> int:
    result = conn.execute(
        insert(blocks).values(
            index_id=block.index_id,
            project=block.project,
            specifier=block.specifier,
            filename=block.filename,
            sha256=block.sha256,
            reason=block.reason,
            author=block.author,
            source=block.source,
            created=created,
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def load_all(conn: Connection) -> list[BlockRecord]:
    query = (
        select(blocks, users.c.name.label("owner"), indexes.c.name.label("index_name"))
        .select_from(
            blocks.outerjoin(indexes, indexes.c.id == blocks.c.index_id).outerjoin(
                users, users.c.id == indexes.c.user_id
            )
        )
        .order_by(blocks.c.id)
    )
    return [
        BlockRecord(
            id=row.id,
            index=f"{row.owner}/{row.index_name}" if row.index_id is not None else None,
            index_id=row.index_id,
            project=row.project,
            specifier=row.specifier,
            filename=row.filename,
            sha256=row.sha256,
            reason=row.reason,
            author=row.author,
            source=row.source,
            created=row.created,
        )
        for row in conn.execute(query)
    ]


def remove(conn: Connection, block_id: int) -> bool:
    """Delete one block; False when there was none with that id."""
    return conn.execute(delete(blocks).where(blocks.c.id == block_id)).rowcount > 0


def remove_source(conn: Connection, source_prefix: str) -> int:
    """Delete the blocks whose source starts with ``source_prefix`` (an import's own, e.g.
    "osv:"); never "manual" ones. Returns how many."""
    if not source_prefix or MANUAL.startswith(source_prefix):
        raise ValueError(f"refusing to remove blocks by source prefix {source_prefix!r}")
    return conn.execute(delete(blocks).where(blocks.c.source.startswith(source_prefix))).rowcount
