"""How big the stores are, for the metrics gauges: cheap enough to ask every half minute.

The blob store's size and file count come from the ``blobs`` table, which has a row per stored
blob, so an S3 bucket is never listed. The database size is the SQLite file (with its WAL) or
PostgreSQL's ``pg_database_size``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import Connection, func, select, text

from cheeseboard.store.schema import blobs


def blob_totals(conn: Connection) -> tuple[int, int]:
    """Bytes and number of the blobs stored."""
    row = conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0), func.count())).one()
    return int(row[0]), int(row[1])


def database_bytes(conn: Connection, url: str) -> int:
    """The metadata database's size on disk."""
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += path.with_name(path.name + suffix).stat().st_size
        return total
    return int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
