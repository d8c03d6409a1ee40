"""The simple-API page model and its two renderings (PEP 503 HTML and PEP 691 JSON).

One model is built per (index, project) and rendered once per representation; the bytes are cached
by the page service, so rendering is off the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from cheeseboard.core.names import normalize_project_name

API_VERSION = "1.4"  # PEP 700/740/792 fields; see docs/standards.md §0


@dataclass(frozen=True, slots=True)
class FileLink:
    """One distribution file as a simple page lists it.

    ``path`` is relative to the server root (``root/pypi/+f/abc/0123456789abc/x-1.0.tar.gz``), so
    a stage page can list files that live on its bases; ``yanked`` is
    None when not yanked and a (possibly empty) reason when yanked.
    """

    filename: str
    path: str
    version: str | None
    sha256: str | None
    size: int | None = None
    requires_python: str | None = None
    yanked: str | None = None
    upload_time: str | None = None
    core_metadata_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """Everything a project's simple page shows."""

    index: str
    name: str
    files: tuple[FileLink, ...]
    versions: tuple[str, ...]
    last_serial: int = 0
    status: str | None = None
    status_reason: str | None = None
    links_up: int = 4
    """Path segments from the page up to the server root: 4 for ``<user>/<index>/+simple/
    <project>/``, 6 under an "as of" prefix (``<user>/<index>/+at/<time>/+simple/<project>/``)."""


@dataclass(frozen=True, slots=True)
class ProjectList:
    """An index's list of project names (the simple root)."""

    index: str
    names: tuple[str, ...]
    last_serial: int = 0


def _href(link: FileLink, up: int = 4) -> str:
    # The page lives at <user>/<index>/+simple/<project>/; four levels up is the server root.
    # Route segments keep their "+" (``+f``, ``+e``); in the file name it is escaped as %2B, since
    # some clients and storage backends read a raw "+" in a path as a space.
    directory, slash, filename = link.path.rpartition("/")
    url = "../" * up + quote(directory, safe="/+@") + slash + quote(filename, safe="")
    return f"{url}#sha256={link.sha256}" if link.sha256 else url


def render_project_html(page: ProjectPage) -> bytes:
    """PEP 503 page with the PEP 592/629/658/714/792 attributes, plus uv's data-size hints."""
    name = escape(page.name)
    head = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
    ]
    if page.status:
        head.append(f'    <meta name="pypi:project-status" content="{escape(page.status)}">')
        if page.status_reason:
            reason = escape(page.status_reason)
            head.append(f'    <meta name="pypi:project-status-reason" content="{reason}">')
    head += [f"    <title>Links for {name}</title>", "  </head>", "  <body>"]
    lines = [*head, f"    <h1>Links for {name}</h1>"]
    for link in page.files:
        attrs = [f'href="{escape(_href(link, page.links_up))}"']
        if link.requires_python:
            attrs.append(f'data-requires-python="{escape(link.requires_python)}"')
        if link.yanked is not None:
            attrs.append(f'data-yanked="{escape(link.yanked)}"')
        if link.core_metadata_sha256:
            value = f"sha256={link.core_metadata_sha256}"
            attrs.append(f'data-core-metadata="{value}"')
            attrs.append(f'data-dist-info-metadata="{value}"')
        if link.size is not None:
            attrs.append(f'data-size="{link.size}"')
        if link.upload_time:
            attrs.append(f'data-upload-time="{escape(link.upload_time)}"')
        lines.append(f"    <a {' '.join(attrs)}>{escape(link.filename)}</a><br>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def _file_json(link: FileLink, up: int = 4) -> dict[str, object]:
    entry: dict[str, object] = {
        "filename": link.filename,
        "url": _href(link, up),
        "hashes": {"sha256": link.sha256} if link.sha256 else {},
    }
    if link.size is not None:
        entry["size"] = link.size
    if link.requires_python:
        entry["requires-python"] = link.requires_python
    if link.yanked is not None:
        entry["yanked"] = link.yanked or True
    if link.upload_time:
        entry["upload-time"] = link.upload_time
    if link.core_metadata_sha256:
        # Never "dist-info-metadata" in JSON: it broke pip 22.3 (PEP 714).
        entry["core-metadata"] = {"sha256": link.core_metadata_sha256}
    return entry


def render_project_json(page: ProjectPage) -> bytes:
    """PEP 691 project detail at api-version 1.4 (``name`` is always the normalized name)."""
    document: dict[str, object] = {
        "meta": {"api-version": API_VERSION, "_last-serial": page.last_serial},
        "name": normalize_project_name(page.name),
        "versions": list(page.versions),
        "files": [_file_json(link, page.links_up) for link in page.files],
    }
    if page.status:
        status: dict[str, str] = {"status": page.status}
        if page.status_reason:
            status["reason"] = page.status_reason
        document["project-status"] = status
    return json.dumps(document, separators=(",", ":")).encode()


def render_list_html(listing: ProjectList) -> bytes:
    """PEP 503 root page: one link per project, relative to the page."""
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>Simple index: {escape(listing.index)}</title>",
        "  </head>",
        "  <body>",
    ]
    lines += [f'    <a href="{quote(n)}/">{escape(n)}</a><br>' for n in listing.names]
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def render_list_json(listing: ProjectList) -> bytes:
    """PEP 691 project list."""
    document = {
        "meta": {"api-version": API_VERSION, "_last-serial": listing.last_serial},
        "projects": [{"name": name} for name in listing.names],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def collect_versions(links: Iterable[FileLink]) -> tuple[str, ...]:
    """PEP 700 ``versions``: every version that has a file, in first-seen order."""
    seen: dict[str, None] = {}
    for link in links:
        if link.version:
            seen.setdefault(link.version, None)
    return tuple(seen)
