"""Whether this node can serve: the readiness report behind ``/-/health``."""

from __future__ import annotations

from dataclasses import dataclass

from cheeseboard import __version__
from cheeseboard.services.changes import ChangeFeed
from cheeseboard.settings import Settings
from cheeseboard.store import info
from cheeseboard.store.db import Database


@dataclass(frozen=True, slots=True)
class Health:
    """The node's state; ``checks`` maps each dependency to "ok" or "error: <why>"."""

    version: str
    serial: int
    offline: bool
    checks: dict[str, str]

    @property
    def ok(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


class StatusService:
    """Reports readiness: the database answers and the blob directory is there."""

    def __init__(self, settings: Settings, db: Database, changes: ChangeFeed) -> None:
        self._settings = settings
        self._db = db
        self._changes = changes

    async def health(self) -> Health:
        checks: dict[str, str] = {}
        try:
            await self._db.read(info.ping)
            checks["database"] = "ok"
        except Exception as exc:  # readiness must report any failure, not raise it
            checks["database"] = f"error: {type(exc).__name__}"
        blobs_dir = self._settings.layout.blobs
        checks["blobs"] = "ok" if blobs_dir.is_dir() else "error: missing blob directory"
        return Health(__version__, self._changes.serial, self._settings.offline, checks)
