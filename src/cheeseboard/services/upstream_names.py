"""The dependency-confusion guard: the one check every path that creates a project on a stage
goes through (upload, doc upload, push, import), so that none of them can bring a name in that a
base mirror serves upstream without the index saying ``allow_upstream_names``."""

from __future__ import annotations

from cheeseboard.services.errors import CheeseboardError, UpstreamFailed
from cheeseboard.services.pages import PageService
from cheeseboard.store import project_rows
from cheeseboard.store.db import Database
from cheeseboard.store.records import IndexRecord


class UpstreamName(CheeseboardError):
    """Raised when a new project on a stage would shadow (or could not be checked against) a
    name that a mirror in the stage's bases serves."""


class UpstreamNameShadowed(UpstreamName):
    """Raised when a mirror in the stage's bases serves the new project's name."""


class UpstreamNameUnchecked(UpstreamName):
    """Raised when the base mirrors could not be asked whether they serve the name."""


async def refuse_upstream_name(
    db: Database, pages: PageService, index: IndexRecord, project: str
) -> None:
    """Raise UpstreamName if ``project`` is new on ``index`` and a base mirror knows it.

    A project exists on a stage through its release files (not its doc zips: documentation
    alone must not make a name "ours", after which a wheel would pass unchecked).
    """
    if index.config.get("allow_upstream_names", False):
        return
    if await db.read(project_rows.project_exists_on, index.id, project):
        return  # not the first upload of this name here
    try:
        mirrors = await pages.upstream_holders(index, project)
    except UpstreamFailed as exc:
        raise UpstreamNameUnchecked(
            f"cannot check whether {project!r} exists upstream ({exc.message}); "
            "retry later or set allow_upstream_names=True on the index"
        ) from exc
    if mirrors:
        raise UpstreamNameShadowed(
            f"{project!r} exists on {', '.join(mirrors)}; adding it to {index.fullname} "
            "would shadow the public package. Set allow_upstream_names=True on the index "
            "(and mirror_whitelist if both should be visible) to allow it."
        )
