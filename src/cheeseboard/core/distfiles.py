"""Distribution file names: which are archives, and what project and version they hold.

Upstream indexes list files that do not always follow today's naming rules, so the parsing here is
tolerant: it answers ``None`` for the version rather than rejecting a link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from cheeseboard.core.names import normalize_project_name

PackageType = Literal["bdist_wheel", "sdist", "other"]

SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")
OTHER_SUFFIXES = (".egg", ".exe", ".msi", ".rpm", ".dmg", ".deb")
ARCHIVE_SUFFIXES = (".whl", *SDIST_SUFFIXES, *OTHER_SUFFIXES)
# Nothing from a request becomes a filesystem path, but filenames still end up in URLs, headers
# and logs: keep them to printable characters without separators.
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!~-]*$")


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
        and bool(_SAFE_FILENAME.match(filename))
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
    if project is not None:
        normalized = normalize_project_name(project)
        # The name part may use "-", "_" or "." anywhere; find the split whose prefix matches.
        for index, char in enumerate(stem):
            if char == "-" and normalize_project_name(stem[:index]) == normalized:
                version = stem[index + 1 :] or None
                python_tag = "source" if kind == "sdist" else ""
                return DistFilename(filename, normalized, version, kind, python_tag)
    name, _, version = stem.rpartition("-")
    if not name:
        return DistFilename(filename, normalize_project_name(stem), None, kind, "")
    python_tag = "source" if kind == "sdist" else ""
    return DistFilename(filename, normalize_project_name(name), version or None, kind, python_tag)


def canonical_version(version: str) -> str:
    """Canonical form for comparing versions (1.0 == 1.0.0); unparsable ones stay as they are."""
    try:
        return canonicalize_version(Version(version))
    except InvalidVersion:
        return version


def version_sort_key(version: str) -> tuple[int, Version | str]:
    """Sort key that orders valid versions by PEP 440 and puts invalid ones first, by text."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)
