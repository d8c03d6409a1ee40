"""Project search for the web UI: private projects' metadata and the mirror names seen so far.

The index is kept by the database itself (store/search.py), so this service only shapes a
query into pages and names the index of each hit.
"""

from __future__ import annotations

from dataclasses import dataclass

from cheeseboard.core.sro import IndexNode, resolution_order
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.store import search
from cheeseboard.store.db import Database
from cheeseboard.store.records import IndexRecord
from cheeseboard.store.search import SearchHit

MAX_QUERY_LENGTH = 200
MAX_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A hit with the ``user/name`` of its index, for links."""

    hit: SearchHit
    index_fullname: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results; ``page`` and ``per_page`` as used, after clamping."""

    query: str
    hits: list[SearchResult]
    total: int  # matching projects on all pages
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the results fill (0 when nothing matches)."""
        return -(-self.total // self.per_page)

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


class SearchService:
    """Search the projects of every index, or of one index and the indexes it inherits from."""

    def __init__(self, db: Database, indexes: IndexRegistry) -> None:
        self._db = db
        self._indexes = indexes

    async def search(
        self,
        query: str,
        page: int = 1,
        per_page: int = 20,
        index: IndexRecord | None = None,
        hidden: frozenset[str] = frozenset(),
    ) -> SearchPage:
        """Results for ``query``, best first, from no index named in ``hidden`` (those the
        searcher may not read: neither their projects nor the count shows them).

        With ``index``, its own projects and those of its resolution order (bases breadth-first,
        mirrors last): what installing from it can see. A page out of range is clamped to
        1.. and ``per_page`` to 1..100, so a hand-edited URL still gets an answer; a page past
        the last one is empty but still reports the total.
        """
        if len(query) > MAX_QUERY_LENGTH:
            raise BadRequest(
                f"the search query is {len(query)} characters long; at most "
                f"{MAX_QUERY_LENGTH} are allowed"
            )
        page = max(page, 1)
        per_page = min(max(per_page, 1), MAX_PER_PAGE)
        if not query.strip():
            return SearchPage(query, [], 0, page, per_page)
        members = [member for member in self._members(index) if member.fullname not in hidden]
        hits, total = await self._db.read(
            search.search_projects,
            query,
            [member.id for member in members],
            per_page,
            (page - 1) * per_page,
        )
        names = {member.id: member.fullname for member in members}
        # An index deleted since the registry was loaded cannot match (its id is not asked
        # for); one deleted between the two reads is dropped here.
        results = [SearchResult(hit, names[hit.index_id]) for hit in hits if hit.index_id in names]
        return SearchPage(query, results, total, page, per_page)

    def _members(self, index: IndexRecord | None) -> list[IndexRecord]:
        """The indexes to search: all, or ``index`` with its resolution order."""
        if index is None:
            return self._indexes.all()
        nodes = {
            record.fullname: IndexNode.from_config(
                record.fullname, {**record.config, "type": record.type}
            )
            for record in self._indexes.all()
        }
        members = [
            member
            for fullname in resolution_order(index.fullname, nodes)
            if (member := self._indexes.by_name(fullname)) is not None
        ]
        return members or [index]
