"""Imported OSV advisories per project, for the PyPI JSON API and the web pages (issue 21).

A project's advisories are read on first use (one small indexed query) and kept in a bounded
in-memory cache, dropped when an import logs ``ChangeKind.ADVISORIES``: nothing is loaded at
start-up, and memory grows only with the projects asked about. ``generation`` moves with every
drop, so documents built from advisories (the PyPI JSON API's) can be keyed by it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.osv import Affected
from cheeseboard.store import advisory_rows
from cheeseboard.store.advisory_rows import AdvisoryRow
from cheeseboard.store.db import Database
from cheeseboard.store.records import Change

MAX_CACHED_PROJECTS = 4096


class AdvisoryService:
    """Which advisories affect a release, in PyPI's ``vulnerabilities`` shape."""

    def __init__(self, db: Database, max_projects: int = MAX_CACHED_PROJECTS) -> None:
        self._db = db
        self._max = max_projects
        self._cache: OrderedDict[str, tuple[tuple[AdvisoryRow, Affected], ...]] = OrderedDict()
        self.generation = 0

    async def _load(self, project: str) -> tuple[tuple[AdvisoryRow, Affected], ...]:
        found = self._cache.get(project)
        if found is not None:
            self._cache.move_to_end(project)
            return found
        generation = self.generation
        rows = await self._db.read(advisory_rows.for_project, project)
        loaded = tuple((row, Affected.from_json(project, row.affected)) for row in rows)
        if generation == self.generation:  # no import landed while we read: safe to keep
            self._cache[project] = loaded
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return loaded

    async def affecting(self, project: str, version: str) -> list[dict[str, Any]]:
        """The advisories affecting ``project`` (normalized) at ``version``, as PyPI's JSON API
        lists them."""
        return [
            {
                "aliases": list(row.aliases),
                "details": row.details or "",
                "fixed_in": list(row.fixed),
                "id": row.id,
                "link": row.link,
                "source": "osv",
                "summary": row.summary,
                "withdrawn": row.withdrawn,
            }
            for row, affected in await self._load(project)
            if row.withdrawn is None and affected.affects(version)
        ]

    def on_change(self, change: Change) -> None:
        if change.kind is not ChangeKind.ADVISORIES and change.kind.known:
            return
        self.generation += 1
        if change.project is None:
            self._cache.clear()
        else:
            self._cache.pop(change.project, None)
