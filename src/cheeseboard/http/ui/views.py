"""What the project and version pages show, gathered from the services in one place.

A project page merges the simple page (every file along the index's resolution order, with
sizes, hashes, upload times and yank marks) with the release metadata the stages hold (summary,
README, links, requirements). Mirror projects have no metadata here: their page lists the files
that upstream offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from cheeseboard.core import acl
from cheeseboard.core.distfiles import canonical_version, version_sort_key
from cheeseboard.core.names import normalize_project_name
from cheeseboard.core.pages import FileLink, ProjectPage
from cheeseboard.http.state import AppServices
from cheeseboard.http.ui.readme import render_description_async
from cheeseboard.services.errors import NotFound
from cheeseboard.store import docs as store_docs
from cheeseboard.store import release_rows
from cheeseboard.store.accounts import IndexRecord
from cheeseboard.store.records import ReleaseRecord


@dataclass(slots=True)
class VersionView:
    """One version of a project as the page lists it."""

    version: str
    source: str  # the index that serves it (this one or a base)
    yanked: str | None = None
    files: list[FileLink] = field(default_factory=list)
    release: ReleaseRecord | None = None
    docs: str | None = None  # where its uploaded documentation is, if any

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


@dataclass(slots=True)
class ProjectView:
    index: IndexRecord
    name: str  # normalized
    display_name: str
    versions: list[VersionView]  # latest first
    selected: VersionView
    on_mirror: bool
    status: str | None = None
    status_reason: str | None = None
    readme: Markup = field(default_factory=Markup)

    @property
    def project_urls(self) -> list[tuple[str, str]]:
        """Home page and Project-URL entries, http(s) only (no javascript: links)."""
        data = self.selected.metadata
        urls: list[tuple[str, str]] = []
        if data.get("home_page"):
            urls.append(("Homepage", str(data["home_page"])))
        raw = data.get("project_urls") or {}
        items = raw.items() if isinstance(raw, dict) else []
        urls.extend((str(label), str(url)) for label, url in items)
        return [
            (label, url) for label, url in urls if url.lower().startswith(("https://", "http://"))
        ]

    def manageable_by(self, user: str | None) -> bool:
        """Whether to offer the yank and remove forms: the selected release lives on this stage
        and ``user`` may change it (the service checks again when the form arrives)."""
        if self.on_mirror or self.selected.source != self.index.fullname or user is None:
            return False
        acl_upload = self.index.config.get("acl_upload", ())
        return acl.may_delete_files(user, self.index.user, acl_upload).allowed


def _source(link: FileLink) -> str:
    user, index, _ = link.path.split("/", 2)
    return f"{user}/{index}"


async def project_view(
    app: AppServices, index: IndexRecord, project: str, version: str | None
) -> ProjectView:
    """The project (at ``version``, else its latest release); raises NotFound."""
    name = normalize_project_name(project)
    cached = await app.pages.project_page(index, name)
    page = cached.page
    assert isinstance(page, ProjectPage)
    by_version: dict[str, VersionView] = {}
    for link in page.files:
        if not link.version:
            continue
        key = canonical_version(link.version)
        view = by_version.setdefault(key, VersionView(link.version, _source(link)))
        view.files.append(link)
    display_name = page.name
    for member, is_mirror in await app.pages.members_for(index, name):
        if is_mirror:
            continue
        record, releases, _ = await app.db.read(release_rows.project_releases, member.id, name)
        if record is None:
            continue
        if member.fullname == index.fullname or display_name == name:
            display_name = record.display_name
        with_docs = await app.db.read(store_docs.doc_versions, member.id, name)
        for release in releases:
            key = release.canonical_version
            if key not in by_version:
                by_version[key] = VersionView(release.version, member.fullname)
            entry = by_version[key]
            if entry.release is None and entry.source == member.fullname:
                entry.release = release
                if release.version in with_docs:
                    entry.docs = f"/{member.fullname}/{name}/{release.version}/+doc/"
    for view in by_version.values():
        if view.release is not None:
            view.yanked = view.release.yanked
        elif view.files and all(link.yanked is not None for link in view.files):
            view.yanked = view.files[0].yanked
    if not by_version:
        raise NotFound(f"no releases of {project!r} on {index.fullname}")
    versions = sorted(by_version.values(), key=lambda v: version_sort_key(v.version), reverse=True)
    if version is None:
        # The latest release that is not yanked, as pip would pick it.
        selected = next((v for v in versions if not v.is_yanked), versions[0])
    else:
        wanted = canonical_version(version)
        found = by_version.get(wanted)
        if found is None:
            raise NotFound(f"no version {version!r} of {page.name} on {index.fullname}")
        selected = found
    data = selected.metadata
    readme = await render_description_async(
        data.get("description"), data.get("description_content_type")
    )
    return ProjectView(
        index,
        name,
        display_name,
        versions,
        selected,
        on_mirror=index.type == "mirror",
        status=page.status,
        status_reason=page.status_reason,
        readme=readme,
    )
