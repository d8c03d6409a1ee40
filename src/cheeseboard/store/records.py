"""The rows of the metadata store as frozen dataclasses, and the mappers from SQLAlchemy rows.

The query modules (store/accounts.py, project_rows.py, release_rows.py, changelog_rows.py,
info.py) return these; services and the delivery layer import them for their type hints (the
delivery layer imports nothing else from store/).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Row

from cheeseboard.core.changes import ChangeKind


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str
    pwhash: str
    email: str | None
    title: str | None
    description: str | None
    custom_data: Any
    created: float
    modified: float | None
    uid: str  # random per account (store/schema.py): recreating a name makes a new one

    @property
    def token_binding(self) -> str:
        """What a token of this user signs (core/tokens.py): the account and its password, so
        a password change or a deleted and recreated account ends earlier tokens."""
        return f"{self.uid}\0{self.pwhash}"


@dataclass(frozen=True, slots=True)
class IndexRecord:
    id: int
    user: str
    name: str
    type: str
    config: dict[str, Any]

    @property
    def fullname(self) -> str:
        return f"{self.user}/{self.name}"


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: int
    index_id: int
    name: str
    display_name: str
    checked_at: float | None
    found: bool
    upstream_etag: str | None
    upstream_serial: int | None
    status: str | None
    status_reason: str | None


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file row to write, as a mirror refresh or an upload produces it."""

    filename: str
    version: str | None
    packagetype: str
    sha256: str | None
    size: int | None
    requires_python: str | None
    yanked: str | None
    upload_time: str | None
    core_metadata_sha256: str | None
    upstream_url: str | None


@dataclass(frozen=True, slots=True)
class FileRecord(NewFile):
    """A stored file: what was written, plus where it lives and whether its bytes are here."""

    id: int
    index_id: int
    project_id: int
    blob_sha256: str | None
    position: int
    created: float
    uploaded_by: str | None


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    id: int
    project_id: int
    version: str
    canonical_version: str
    metadata: dict[str, Any]
    yanked: str | None
    created: float


@dataclass(frozen=True, slots=True)
class ToxResultRecord:
    id: int
    file_id: int
    name: str  # <release file>.toxresult-<time>-<n>, in the release file's +f directory
    data: str  # the JSON as posted
    sha256: str
    uploaded_by: str | None
    created: float


@dataclass(frozen=True, slots=True)
class Change:
    serial: int
    index_id: int | None
    project: str | None
    kind: ChangeKind


FILE_FIELDS = (
    "version",
    "packagetype",
    "sha256",
    "size",
    "requires_python",
    "yanked",
    "upload_time",
    "core_metadata_sha256",
    "upstream_url",
)


R = TypeVar("R")


def record(cls: type[R], row: Row[Any]) -> R:
    """A record dataclass from a row whose columns include all of its fields."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    mapping = row._mapping
    return cls(**{name: mapping[name] for name in names})


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def project_from_row(row: Row[Any]) -> ProjectRecord:
    return record(ProjectRecord, row)


def file_from_row(row: Row[Any]) -> FileRecord:
    return record(FileRecord, row)


def release_from_row(row: Row[Any]) -> ReleaseRecord:
    return record(ReleaseRecord, row)


def chunks(items: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    """Split for IN (...) lists, which SQLite limits in length."""
    return [items[start : start + size] for start in range(0, len(items), size)]
