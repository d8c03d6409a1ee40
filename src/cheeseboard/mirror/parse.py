"""Pure parsers: upstream simple pages (PEP 503 HTML, PEP 691 JSON) and the PyPI JSON API.

They turn bytes into UpstreamLink values and never raise on odd links: a link that is not a
distribution archive, whose name is unsafe, or whose URL does not parse, is skipped. A page as a
whole is judged by ``parse_simple_page``, which refuses (PageFormatError) what is not a simple page
at all, so that garbage never replaces a good cached page: another content type, bytes that do
not decode, text without markup, a document cut off inside a tag, JSON of another shape or of an
unknown major API version. An empty body (200, nothing or only whitespace) of a page type is a
page without files, as devpi reads it: a project with no releases.
"""

from __future__ import annotations

import codecs
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
MAX_FILE_SIZE = 2**40
"""Largest file size believed (1 TiB; PyPI's largest files are a few GB). Anything larger is an
error or an attack (2**63 overflows SQLite's INTEGER and broke the project for good): unknown."""
MAX_PAGE_LINKS = 100_000
"""Most file links one upstream page may list. PyPI's biggest real pages list tens of thousands
of files; a page with 300k links took ~1 GB to parse and store, so a larger one is refused as
upstream failing (502, or the cached page). The byte cap is ``client.MAX_PAGE_BYTES``."""
_URL_SCHEMES = ("http", "https")
# Fed after an HTML page in strict mode: it is seen as a tag only if the page ended outside a tag,
# comment or quoted attribute value, i.e. was not cut off in the middle of its markup.
_END_TAG = "cheeseboard-end-of-page"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_JSON_TYPES = ("application/json",)
_SIMPLE_TYPE = re.compile(r"application/vnd\.pypi\.simple\.[a-z0-9.]+\+(json|html)")


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
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a port
    except ValueError:
        return None
    if parts.scheme.lower() not in _URL_SCHEMES or not parts.hostname:
        return None
    return unquote(parts.path.rsplit("/", 1)[-1])


def _absolute(base_url: str, href: str) -> tuple[str, str] | None:
    """``href`` resolved against ``base_url`` and split from its fragment; None if unparsable."""
    try:
        url, fragment = urldefrag(urljoin(base_url, href))
    except ValueError:  # e.g. "http://[::1/x": an unterminated IPv6 host
        return None
    return url, fragment


def _size(value: object) -> int | None:
    """A JSON size: a non-negative int up to MAX_FILE_SIZE (a bool is not a size)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_FILE_SIZE:
        return value
    return None


def _html_size(value: str | None) -> int | None:
    """A ``data-size`` attribute: ASCII digits of a size up to MAX_FILE_SIZE."""
    return _size(int(value)) if value and _SIZE.fullmatch(value) else None


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
        self.tags = 0  # start tags seen, the end mark aside
        self.ended = False  # the end mark was seen as a tag
        self._based = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == _END_TAG:
            self.ended = True
            return
        self.tags += 1
        if tag == "a":
            if len(self.anchors) >= MAX_PAGE_LINKS:
                raise PageFormatError(f"upstream page lists more than {MAX_PAGE_LINKS} links")
            self.anchors.append(dict(attrs))
        elif tag == "base" and not self._based:
            # Only the first <base href> counts (HTML's "frozen base URL"); one that does not
            # parse leaves the page's own URL as the base.
            href = dict(attrs).get("href")
            if href:
                self._based = True
                resolved = _absolute(self.base_url, href)
                if resolved is not None:
                    self.base_url = resolved[0]
        elif tag == "meta":
            values = dict(attrs)
            name, content = values.get("name"), values.get("content")
            if name and content is not None:
                self.meta[name] = content


def parse_html_page(body: bytes, base_url: str) -> UpstreamPage:
    """Read a PEP 503 page: links with sha256 fragments, requires-python, yanked, core metadata.

    Lenient: any bytes give a page (possibly without links), short of MAX_PAGE_LINKS links.
    ``parse_simple_page`` is the strict entry point for upstream answers."""
    return _html_page(body.decode("utf-8", errors="replace"), base_url, strict=False)


def _html_page(text: str, base_url: str, *, strict: bool) -> UpstreamPage:
    collector = _AnchorCollector(base_url)
    collector.feed(text)
    if strict:
        collector.feed(f"<{_END_TAG}>")
    collector.close()
    if strict and not collector.tags:
        raise PageFormatError("upstream page is not HTML: it has no tags at all")
    if strict and not collector.ended:
        raise PageFormatError("upstream page ends inside a tag, comment or attribute (cut off?)")
    links: list[UpstreamLink] = []
    for attrs in collector.anchors:
        href = attrs.get("href")
        if not href:
            continue
        resolved = _absolute(collector.base_url, href)
        if resolved is None:
            continue
        url, fragment = resolved
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
                size=_html_size(size),
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
    """Read a PEP 691 project detail page (API version 1.x: a later major version may mean
    something else by the same keys, so PEP 691 has clients refuse it)."""
    document = _json_object(body)
    meta = document.get("meta", {})
    version = meta.get("api-version", "1.0") if isinstance(meta, dict) else None
    if not isinstance(version, str) or version.split(".")[0].strip() != "1":
        raise PageFormatError(f"upstream JSON has api-version {version!r}, not 1.x")
    raw_files = document.get("files")
    if not isinstance(raw_files, list):
        raise PageFormatError("upstream JSON has no 'files' list")
    if len(raw_files) > MAX_PAGE_LINKS:
        raise PageFormatError(f"upstream page lists more than {MAX_PAGE_LINKS} files")
    links: list[UpstreamLink] = []
    for entry in raw_files:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        resolved = _absolute(base_url, entry["url"])
        if resolved is None:
            continue
        url = resolved[0]
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
    """Parse whichever representation upstream chose to send, refusing what is not a page.

    An empty body is a page without files. Raises PageFormatError for another content type (no
    type at all is taken as HTML, as old mirrors send), HTML that does not decode in its charset
    (UTF-8 by default, as pip reads it), holds NUL characters, has no tags or is cut off inside
    one, and for JSON that does not parse or has the wrong shape.
    """
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    simple = _SIMPLE_TYPE.fullmatch(media_type)
    is_json = media_type in _JSON_TYPES or (simple is not None and simple.group(1) == "json")
    if not (is_json or media_type in ("", *_HTML_TYPES) or simple is not None):
        raise PageFormatError(f"upstream answered {media_type!r}, not a simple page")
    if not body or body.isspace():
        # Not is_json: an empty answer says nothing about which facts upstream's pages carry.
        return UpstreamPage(links=(), is_json=False)
    if is_json:
        return parse_json_page(body, base_url)
    charset = _charset(params)
    try:
        text = body.decode(charset)
    except UnicodeError as exc:  # UnicodeDecodeError, and what codecs like punycode raise
        raise PageFormatError(f"upstream HTML is not valid {charset}: {exc}") from exc
    except LookupError as exc:  # charset=base64: a codec, but not a text encoding
        raise PageFormatError(f"upstream HTML has charset {charset}: {exc}") from exc
    if "\0" in text:
        raise PageFormatError("upstream HTML holds NUL characters (binary data?)")
    return _html_page(text, base_url, strict=True)


def _charset(params: str) -> str:
    """The charset parameter of a Content-Type if Python knows it, else UTF-8."""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


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
