"""The PyPI JSON API (``/pypi/<name>/json`` shape) for any index, built from its simple page.

``info`` comes from the core metadata of the chosen release's wheel (fetched once through the
file service), so mirrored and uploaded projects answer alike. Results are cached on the page
entry and so invalidated with it.

The cache is keyed only by what the page holds (the release chosen), never by client input: a
document is rendered once with a placeholder where the server's base URL goes, and each answer
substitutes its base (``--outside-url``, else the request's own, as devpi does) into the cached
bytes. Caching per ``Host`` header once let 100 anonymous requests grow a worker by 193 MB
(issue 17, item 8); the substitution costs one pass over the bytes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from packaging.version import InvalidVersion, Version

from cheeseboard.core.distfiles import (
    canonical_version,
    is_pep440_version,
    parse_dist_filename,
    version_sort_key,
)
from cheeseboard.core.metadata import parse_core_metadata
from cheeseboard.core.names import normalize_project_name
from cheeseboard.core.pages import FileLink, ProjectPage
from cheeseboard.services.advisories import AdvisoryService
from cheeseboard.services.errors import CheeseboardError, NotFound
from cheeseboard.services.files import FileService
from cheeseboard.services.pages import CachedPage, PageService, Rendered
from cheeseboard.store.records import IndexRecord

# Stands for the base URL in cached documents. Random per process, so no project metadata can
# contain it (a user cannot guess it, and it never leaves the process); plain ASCII letters, so
# JSON encodes it unchanged.
BASE_PLACEHOLDER = f"cheeseboard-base-{secrets.token_hex(16)}/"
_PLACEHOLDER_BYTES = BASE_PLACEHOLDER.encode()


def with_base(template: Rendered, base_url: str) -> Rendered:
    """The cached ``template`` with ``base_url`` in place of the placeholder; its ETag differs per
    base, since the bytes do."""
    encoded = json.dumps(base_url)[1:-1].encode()  # a quote or backslash in Host stays a string
    body = encoded.join(template.body.split(_PLACEHOLDER_BYTES))
    tag = hashlib.sha256(template.etag.encode() + b"\0" + encoded).hexdigest()[:40]
    return Rendered(body, f'"{tag}-pypi"')


def _is_prerelease(version: str) -> bool:
    if not is_pep440_version(version):  # also refuses digit runs int() cannot parse
        return True
    try:
        return Version(version).is_prerelease
    except (InvalidVersion, ValueError):
        return True


def latest_version(versions: list[str], yanked: set[str]) -> str | None:
    """PyPI's pick for ``info``: newest final non-yanked, else newest non-yanked, else newest."""
    ordered = sorted(versions, key=version_sort_key, reverse=True)
    for candidates in (
        [v for v in ordered if v not in yanked and not _is_prerelease(v)],
        [v for v in ordered if v not in yanked],
        ordered,
    ):
        if candidates:
            return candidates[0]
    return None


def _upload_time(link: FileLink) -> tuple[str | None, str | None]:
    if not link.upload_time:
        return None, None
    return link.upload_time.rstrip("Z").split(".")[0], link.upload_time


def _file_entry(link: FileLink, base_url: str) -> dict[str, Any]:
    parsed = parse_dist_filename(link.filename)
    upload_time, upload_time_iso = _upload_time(link)
    return {
        "filename": link.filename,
        "packagetype": parsed.packagetype,
        "python_version": parsed.python_tag or "source",
        "url": base_url + link.path,
        "size": link.size,
        "digests": {"sha256": link.sha256} if link.sha256 else {},
        "md5_digest": None,
        "upload_time": upload_time,
        "upload_time_iso_8601": upload_time_iso,
        "requires_python": link.requires_python,
        "yanked": link.yanked is not None,
        "yanked_reason": link.yanked or None,
        "has_sig": False,
        "core-metadata": {"sha256": link.core_metadata_sha256}
        if link.core_metadata_sha256
        else False,
    }


def _releases(page: ProjectPage) -> dict[str, list[FileLink]]:
    releases: dict[str, list[FileLink]] = {}
    for link in page.files:
        if link.version:
            releases.setdefault(link.version, []).append(link)
    return releases


def _choose(
    index: IndexRecord,
    page: ProjectPage,
    releases: dict[str, list[FileLink]],
    version: str | None,
) -> str:
    """The release a request means: PyPI's pick for the project, else the one ``version``
    names canonically; raises NotFound."""
    if version is None:
        yanked = {v for v, links in releases.items() if all(x.yanked is not None for x in links)}
        chosen = latest_version(list(releases), yanked)
        if chosen is None:
            raise NotFound(f"project {page.name!r} has no releases on {index.fullname}")
        return chosen
    wanted = canonical_version(version)
    matches = [v for v in releases if canonical_version(v) == wanted]
    if not matches:
        raise NotFound(f"no version {version!r} of {page.name!r} on {index.fullname}")
    return matches[0]


class PypiJsonService:
    """Build and cache JSON API documents."""

    def __init__(
        self, pages: PageService, files: FileService, advisories: AdvisoryService | None = None
    ) -> None:
        self._pages = pages
        self._files = files
        self._advisories = advisories

    @property
    def advisories(self) -> AdvisoryService | None:
        """The advisories it lists (the web pages show the same)."""
        return self._advisories

    async def document(
        self,
        index: IndexRecord,
        name: str,
        version: str | None,
        base_url: str,
        hidden: frozenset[str] = frozenset(),
    ) -> tuple[CachedPage, Rendered]:
        """The JSON document for a project (``version`` None) or one release, its URLs under
        ``base_url``, built from the page that merges no ``hidden`` base (those the reader may
        not read: its documents are cached on that page, never shared with other readers);
        raises NotFound."""
        cached = await self._pages.project_page(index, name, hidden)
        page = cached.page
        assert isinstance(page, ProjectPage)
        releases = _releases(page)
        chosen = _choose(index, page, releases, version)
        # Keyed by the release found, not the string asked for: "1.0", "1.0.0", "1.0.0.0"...
        # are one entry; and by the advisories' generation, which an import moves.
        generation = self._advisories.generation if self._advisories else 0
        key = f"pypi-json:{'release' if version else 'project'}:{chosen}:{generation}"
        template = cached.extras.get(key)
        if template is None:
            body = await self._build(index, page, releases, chosen, version is None)
            template = Rendered.of(json.dumps(body, indent=None).encode(), "pypi")
            cached.extras[key] = template
        return cached, with_base(template, base_url)

    async def _build(
        self,
        index: IndexRecord,
        page: ProjectPage,
        releases: dict[str, list[FileLink]],
        chosen: str,
        with_releases: bool,
    ) -> dict[str, Any]:
        base_url = BASE_PLACEHOLDER
        links = releases[chosen]
        info = await self._info(index, page, chosen, links, base_url)
        document: dict[str, Any] = {
            "info": info,
            "last_serial": page.last_serial,
            "urls": [_file_entry(link, base_url) for link in links],
            "vulnerabilities": await self._vulnerabilities(page.name, chosen),
            "ownership": {"organization": None, "roles": []},
        }
        if with_releases:
            document["releases"] = {
                v: [_file_entry(link, base_url) for link in files]
                for v, files in sorted(releases.items(), key=lambda kv: version_sort_key(kv[0]))
            }
        return document

    async def _vulnerabilities(self, project: str, version: str) -> list[dict[str, Any]]:
        """The imported advisories affecting this release (PyPI lists those of the release the
        document shows, for the project document too)."""
        if self._advisories is None:
            return []
        return await self._advisories.affecting(normalize_project_name(project), version)

    async def _info(
        self,
        index: IndexRecord,
        page: ProjectPage,
        version: str,
        links: list[FileLink],
        base_url: str,
    ) -> dict[str, Any]:
        info: dict[str, Any] = {"name": page.name, "version": version}
        wheel = next((link for link in links if link.core_metadata_sha256), None)
        wheel = wheel or next((link for link in links if link.filename.endswith(".whl")), None)
        if wheel is not None:
            try:
                record = await self._files.lookup(index, wheel.filename)
                path = await self._files.core_metadata(index, record)
                info.update(parse_core_metadata(path.read_bytes()))
            except CheeseboardError:
                pass  # metadata unavailable (upstream down, odd wheel): answer with what we know
        yanked = [link for link in links if link.yanked is not None]
        info.setdefault("requires_python", links[0].requires_python)
        info["version"] = version
        info["yanked"] = len(yanked) == len(links)
        info["yanked_reason"] = yanked[0].yanked or None if info["yanked"] else None
        info["package_url"] = f"{base_url}{index.fullname}/+simple/{page.name}/"
        info["project_url"] = info["package_url"]
        info["release_url"] = f"{base_url}{index.fullname}/+pypi/{page.name}/{version}/json"
        info.setdefault("requires_dist", [])
        if not info["requires_dist"]:
            info["requires_dist"] = None  # PyPI sends null rather than []
        if not info.get("project_urls"):
            info["project_urls"] = None
        return info
