"""Pure parsers: upstream simple pages (PEP 503 HTML, PEP 691 JSON) and the PyPI JSON API.

They turn bytes into UpstreamLink values and never raise on odd links: a link that is not a
distribution archive, or whose name is unsafe, is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from cheeseboard.core.distfiles import is_safe_filename

# Used with fullmatch: "$" would also accept a trailing newline. ASCII digits only.
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_UPLOAD_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
_SIZE = re.compile(r"[0-9]{1,18}")
_URL_SCHEMES = ("http", "https")


class PageFormatError(ValueError):
    """Raised when an upstream page cannot be read at all (not JSON, wrong shape)."""


@dataclass(frozen=True, slots=True)
class UpstreamLink:
    """A file as upstream lists it; ``url`` is absolute and has no fragment."""

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None
    requires_python: str | None = None
    yanked: str | None = None  # None = not yanked, "" = yanked without reason
    upload_time: str | None = None
    core_metadata_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamPage:
    """A parsed upstream project page."""

    links: tuple[UpstreamLink, ...]
    is_json: bool
    status: str | None = None
    status_reason: str | None = None


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the PyPI JSON API adds to an HTML page: the PEP 700/658 facts per file."""

    size: int | None
    upload_time: str | None
    sha256: str | None
    core_metadata_sha256: str | None


def _sha256_from_fragment(fragment: str) -> str | None:
    algo, _, value = fragment.partition("=")
    if algo.lower() == "sha256" and _HEX64.fullmatch(value):
        return value.lower()
    return None


def _filename_from_url(url: str) -> str | None:
    """The file name a download URL ends with, or None for URLs we would not fetch."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _URL_SCHEMES or not parts.netloc:
        return None
    return unquote(parts.path.rsplit("/", 1)[-1])


def _size(value: object) -> int | None:
    """A JSON size: a non-negative int (a bool is not a size)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _hex_sha256(value: object) -> str | None:
    """A JSON sha256 hex digest, lower-cased, or None."""
    return value.lower() if isinstance(value, str) and _HEX64.fullmatch(value) else None


def _text(value: object) -> str | None:
    """A non-empty JSON string, or None."""
    return value if isinstance(value, str) and value else None


def _core_metadata_hash(value: str | None) -> str | None:
    if not value:
        return None
    algo, _, digest = value.partition("=")
    if algo.lower() == "sha256" and _HEX64.fullmatch(digest):
        return digest.lower()
    return None


def _clean_upload_time(value: object) -> str | None:
    if isinstance(value, str) and _UPLOAD_TIME.fullmatch(value):
        return value
    return None


class _AnchorCollector(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.anchors: list[dict[str, str | None]] = []
        self.meta: dict[str, str] = {}
        self._based = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "base" and not self._based:
            # Only the first <base href> counts (HTML's "frozen base URL").
            href = dict(attrs).get("href")
            if href:
                self.base_url = urljoin(self.base_url, href)
                self._based = True
        elif tag == "meta":
            values = dict(attrs)
            name, content = values.get("name"), values.get("content")
            if name and content is not None:
                self.meta[name] = content


def parse_html_page(body: bytes, base_url: str) -> UpstreamPage:
    """Read a PEP 503 page: links with sha256 fragments, requires-python, yanked, core metadata."""
    collector = _AnchorCollector(base_url)
    collector.feed(body.decode("utf-8", errors="replace"))
    collector.close()
    links: list[UpstreamLink] = []
    for attrs in collector.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(collector.base_url, href))
        filename = _filename_from_url(url)
        if filename is None or not is_safe_filename(filename):
            continue
        core = attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata")
        size = attrs.get("data-size")
        links.append(
            UpstreamLink(
                filename=filename,
                url=url,
                sha256=_sha256_from_fragment(fragment),
                size=int(size) if size and _SIZE.fullmatch(size) else None,
                requires_python=attrs.get("data-requires-python") or None,
                yanked=(attrs.get("data-yanked") or "") if "data-yanked" in attrs else None,
                upload_time=_clean_upload_time(attrs.get("data-upload-time")),
                core_metadata_sha256=_core_metadata_hash(core),
            )
        )
    return UpstreamPage(
        links=tuple(links),
        is_json=False,
        status=collector.meta.get("pypi:project-status"),
        status_reason=collector.meta.get("pypi:project-status-reason"),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise PageFormatError(f"upstream JSON does not parse: {exc}") from exc
    if not isinstance(document, dict):
        raise PageFormatError("upstream JSON is not an object")
    return document


def parse_json_page(body: bytes, base_url: str) -> UpstreamPage:
    """Read a PEP 691 project detail page."""
    document = _json_object(body)
    raw_files = document.get("files")
    if not isinstance(raw_files, list):
        raise PageFormatError("upstream JSON has no 'files' list")
    links: list[UpstreamLink] = []
    for entry in raw_files:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        url, _ = urldefrag(urljoin(base_url, entry["url"]))
        filename = entry.get("filename")
        if not isinstance(filename, str) or not is_safe_filename(filename):
            continue
        if _filename_from_url(url) is None:
            continue
        hashes = entry.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        core = entry.get("core-metadata", entry.get("dist-info-metadata"))
        core_sha = core.get("sha256") if isinstance(core, dict) else None
        yanked = entry.get("yanked")
        links.append(
            UpstreamLink(
                filename=filename,
                url=url,
                sha256=_hex_sha256(sha256),
                size=_size(entry.get("size")),
                requires_python=_text(entry.get("requires-python")),
                yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
                upload_time=_clean_upload_time(entry.get("upload-time")),
                core_metadata_sha256=_hex_sha256(core_sha),
            )
        )
    status = document.get("project-status")
    return UpstreamPage(
        links=tuple(links),
        is_json=True,
        status=_text(status.get("status")) if isinstance(status, dict) else None,
        status_reason=_text(status.get("reason")) if isinstance(status, dict) else None,
    )


def parse_simple_page(body: bytes, content_type: str, base_url: str) -> UpstreamPage:
    """Parse whichever representation upstream chose to send."""
    if "json" in content_type.lower():
        return parse_json_page(body, base_url)
    return parse_html_page(body, base_url)


def parse_pypi_json(body: bytes) -> dict[str, FileFacts]:
    """Per-filename facts from ``/pypi/<name>/json`` (size, upload time, hashes)."""
    document = _json_object(body)
    releases = document.get("releases")
    if not isinstance(releases, dict):
        raise PageFormatError("upstream JSON API has no 'releases' object")
    facts: dict[str, FileFacts] = {}
    for files in releases.values():
        if not isinstance(files, list):
            continue
        for entry in files:
            if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
                continue
            digests = entry.get("digests")
            sha256 = digests.get("sha256") if isinstance(digests, dict) else None
            core = entry.get("core-metadata", entry.get("data-dist-info-metadata"))
            core_sha = core.get("sha256") if isinstance(core, dict) else None
            facts[entry["filename"]] = FileFacts(
                size=_size(entry.get("size")),
                upload_time=_clean_upload_time(entry.get("upload_time_iso_8601")),
                sha256=_hex_sha256(sha256),
                core_metadata_sha256=_hex_sha256(core_sha),
            )
    return facts


def needs_enrichment(page: UpstreamPage) -> bool:
    """True when some file lacks size or upload time, which the JSON API can supply."""
    return any(link.size is None or link.upload_time is None for link in page.links)


def enrich(page: UpstreamPage, facts: Mapping[str, FileFacts]) -> UpstreamPage:
    """Fill missing PEP 700/658 facts from the JSON API, never overriding what the page said.

    A core-metadata hash is taken only for wheels, and only when the JSON API's sha256 for the file
    agrees with the page's, so facts about a different file never leak in.
    """
    enriched: list[UpstreamLink] = []
    for link in page.links:
        fact = facts.get(link.filename)
        if fact is None or (link.sha256 and fact.sha256 and link.sha256 != fact.sha256):
            enriched.append(link)
            continue
        core = link.core_metadata_sha256
        if core is None and link.filename.lower().endswith(".whl"):
            core = fact.core_metadata_sha256
        enriched.append(
            replace(
                link,
                sha256=link.sha256 or fact.sha256,
                size=link.size if link.size is not None else fact.size,
                upload_time=link.upload_time or fact.upload_time,
                core_metadata_sha256=core,
            )
        )
    return replace(page, links=tuple(enriched))
