"""Releases of stage projects: devpi's project/version JSON, the web UI's project page data,
removal, and yanking (PEP 592).

Removals on a non-volatile index need ``force`` and the owner or root; on a volatile index the
uploaders (acl_upload), the owner and root may remove. Every change is one transaction and bumps
the project's pages at once, in every worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import canonical_version, version_sort_key
from cheeseboard.core.names import normalize_project_name
from cheeseboard.core.pages import FileLink, ProjectPage
from cheeseboard.services import audit, toxresults
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.pages import PageService, file_path
from cheeseboard.store import project_rows, release_rows, toxresult_rows
from cheeseboard.store.db import Database
from cheeseboard.store.docs import DOCZIP
from cheeseboard.store.records import (
    FileRecord,
    IndexRecord,
    ProjectRecord,
    ReleaseRecord,
    ToxResultRecord,
)

# Metadata keys devpi lists in versiondata; lists default to [], the rest to "".
_LIST_KEYS = (
    "classifiers",
    "platform",
    "requires_dist",
    "provides_dist",
    "obsoletes_dist",
    "requires_external",
    "provides_extra",
    "dynamic",
    "license_files",
)


@dataclass(slots=True)
class VersionEntry:
    """One version of a project: the files the simple page offers and, on a stage, the release
    metadata and file rows of the stage that serves it. Both the web UI's project page and
    devpi's JSON (``projectconfig``, ``versiondata``) are rendered from these."""

    version: str  # as uploaded (the first spelling seen): devpi's JSON key
    source: str  # the index that serves it (this one or a base)
    yanked: str | None = None
    files: list[FileLink] = field(default_factory=list)
    release: ReleaseRecord | None = None
    docs: str | None = None  # where its uploaded documentation is, if any
    # The release's file rows on its stage (release files and doc zips, with uploader and time).
    stored: list[FileRecord] = field(default_factory=list)

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    @property
    def metadata(self) -> dict[str, Any]:
        return self.release.metadata if self.release else {}

    @property
    def uploaded(self) -> str | float | None:
        times = [link.upload_time for link in self.files if link.upload_time]
        if times:
            return min(times)
        return self.release.created if self.release else None


@dataclass(frozen=True, slots=True)
class ProjectVersions:
    """A project's versions through an index's resolution order, and the one asked for."""

    name: str  # normalized
    display_name: str
    versions: list[VersionEntry]  # latest first
    selected: VersionEntry
    status: str | None = None
    status_reason: str | None = None


def _source(link: FileLink) -> str:
    user, index, _ = link.path.split("/", 2)
    return f"{user}/{index}"


def _page_versions(page: ProjectPage, key: Callable[[str], str]) -> dict[str, VersionEntry]:
    """The simple page's files grouped into versions by ``key`` of their version string: the
    canonical version for the web page, the raw string for devpi's mirror JSON."""
    by_version: dict[str, VersionEntry] = {}
    for link in page.files:
        if not link.version:
            continue
        entry = by_version.setdefault(key(link.version), VersionEntry(link.version, _source(link)))
        entry.files.append(link)
    return by_version


def _raw(version: str) -> str:
    return version


def _stage_version(
    index: IndexRecord, release: ReleaseRecord, files: list[FileRecord]
) -> VersionEntry:
    """A stage release as a version entry, with its file rows (doc zips included)."""
    return VersionEntry(
        release.version,
        index.fullname,
        release.yanked,
        release=release,
        stored=_files_of(files, release),
    )


def _oldest_first(versions: Iterable[VersionEntry]) -> list[VersionEntry]:
    """devpi's JSON order (equal versions, ``1.0`` and ``1.0.0``, as first seen)."""
    return sorted(versions, key=lambda v: version_sort_key(v.version))


def _latest_first(versions: Iterable[VersionEntry]) -> list[VersionEntry]:
    """The web page's order."""
    return sorted(versions, key=lambda v: version_sort_key(v.version), reverse=True)


def _mirror_versiondata(name: str, entry: VersionEntry, base_url: str) -> dict[str, Any]:
    """devpi's mirror ``versiondata``: name, version, requires_python, yanked, +links."""
    data: dict[str, Any] = {"name": name, "version": entry.version, "+links": []}
    for link in entry.files:
        if link.requires_python:
            data["requires_python"] = link.requires_python
        if link.yanked is not None:
            data["yanked"] = link.yanked or True
        data["+links"].append(
            {
                "rel": "releasefile",
                "href": base_url + link.path,
                "hash_spec": f"sha256={link.sha256}" if link.sha256 else "",
                "hashes": {"sha256": link.sha256} if link.sha256 else {},
            }
        )
    return data


def _stage_versiondata(
    index: IndexRecord,
    project: str,
    entry: VersionEntry,
    base_url: str,
    tox: dict[int, list[ToxResultRecord]],
) -> dict[str, Any]:
    """devpi's stage ``versiondata``: the release metadata and a link (with its upload log) per
    release file, doc zip and tox result (``tox``: by file id; ``devpi list -f`` reads them)."""
    release = entry.release
    assert release is not None
    data: dict[str, Any] = {key: [] for key in _LIST_KEYS}
    for key, value in release.metadata.items():
        if value not in (None, [], {}):
            data[key] = value
    data["name"] = release.metadata.get("name") or project
    data["version"] = release.version
    if release.yanked is not None:
        data["yanked"] = release.yanked or True
    links = []
    for record in entry.stored:
        links.append(
            {
                "rel": "doczip" if record.packagetype == DOCZIP else "releasefile",
                "href": base_url + file_path(index, record),
                "hash_spec": f"sha256={record.sha256}",
                "hashes": {"sha256": record.sha256},
                "log": [
                    {
                        "what": "upload",
                        "who": record.uploaded_by,
                        "when": list(time.gmtime(record.created)[:6]),
                        "dst": index.fullname,
                    }
                ],
            }
        )
        href = base_url + file_path(index, record)
        for result in tox.get(record.id, []):
            links.append(_toxresult_link(index, record, result, href, base_url))
    data["+links"] = links
    return data


def _toxresult_link(
    index: IndexRecord, record: FileRecord, result: ToxResultRecord, for_href: str, base_url: str
) -> dict[str, Any]:
    """A tox result in devpi's ``+links``: ``for_href`` is its release file's ``href``."""
    return {
        "rel": "toxresult",
        "href": base_url + toxresults.result_path(index, record, result),
        "for_href": for_href,
        "hash_spec": f"sha256={result.sha256}",
        "hashes": {"sha256": result.sha256},
        "log": [
            {
                "what": "upload",
                "who": result.uploaded_by,
                "when": list(time.gmtime(result.created)[:6]),
                "dst": index.fullname,
            }
        ],
    }


class ReleaseService:
    """Read and change the releases of stage projects."""

    def __init__(self, db: Database, changes: ChangeFeed, pages: PageService) -> None:
        self._db = db
        self._changes = changes
        self._pages = pages

    async def _load(
        self, index: IndexRecord, project: str
    ) -> tuple[ProjectRecord, list[ReleaseRecord], list[FileRecord]]:
        if index.type != "stage":
            raise BadRequest(f"{index.fullname} is a mirror: its projects follow upstream")
        name = normalize_project_name(project)
        record, releases, files = await self._db.read(release_rows.project_releases, index.id, name)
        if record is None or not (releases or files):
            raise NotFound(f"no project {project!r} on {index.fullname}")
        return record, releases, files

    # --- reading ------------------------------------------------------------------------------

    async def _mirror_versions(
        self, index: IndexRecord, project: str
    ) -> tuple[str, list[VersionEntry]]:
        """A mirror project's name and versions (by the version string as upstream spells it),
        oldest first."""
        cached = await self._pages.project_page(index, normalize_project_name(project))
        page = cached.page
        assert isinstance(page, ProjectPage)
        return page.name, _oldest_first(_page_versions(page, _raw).values())

    async def _mirror_config(
        self, index: IndexRecord, project: str, base_url: str
    ) -> dict[str, dict[str, Any]]:
        """The mirror form of devpi's ``projectconfig`` (docs/devpi-protocol.md §2)."""
        name, versions = await self._mirror_versions(index, project)
        return {entry.version: _mirror_versiondata(name, entry, base_url) for entry in versions}

    async def _members(
        self, index: IndexRecord, name: str, hidden: frozenset[str]
    ) -> list[tuple[IndexRecord, bool]]:
        """``PageService.members_for`` as a reader who may not read the ``hidden`` bases sees
        it (as the reader's simple page does)."""
        return await self._pages.members_for(index, name, hidden)

    async def project_config(
        self,
        index: IndexRecord,
        project: str,
        base_url: str,
        ignore_bases: bool = True,
        hidden: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """devpi's ``projectconfig``: ``{version: versiondata}``.

        With ``ignore_bases`` only this index's releases; otherwise the whole resolution order
        but the ``hidden`` bases (those the reader may not read), the first index having a
        version winning (mirrors only where the whitelist lets them in).
        """
        if index.type == "mirror":
            return await self._mirror_config(index, project, base_url)
        if ignore_bases:
            return await self._stage_config(index, project, base_url)
        config: dict[str, Any] = {}
        for member, is_mirror in await self._members(
            index, normalize_project_name(project), hidden
        ):
            try:
                if is_mirror:
                    part = await self._mirror_config(member, project, base_url)
                else:
                    part = await self._stage_config(member, project, base_url)
            except NotFound:
                continue
            for version, data in part.items():
                config.setdefault(version, data)
        if not config:
            raise NotFound(f"no project {project!r} on {index.fullname}")
        return dict(sorted(config.items(), key=lambda item: version_sort_key(item[0])))

    async def _stage_config(
        self, index: IndexRecord, project: str, base_url: str
    ) -> dict[str, Any]:
        _, releases, files = await self._load(index, project)
        tox = await self._db.read(toxresult_rows.for_files, [f.id for f in files])
        versions = _oldest_first(_stage_version(index, release, files) for release in releases)
        return {
            entry.version: _stage_versiondata(index, project, entry, base_url, tox)
            for entry in versions
        }

    async def version_data(
        self, index: IndexRecord, project: str, version: str, base_url: str
    ) -> dict[str, Any]:
        if index.type == "mirror":
            wanted = canonical_version(version)
            name, versions = await self._mirror_versions(index, project)
            for entry in versions:
                if canonical_version(entry.version) == wanted:
                    return _mirror_versiondata(name, entry, base_url)
            raise NotFound(f"The version {version} of project {project} does not exist.")
        _, releases, files = await self._load(index, project)
        entry = _stage_version(index, _find(releases, version, project), files)
        tox = await self._db.read(toxresult_rows.for_files, [f.id for f in entry.stored])
        return _stage_versiondata(index, project, entry, base_url, tox)

    async def project_versions(
        self,
        index: IndexRecord,
        project: str,
        version: str | None,
        hidden: frozenset[str] = frozenset(),
    ) -> ProjectVersions:
        """The project page's data: every file along the resolution order but the ``hidden``
        bases (the simple page its reader gets), merged by canonical version with the releases
        the stages hold; ``version`` selected, else the latest release that is not yanked.
        Raises NotFound."""
        name = normalize_project_name(project)
        cached = await self._pages.project_page(index, name, hidden)
        page = cached.page
        assert isinstance(page, ProjectPage)
        by_version = _page_versions(page, canonical_version)
        display_name = page.name
        for member, is_mirror in await self._members(index, name, hidden):
            if is_mirror:
                continue
            record, releases, files = await self._db.read(
                release_rows.project_releases, member.id, name
            )
            if record is None:
                continue
            if member.fullname == index.fullname or display_name == name:
                display_name = record.display_name
            with_docs = {f.version for f in files if f.packagetype == DOCZIP and f.version}
            for release in releases:
                stage_entry = _stage_version(member, release, files)
                entry = by_version.setdefault(release.canonical_version, stage_entry)
                if entry is not stage_entry:
                    if entry.release is not None or entry.source != member.fullname:
                        continue  # served by an earlier index in the resolution order
                    entry.release = release
                    entry.stored = stage_entry.stored
                if release.version in with_docs:
                    entry.docs = f"/{member.fullname}/{name}/{release.version}/+doc/"
        for entry in by_version.values():
            if entry.release is not None:
                entry.yanked = entry.release.yanked
            elif entry.files and all(link.yanked is not None for link in entry.files):
                entry.yanked = entry.files[0].yanked
        if not by_version:
            raise NotFound(f"no releases of {project!r} on {index.fullname}")
        versions = _latest_first(by_version.values())
        if version is None:
            # The latest release that is not yanked, as pip would pick it.
            selected = next((v for v in versions if not v.is_yanked), versions[0])
        else:
            found = by_version.get(canonical_version(version))
            if found is None:
                raise NotFound(f"no version {version!r} of {page.name} on {index.fullname}")
            selected = found
        return ProjectVersions(
            name, display_name, versions, selected, page.status, page.status_reason
        )

    # --- changing -----------------------------------------------------------------------------

    @staticmethod
    def permit(identity: Identity, index: IndexRecord, what: str) -> None:
        """Raise Unauthorized/Forbidden unless ``identity`` may remove or yank on ``index``."""
        decision = acl.may_delete_files(identity, index.user, index.config.get("acl_upload", ()))
        if not decision.allowed:
            if identity.anonymous:
                raise Unauthorized(f"{what}: authentication required")
            raise Forbidden(f"{what}: {decision.reason}")

    def _check(self, identity: Identity, index: IndexRecord, force: bool, what: str) -> None:
        self.permit(identity, index, what)
        if not index.config.get("volatile", True):
            if not force:
                raise Forbidden(f"{what}: {index.fullname} is non-volatile; use force")
            if identity.user not in ("root", index.user):
                raise Forbidden(f"{what}: only the owner or root may force on non-volatile")

    async def delete_project(
        self, identity: Identity, index: IndexRecord, project: str, force: bool
    ) -> None:
        record, releases, files = await self._load(index, project)
        self._check(identity, index, force, f"remove project {project}")
        name = normalize_project_name(project)
        what = Removal(audit.actor(identity), f"{index.fullname}/{name}", force)
        await self._changes.write(
            _remove,
            what,
            index.id,
            record.id,
            name,
            [r.id for r in releases],
            [f.id for f in files],
        )

    async def delete_version(
        self,
        identity: Identity,
        index: IndexRecord,
        project: str,
        version: str,
        force: bool,
        *,
        who: audit.Actor | None = None,
    ) -> None:
        """Remove a release and its files; ``who`` is recorded in the audit log instead of
        ``identity`` (retention acts with the owner's rights as ``retention``)."""
        record, releases, files = await self._load(index, project)
        release = _find(releases, version, project)
        self._check(identity, index, force, f"remove {project} {version}")
        doomed = [f.id for f in _files_of(files, release)]
        name = normalize_project_name(project)
        actor = who or audit.actor(identity)
        what = Removal(actor, f"{index.fullname}/{name}=={release.version}", force)
        await self._changes.write(_remove, what, index.id, record.id, name, [release.id], doomed)

    async def delete_file(
        self, identity: Identity, index: IndexRecord, record: FileRecord, force: bool
    ) -> None:
        self._check(identity, index, force, f"remove {record.filename}")
        name = await self._db.read(project_rows.project_name, record.project_id) or ""
        what = Removal(audit.actor(identity), f"{index.fullname}/{record.filename}", force)
        await self._changes.write(_remove, what, index.id, record.project_id, name, [], [record.id])

    async def yank(
        self,
        identity: Identity,
        index: IndexRecord,
        project: str,
        version: str,
        reason: str | None,
    ) -> None:
        """Yank with ``reason`` ("" for none) or un-yank with None; files stay downloadable."""
        _, releases, files = await self._load(index, project)
        release = _find(releases, version, project)
        self.permit(identity, index, ("un-yank" if reason is None else "yank") + f" {project}")
        file_ids = [f.id for f in _files_of(files, release)]
        name = normalize_project_name(project)
        target = f"{index.fullname}/{name}=={release.version}"
        await self._changes.write(
            _yank, audit.actor(identity), target, index.id, name, release.id, file_ids, reason
        )


def _find(releases: list[ReleaseRecord], version: str, project: str) -> ReleaseRecord:
    wanted = canonical_version(version)
    for release in releases:
        if release.canonical_version == wanted:
            return release
    raise NotFound(f"The version {version} of project {project} does not exist.")


def _files_of(files: list[FileRecord], release: ReleaseRecord) -> list[FileRecord]:
    return [
        f for f in files if f.version and canonical_version(f.version) == release.canonical_version
    ]


@dataclass(frozen=True, slots=True)
class Removal:
    """For the audit log: who removes what (``index/project``, ``…==version`` or
    ``index/filename``), and whether with force."""

    who: audit.Actor
    target: str
    force: bool


def _remove(
    tx: Transaction,
    what: Removal,
    index_id: int,
    project_id: int,
    name: str,
    release_ids: list[int],
    file_ids: list[int],
) -> None:
    release_rows.delete_file_rows(tx.conn, file_ids)
    release_rows.delete_release_rows(tx.conn, release_ids)
    release_rows.delete_project_if_empty(tx.conn, project_id)
    tx.log(index_id, name, ChangeKind.REMOVE)
    detail = {"releases": len(release_ids), "files": len(file_ids), "force": what.force}
    audit.record(tx, what.who, "remove", what.target, detail)


def _yank(
    tx: Transaction,
    who: audit.Actor,
    target: str,
    index_id: int,
    name: str,
    release_id: int,
    file_ids: list[int],
    reason: str | None,
) -> None:
    release_rows.set_yanked(tx.conn, release_id, file_ids, reason)
    tx.log(index_id, name, ChangeKind.YANK if reason is not None else ChangeKind.UNYANK)
    if reason is None:
        audit.record(tx, who, "unyank", target, {"files": len(file_ids)})
    else:
        audit.record(tx, who, "yank", target, {"reason": reason, "files": len(file_ids)})
