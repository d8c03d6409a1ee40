"""What the project and version pages show.

The data is ReleaseService.project_versions (services/releases.py): the simple page (every file
along the index's resolution order, with sizes, hashes, upload times and yank marks) merged with
the release metadata the stages hold. Mirror projects have no metadata: their page lists the files
that upstream offers. This module adds only what a page needs: the rendered README, the links
safe to show, and whether to offer the manage forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup

from cheeseboard.core import acl
from cheeseboard.http.state import AppServices
from cheeseboard.services.releases import VersionEntry
from cheeseboard.store.records import IndexRecord


@dataclass(slots=True)
class ProjectView:
    index: IndexRecord
    name: str  # normalized
    display_name: str
    versions: list[VersionEntry]  # latest first
    selected: VersionEntry
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

    def status_settable_by(self, user: str | None) -> bool:
        """Whether to offer the project status form: the project is on this stage and ``user``
        is its owner or root (the service checks again when the form arrives)."""
        if self.on_mirror or user is None:
            return False
        here = any(entry.source == self.index.fullname for entry in self.versions)
        return here and acl.may_modify_index(user, self.index.user).allowed


async def project_view(
    app: AppServices,
    index: IndexRecord,
    project: str,
    version: str | None,
    hidden: frozenset[str] = frozenset(),
) -> ProjectView:
    """The project (at ``version``, else its latest release), as seen without the ``hidden``
    bases (those its reader may not read); raises NotFound."""
    # readme-renderer, docutils and nh3: on the first project page, not at every start.
    from cheeseboard.http.ui.readme import render_description_async

    found = await app.releases.project_versions(index, project, version, hidden)
    data = found.selected.metadata
    readme = await render_description_async(
        data.get("description"), data.get("description_content_type")
    )
    return ProjectView(
        index,
        found.name,
        found.display_name,
        found.versions,
        found.selected,
        on_mirror=index.type == "mirror",
        status=found.status,
        status_reason=found.status_reason,
        readme=readme,
    )
