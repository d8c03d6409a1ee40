"""Distribution file names: which are archives, and what project and version they hold.

Upstream indexes list files that do not always follow today's naming rules, so the parsing here is
tolerant: it answers ``None`` for the version rather than rejecting a link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.utils import canonicalize_version
from packaging.version import Version

from cheeseboard.core.names import normalize_project_name

PackageType = Literal["bdist_wheel", "sdist", "other"]

SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")
OTHER_SUFFIXES = (".egg", ".exe", ".msi", ".rpm", ".dmg", ".deb")
ARCHIVE_SUFFIXES = (".whl", *SDIST_SUFFIXES, *OTHER_SUFFIXES)
# Nothing from a request becomes a filesystem path, but filenames still end up in URLs, headers
# and logs: keep them to printable characters without separators.
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!~-]*")
# Legacy binaries (eggs, bdist_wininst, bdist_msi, bdist_rpm, bdist_dmg) put a python tag and/or
# a platform after the version: ``x-1.0-py2.7.egg``, ``x-1.0.win32-py2.7.exe``, ``x-1.0-1.src.rpm``.
_LEGACY_TAIL = re.compile(
    r"\.(?:win32|win-amd64|win-arm64|linux|macosx|cygwin|freebsd|solaris)\b.*|-.*", re.DOTALL
)
_LEGACY_PYTHON_TAG = re.compile(r"-(py\d+(?:\.\d+)?)(?:-|$)")


@dataclass(frozen=True, slots=True)
class DistFilename:
    """What a distribution file name says about its contents."""

    filename: str
    project: str  # normalized
    version: str | None
    packagetype: PackageType
    python_tag: str  # wheel python tag(s), "source" for sdists, "" when unknown


def is_safe_filename(filename: str) -> bool:
    """Tell whether a filename is a plain archive name, safe to put in paths and headers."""
    return (
        len(filename) <= 255
        and bool(_SAFE_FILENAME.fullmatch(filename))
        and filename.lower().endswith(ARCHIVE_SUFFIXES)
    )


def packagetype_of(filename: str) -> PackageType:
    """Classify a file by its extension."""
    lower = filename.lower()
    if lower.endswith(".whl"):
        return "bdist_wheel"
    if lower.endswith(SDIST_SUFFIXES):
        return "sdist"
    return "other"


def _strip_suffix(filename: str) -> str:
    lower = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def _legacy(filename: str, project: str, rest: str) -> DistFilename:
    """A legacy binary: keep the version only if what precedes the tags is a PEP 440 version."""
    version: str | None = _LEGACY_TAIL.sub("", rest, count=1)
    if not is_pep440_version(version or ""):
        version = None
    tag = _LEGACY_PYTHON_TAG.search("-" + rest)
    return DistFilename(filename, project, version, "other", tag.group(1) if tag else "")


def parse_dist_filename(filename: str, project: str | None = None) -> DistFilename:
    """Split a distribution file name; ``project`` (if known) disambiguates sdist names."""
    kind = packagetype_of(filename)
    stem = _strip_suffix(filename)
    if kind == "bdist_wheel":
        parts = stem.split("-")
        if len(parts) in (5, 6):
            return DistFilename(
                filename, normalize_project_name(parts[0]), parts[1], kind, parts[-3]
            )
        return DistFilename(filename, normalize_project_name(parts[0]), None, kind, "")
    python_tag = "source" if kind == "sdist" else ""
    if project is not None:
        normalized = normalize_project_name(project)
        # The name part may use "-", "_" or "." anywhere; find the split whose prefix matches.
        for index, char in enumerate(stem):
            if char == "-" and normalize_project_name(stem[:index]) == normalized:
                rest = stem[index + 1 :]
                if kind == "other":
                    return _legacy(filename, normalized, rest)
                return DistFilename(filename, normalized, rest or None, kind, python_tag)
    if kind == "other":
        # Without a project, the name ends at the first "-" that starts a version.
        match = re.search(r"-(?=\d)", stem)
        if match is None:
            return DistFilename(filename, normalize_project_name(stem), None, kind, "")
        name = stem[: match.start()]
        return _legacy(filename, normalize_project_name(name), stem[match.end() :])
    name, _, version = stem.rpartition("-")
    if not name:
        return DistFilename(filename, normalize_project_name(stem), None, kind, "")
    return DistFilename(filename, normalize_project_name(name), version or None, kind, python_tag)


def _parsed_version(version: str) -> Version | None:
    """``version`` parsed by PEP 440, or None.

    Besides InvalidVersion, packaging lets through the plain ValueError of ``int()`` for a release
    number of more than 4300 digits (Python's limit against CVE-2020-10735); such a string from a
    URL or a form is as invalid as any other, not a server error.
    """
    try:
        return Version(version)
    except ValueError:  # InvalidVersion is a ValueError too
        return None


def is_pep440_version(version: str) -> bool:
    """Tell whether ``version`` is a PEP 440 version (surrounding whitespace allowed, as packaging
    allows it)."""
    return _parsed_version(version) is not None


def canonical_version(version: str) -> str:
    """Canonical form for comparing versions (1.0 == 1.0.0); unparsable ones stay as they are."""
    parsed = _parsed_version(version)
    return version if parsed is None else canonicalize_version(parsed)


def version_sort_key(version: str) -> tuple[int, Version | str]:
    """Sort key that orders valid versions by PEP 440 and puts invalid ones first, by text."""
    parsed = _parsed_version(version)
    return (0, version) if parsed is None else (1, parsed)
