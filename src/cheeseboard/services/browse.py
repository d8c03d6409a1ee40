"""The web UI's listings: how many projects each index has, and an index's projects a page at
a time with their latest release (store/browse.py bounds every read)."""

from __future__ import annotations

from collections.abc import Sequence

from cheeseboard.store import browse
from cheeseboard.store.browse import ProjectRow
from cheeseboard.store.db import Database


class BrowseService:
    """Read-only listings for the home, user and index pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def project_counts(self) -> dict[int, int]:
        """Projects with a page, per index id (mirrors: the names seen so far)."""
        return await self._db.read(browse.project_counts)

    async def index_projects(
        self, index_ids: Sequence[int], limit: int, offset: int
    ) -> tuple[list[ProjectRow], int]:
        """A page of the projects on ``index_ids`` by name, and how many there are in all."""
        return await self._db.read(browse.index_projects, index_ids, limit, offset)
