"""Finding documentation zips: which versions of a project have docs, and the zip a doc URL
names (a version, ``+latest`` or ``+stable``). Reading inside a zip is http/ui/docs.py."""

from __future__ import annotations

from cheeseboard.core.names import normalize_project_name
from cheeseboard.services.errors import NotFound
from cheeseboard.store import docs as store_docs
from cheeseboard.store.db import Database
from cheeseboard.store.records import FileRecord, IndexRecord


class DocService:
    """Looks up the doc zips uploaded to stages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def versions(self, index_id: int, project: str) -> set[str]:
        """Versions (as uploaded) of ``project`` that have documentation on index ``index_id``."""
        return await self._db.read(
            store_docs.doc_versions, index_id, normalize_project_name(project)
        )

    async def find_zip(self, index: IndexRecord, project: str, version: str) -> FileRecord:
        """The doc zip row for a version, ``+latest`` or ``+stable``; NotFound says what is
        missing."""
        name = normalize_project_name(project)
        if index.type != "stage":
            raise NotFound(f"{index.fullname} is a mirror: it holds no documentation")
        if version.startswith("+") and version not in ("+latest", "+stable"):
            raise NotFound(f"no version {version!r}: name a version, +latest or +stable")
        records = await self._db.read(store_docs.doc_zips, index.id, name)
        if not records:
            raise NotFound(f"{name} has no documentation on {index.fullname}")
        found = store_docs.pick_doc_zip(records, version)
        if found is None:
            if version.startswith("+"):
                raise NotFound(
                    f"{name} has no {version[1:]} version with documentation on {index.fullname}"
                )
            raise NotFound(f"{name} {version} has no documentation on {index.fullname}")
        return found
