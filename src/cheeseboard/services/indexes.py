"""The in-memory view of all indexes, kept current through the change feed.

Every request needs its index's configuration; reading it from memory keeps the database off the
hot path. Any committed change of kind ``index`` reloads the whole (small) table.
"""

from __future__ import annotations

from dataclasses import dataclass

from cheeseboard.store import accounts
from cheeseboard.store.db import Database
from cheeseboard.store.records import Change, IndexRecord

DEFAULT_MIRROR_URL = "https://pypi.org/simple/"


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    """What a mirror index needs to reach upstream."""

    simple_url: str  # ends with "/"
    json_api_url: str | None  # "<base>/pypi/{name}/json" template, or None
    cache_expiry: float
    needs_upload_times: bool = False
    """Whether a page must have its files' upload times before it is answered. Off, a page from
    an upstream that lacks them (HTML only) is stored and answered at once and the JSON API's
    facts follow in the background (services/mirror.py). A policy that judges files by their
    age (issue 21's ``min_release_age``, which fails closed on an unknown upload time) turns it
    on, and then a refresh waits for the JSON API as well. No setting turns it on yet."""


def mirror_config(index: IndexRecord, default_expiry: float) -> MirrorConfig:
    url = str(index.config.get("mirror_url") or DEFAULT_MIRROR_URL)
    if not url.endswith("/"):
        url += "/"
    json_api = None
    if url.endswith("/simple/"):
        # PyPI and its mirrors serve /pypi/<name>/json beside /simple/ (docs/standards.md §3).
        json_api = url[: -len("simple/")] + "pypi/{name}/json"
    expiry = index.config.get("mirror_cache_expiry")
    try:
        cache_expiry = float(expiry) if expiry is not None else default_expiry
    except (TypeError, ValueError):
        cache_expiry = default_expiry
    return MirrorConfig(url, json_api, cache_expiry)


class IndexRegistry:
    """All indexes by ``user/name`` and by id."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_name: dict[str, IndexRecord] = {}

    async def load(self) -> None:
        records = await self._db.read(accounts.load_indexes)
        self._by_name = {record.fullname: record for record in records}

    def get(self, user: str, name: str) -> IndexRecord | None:
        return self._by_name.get(f"{user}/{name}")

    def by_name(self, fullname: str) -> IndexRecord | None:
        return self._by_name.get(fullname)

    def all(self) -> list[IndexRecord]:
        return list(self._by_name.values())

    async def on_change(self, change: Change) -> None:
        if change.kind.concerns_indexes:
            await self.load()
