"""Uploads through the legacy API (twine, uv publish, poetry, pdm, hatch, devpi-client).

The file is copied from the request into a staged blob while its digests are computed, so memory
stays flat whatever its size. Nothing is trusted from the form that the artifact can tell: name
and version are read from the file's own METADATA / PKG-INFO. The release, the file row and the
change log entry are written in one transaction after the blob is committed; that transaction
is also where an existing file of the same name is decided on (``check_existing_file``), so that
of concurrent uploads of one name with different bytes to a non-volatile index exactly one is
stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from cheeseboard.archives.artifacts import artifact_metadata
from cheeseboard.archives.wheels import ARCHIVE_ERRORS, UnreadableArchive, archive_error_reason
from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import canonical_version
from cheeseboard.core.names import is_valid_project_name, normalize_project_name
from cheeseboard.core.uploads import (
    Existing,
    FileExists,
    UploadError,
    UploadForm,
    check_artifact_metadata,
    check_existing_file,
    check_file_upload,
)
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import CheeseboardError, NotFound
from cheeseboard.services.files import put_small_blob
from cheeseboard.services.pages import PageService
from cheeseboard.services.upstream_names import refuse_upstream_name
from cheeseboard.settings import Settings
from cheeseboard.store import project_rows, project_status_rows, release_rows
from cheeseboard.store.blobs import BlobStore
from cheeseboard.store.db import Database
from cheeseboard.store.records import FileRecord, IndexRecord, NewFile


class UploadRefused(CheeseboardError):
    """Raised when an upload (its form, file name, metadata or doc zip) is invalid."""


class UploadConflict(UploadRefused):
    """Raised when a non-volatile index already holds other bytes under the file's name."""


def refused(exc: UploadError) -> UploadRefused:
    """The service error for a refusal of the pure upload checks in core/uploads.py."""
    if isinstance(exc, FileExists):
        return UploadConflict(exc.message)
    return UploadRefused(exc.message)


class TooLarge(CheeseboardError):
    """Raised when an upload body exceeds --max-upload-size."""


@dataclass(frozen=True, slots=True)
class Uploaded:
    """What an upload did: ``stored`` False means the identical file was already there."""

    project: str
    version: str
    filename: str
    sha256: str
    stored: bool


class UploadService:
    """Store uploaded files on stage indexes."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        changes: ChangeFeed,
        blobs: BlobStore,
        pages: PageService,
    ) -> None:
        self._settings = settings
        self._db = db
        self._changes = changes
        self._blobs = blobs
        self._pages = pages

    def check_permission(self, identity: Identity, index: IndexRecord) -> None:
        if index.type != "stage":
            raise NotFound(f"cannot upload to mirror index {index.fullname}")
        decision = acl.may_upload(identity, index.config.get("acl_upload", ()))
        if decision.allowed:
            return
        if identity.anonymous:
            raise Unauthorized(f"uploading to {index.fullname} needs authentication")
        raise Forbidden(f"no permission to upload to {index.fullname}: {decision.reason}")

    async def upload(
        self,
        identity: Identity,
        index: IndexRecord,
        form: UploadForm,
        filename: str,
        chunks: AsyncIterator[bytes],
        digest_required: bool = True,
    ) -> Uploaded:
        """Store one release file. Raises UploadRefused/TooLarge/Unauthorized/Forbidden."""
        self.check_permission(identity, index)
        try:
            project, version, packagetype = check_file_upload(form, filename)
        except UploadError as exc:
            raise refused(exc) from exc
        await self._db.read(_refuse_closed, index, project)  # before the bytes are stored
        writer = self._blobs.writer()
        try:
            md5, blake2 = hashlib.md5(usedforsecurity=False), hashlib.blake2b(digest_size=32)
            async for chunk in chunks:
                if writer.size + len(chunk) > self._settings.max_upload_size:
                    raise TooLarge(
                        f"{filename} is larger than the limit of "
                        f"{self._settings.max_upload_size} bytes"
                    )
                writer.write(chunk)
                md5.update(chunk)
                blake2.update(chunk)
            sha256 = writer.hexdigest()
            try:
                form.digests.verify(
                    md5.hexdigest(), sha256, blake2.hexdigest(), required=digest_required
                )
                try:
                    metadata_bytes = await asyncio.to_thread(
                        artifact_metadata, writer.tmp_path, filename
                    )
                except UnreadableArchive as exc:
                    raise UploadError(f"cannot read metadata from {filename}: {exc}") from exc
                metadata = check_artifact_metadata(form, filename, metadata_bytes)
            except UploadError as exc:
                raise refused(exc) from exc
            # For a wheel, METADATA is exactly what PEP 658's ``.metadata`` serves.
            core_metadata = metadata_bytes if packagetype == "bdist_wheel" else None
            # An early answer that spares storing the bytes; _store_upload decides again.
            existing = await self._db.read(project_rows.file_by_filename, index.id, filename)
            record = existing[0] if existing is not None else None
            outcome = _existing_outcome(index, filename, sha256, record)
            if outcome == "identical" and record is not None:
                writer.abort()
                return Uploaded(project, record.version or version, filename, sha256, False)
            if outcome == "new":
                await refuse_upstream_name(self._db, self._pages, index, project)
            size = writer.size
            await writer.commit(sha256, size)
        except BaseException:
            writer.abort()
            raise
        core_sha = None
        if core_metadata is not None:
            core_sha = await put_small_blob(self._blobs, core_metadata)
        new = NewFile(
            filename=filename,
            version=version,
            packagetype=packagetype,
            sha256=sha256,
            size=size,
            requires_python=metadata.get("requires_python") or None,
            yanked=None,
            upload_time=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            core_metadata_sha256=core_sha,
            upstream_url=None,
        )
        display = str(metadata.get("name") or project)
        same = await self._changes.write(
            _store_upload, index, project, display, new, metadata, identity.user, core_metadata
        )
        if same is not None:  # a concurrent upload of the same bytes was first
            return Uploaded(project, same.version or version, filename, sha256, False)
        return Uploaded(project, version, filename, sha256, True)

    async def upload_docs(
        self,
        identity: Identity,
        index: IndexRecord,
        form: UploadForm,
        chunks: AsyncIterator[bytes],
    ) -> Uploaded:
        """Store a documentation zip for a release (devpi's ``:action=doc_upload``).

        It is served for download at its ``+f`` URL and listed in the version's ``+links``,
        never on simple pages. Without a version it belongs to the newest release. It attaches
        to a release the index has (as devpi refuses docs without a registration), and passes
        the dependency-confusion guard: documentation must not be a way to bring in a name that
        a base mirror serves (issue 17, item 6).
        """
        self.check_permission(identity, index)
        if not is_valid_project_name(form.name):
            raise UploadRefused(f"{form.name!r} is not a valid project name")
        project = normalize_project_name(form.name)
        await refuse_upstream_name(self._db, self._pages, index, project)
        version = await self._db.read(_doc_release, index.id, project, form.version)
        if version is None:
            raise UploadRefused(_no_release(project, form.version, index))
        filename = f"{project}-{version}.doc.zip"
        writer = self._blobs.writer()
        try:
            async for chunk in chunks:
                if writer.size + len(chunk) > self._settings.max_upload_size:
                    raise TooLarge(f"{filename} is larger than the upload limit")
                writer.write(chunk)
            problem = await asyncio.to_thread(_doc_zip_problem, writer.tmp_path)
            if problem is not None:
                raise UploadRefused(f"documentation must be a zip file: {problem}")
            sha256 = writer.hexdigest()
            # An early answer that spares storing the bytes; _store_docs decides again.
            existing = await self._db.read(project_rows.file_by_filename, index.id, filename)
            record = existing[0] if existing is not None else None
            if _existing_outcome(index, filename, sha256, record) == "identical":
                writer.abort()
                return Uploaded(project, version, filename, sha256, False)
            size = writer.size
            await writer.commit(sha256, size)
        except BaseException:
            writer.abort()
            raise
        new = NewFile(
            filename=filename,
            version=version,
            packagetype="doczip",
            sha256=sha256,
            size=size,
            requires_python=None,
            yanked=None,
            upload_time=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            core_metadata_sha256=None,
            upstream_url=None,
        )
        same = await self._changes.write(_store_docs, index, project, form.name, new, identity.user)
        return Uploaded(project, version, filename, sha256, same is None)


def _doc_zip_problem(path: Path) -> str | None:
    """Why a documentation upload can't be stored, or None.

    Docs are checked member by member when served (http/ui/docs.py); here only what would break
    every page of the release: not a zip, or a member without a name (ZipInfo.is_dir() raises
    IndexError on it, a 500 for each page). Zero bytes are an empty doc set, as devpi stores them.
    """
    if path.stat().st_size == 0:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if any(not info.filename for info in archive.infolist()):
                return "a member has an empty name"
    except ARCHIVE_ERRORS as exc:
        return archive_error_reason(exc)
    return None


def _existing_outcome(
    index: IndexRecord, filename: str, sha256: str, existing: FileRecord | None
) -> Existing:
    """``check_existing_file`` for ``index``, its refusal as an UploadConflict."""
    try:
        return check_existing_file(
            filename,
            sha256,
            existing.sha256 if existing is not None else None,
            volatile=bool(index.config.get("volatile", True)),
            index_name=index.fullname,
        )
    except UploadError as exc:
        raise refused(exc) from exc


def _identical_or_refused(tx: Transaction, index: IndexRecord, new: NewFile) -> FileRecord | None:
    """The file of ``new``'s name already on the index if it has the same bytes (nothing to
    write); None if ``new`` may be written. Raises UploadConflict on a non-volatile index
    that holds other bytes: raised inside the write transaction, it rolls everything back."""
    assert new.sha256 is not None
    existing = project_rows.file_by_filename(tx.conn, index.id, new.filename)
    record = existing[0] if existing is not None else None
    if _existing_outcome(index, new.filename, new.sha256, record) == "identical":
        return record
    return None


def _refuse_closed(conn: Connection, index: IndexRecord, project: str) -> None:
    """Raise Forbidden when the project is archived or quarantined (PEP 792: no uploads)."""
    status = project_status_rows.status_of(conn, index.id, project)
    if status in project_status_rows.CLOSED:
        raise Forbidden(f"{project} is {status} on {index.fullname}: it takes no uploads")


def _doc_release(conn: Connection, index_id: int, project: str, version: str) -> str | None:
    """The stored version of the release a doc zip for ``version`` ("" = the newest) attaches
    to; None if the index has no such release."""
    if not version:
        return release_rows.latest_version(conn, index_id, project)
    return release_rows.release_version(conn, index_id, project, canonical_version(version))


def _no_release(project: str, version: str, index: IndexRecord) -> str:
    which = f"{project} {version}" if version else f"of {project}"
    return (
        f"no release {which} on {index.fullname} to attach documentation to: "
        "upload a file of that release first"
    )


def _store_upload(
    tx: Transaction,
    index: IndexRecord,
    project: str,
    display_name: str,
    new: NewFile,
    metadata: dict[str, Any],
    uploader: str | None,
    core_metadata: bytes | None,
) -> FileRecord | None:
    """Write the upload; return the identical file instead if one was stored meanwhile."""
    assert new.sha256 is not None and new.size is not None and new.version is not None
    same = _identical_or_refused(tx, index, new)
    if same is not None:
        return same
    _refuse_closed(tx.conn, index, project)
    project_id = project_rows.ensure_stage_project(tx.conn, index.id, project, display_name)
    release_rows.upsert_release(
        tx.conn, project_id, new.version, canonical_version(new.version), metadata
    )
    project_rows.put_stage_file(tx.conn, index.id, project_id, new, uploader)
    project_rows.add_blob(tx.conn, new.sha256, new.size)
    if core_metadata is not None and new.core_metadata_sha256:
        project_rows.add_blob(tx.conn, new.core_metadata_sha256, len(core_metadata))
    tx.log(index.id, project, ChangeKind.UPLOAD)
    return None


def _store_docs(
    tx: Transaction,
    index: IndexRecord,
    project: str,
    display_name: str,
    new: NewFile,
    uploader: str | None,
) -> FileRecord | None:
    """Write the doc zip; return the identical one instead if it was stored meanwhile.

    The release is looked up again: it may have been removed since the upload began."""
    assert new.sha256 is not None and new.size is not None and new.version is not None
    canonical = canonical_version(new.version)
    if release_rows.release_version(tx.conn, index.id, project, canonical) is None:
        raise UploadRefused(_no_release(project, new.version, index))
    same = _identical_or_refused(tx, index, new)
    if same is not None:
        return same
    project_id = project_rows.ensure_stage_project(tx.conn, index.id, project, display_name)
    project_rows.put_stage_file(tx.conn, index.id, project_id, new, uploader)
    project_rows.add_blob(tx.conn, new.sha256, new.size)
    tx.log(index.id, project, ChangeKind.DOC_UPLOAD)
    return None
