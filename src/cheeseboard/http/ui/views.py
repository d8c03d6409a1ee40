"""What the project and version pages show.

The data is ReleaseService.project_versions (services/releases.py): the simple page (every file
along the index's resolution order, with sizes, hashes, upload times and yank marks) merged with
the release metadata the stages hold. Mirrored releases have no release rows: their metadata is
the core metadata of one of their wheels when the server holds it (cached by an install), never
fetched for the page. This module adds only what a page needs: that metadata, the rendered README,
the links safe to show, and whether to offer the manage forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from cheeseboard.core import acl
from cheeseboard.core.indexconfig import EXEMPT_KEY
from cheeseboard.core.metadata import parse_core_metadata
from cheeseboard.http.state import AppServices
from cheeseboard.services.blocks import block_json
from cheeseboard.services.errors import NotFound
from cheeseboard.services.releases import VersionEntry
from cheeseboard.services.toxresults import ToxSummary, summarize
from cheeseboard.services.toxresults import result_path as toxresult_path
from cheeseboard.store.records import IndexRecord


@dataclass(frozen=True, slots=True)
class ToxResultRow:
    """A tox result on the version page (``devpi test``), linked where devpi serves it."""

    release_file: str
    href: str
    created: float
    uploaded_by: str | None
    summary: ToxSummary


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
    toxresults: list[ToxResultRow] = field(default_factory=list)
    # A mirrored release's core metadata, from a wheel the server holds; None: none held yet.
    held: dict[str, Any] | None = None

    @property
    def mirrored(self) -> bool:
        """Whether the selected release comes from a mirror (no stage holds its metadata)."""
        return self.selected.release is None

    @property
    def metadata(self) -> dict[str, Any]:
        """What the page shows of the release: the stage's metadata, else the held wheel's."""
        return self.selected.metadata if not self.mirrored else self.held or {}

    @property
    def project_urls(self) -> list[tuple[str, str]]:
        """Home page and Project-URL entries, http(s) only (no javascript: links)."""
        data = self.metadata
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
    held = await held_metadata(app, found.selected) if found.selected.release is None else None
    data = found.selected.metadata if held is None else held
    readme = await render_description_async(
        data.get("description"), data.get("description_content_type")
    )
    tox = await _toxresult_rows(app, found.selected)
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
        toxresults=tox,
        held=held,
    )


async def held_metadata(app: AppServices, entry: VersionEntry) -> dict[str, Any] | None:
    """The core metadata of one of a mirrored release's wheels that the server holds (its
    ``.metadata`` or the wheel, cached by an install), or None. Nothing is fetched: a page view
    must not cost an upstream request, nor wait for one when upstream is down."""
    source = app.indexes.get(*entry.source.split("/", 1))
    if source is None or source.type != "mirror":
        return None
    for link in entry.files:
        if not link.filename.endswith(".whl"):
            continue
        try:
            record = await app.files.lookup(source, link.filename)
        except NotFound:
            continue
        data = await app.files.held_metadata(record)
        if data is not None:
            return parse_core_metadata(data)
    return None


async def _toxresult_rows(app: AppServices, entry: VersionEntry) -> list[ToxResultRow]:
    """The tox results of the release's files on the stage that serves it, newest first."""
    source = app.indexes.get(*entry.source.split("/", 1)) if entry.stored else None
    if source is None:
        return []
    by_file = await app.toxresults.for_files([record.id for record in entry.stored])
    rows = [
        ToxResultRow(
            record.filename,
            "/" + toxresult_path(source, record, result),
            result.created,
            result.uploaded_by,
            summarize(result.data),
        )
        for record in entry.stored
        for result in by_file.get(record.id, [])
    ]
    return sorted(rows, key=lambda row: row.created, reverse=True)


@dataclass(frozen=True, slots=True)
class GuardView:
    """The index's supply-chain guard (issue 21) as its page shows it: the cooldown, the
    cut-off, the break-glass exemptions and the blocks made on this index."""

    cooldown: str | None  # "7d"
    cutoff: str | None  # RFC 3339
    exemptions: list[dict[str, Any]]
    blocks: list[dict[str, Any]]
    manageable: bool  # the owner or root: offer the forms (the services check again)


def cooldown_text(seconds: int) -> str:
    """``604800`` -> ``"7d"``: days, as cooldowns are usually given (``format_age`` says 1w)."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def guard_view(app: AppServices, index: IndexRecord, user: str | None) -> GuardView:
    config = index.config
    age = config.get("min_release_age")
    cutoff = config.get("release_cutoff")
    listed = config.get(EXEMPT_KEY) or []
    return GuardView(
        cooldown=cooldown_text(age) if isinstance(age, int) and age > 0 else None,
        cutoff=str(cutoff) if cutoff else None,
        exemptions=[item for item in listed if isinstance(item, dict)],
        blocks=[block_json(block) for block in app.blocks.listed(index)],
        manageable=user is not None and acl.may_modify_index(user, index.user).allowed,
    )
