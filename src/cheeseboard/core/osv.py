"""OSV advisories (https://ossf.github.io/osv-schema/): one document parsed into what we keep.

Only ``PyPI`` entries matter; project names are PEP 503 normalized. Feeds are outside input, so
every size is bounded and anything malformed raises OsvError with a reason: the import skips that
document and goes on. ``MAL-`` ids are malicious packages (they become blocks); the rest are
vulnerabilities (shown in the PyPI JSON API and on project pages).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from cheeseboard.core.names import is_valid_project_name, normalize_project_name

MAX_DOCUMENT_BYTES = 1024 * 1024  # larger documents are skipped (all of OSV's PyPI ones: < 200 KB)
MAX_AFFECTED = 500  # package entries in one advisory
MAX_VERSIONS = 10_000  # explicit versions of one package entry
MAX_RANGES = 100  # ranges of one package entry
MAX_EVENTS = 200  # events of one range
MAX_ALIASES = 100
MAX_SUMMARY = 1000  # characters kept
MAX_DETAILS = 64 * 1024
MAX_BLOCKS = 1000  # blocks one malicious advisory may make
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:?\d\d)?", re.IGNORECASE)
_MAX_VERSION_CHARS = 128
ECOSYSTEM = "PyPI"
LINK_BASE = "https://osv.dev/vulnerability/"

Kind = Literal["malicious", "vulnerability"]


class OsvError(ValueError):
    """A document that cannot be used; the message is the reason it was skipped."""


@dataclass(frozen=True, slots=True)
class Interval:
    """Versions from ``introduced`` ("0": the first) up to before ``fixed`` or up to and
    including ``last_affected`` (neither: every later version)."""

    introduced: str
    fixed: str | None = None
    last_affected: str | None = None

    def contains(self, version: Version) -> bool:
        """False for bounds that are not PEP 440 versions: never matched, never guessed."""
        try:
            if self.introduced != "0" and version < Version(self.introduced):
                return False
            if self.fixed is not None and version >= Version(self.fixed):
                return False
            return not (self.last_affected is not None and version > Version(self.last_affected))
        except InvalidVersion:
            return False

    def specifier(self) -> str | None:
        """The same versions as a PEP 440 specifier set; None when that is every version.
        Raises OsvError for bounds that are not PEP 440 versions."""
        parts = []
        if self.introduced != "0":
            parts.append(f">={self.introduced}")
        if self.fixed is not None:
            parts.append(f"<{self.fixed}")
        if self.last_affected is not None:
            parts.append(f"<={self.last_affected}")
        if not parts:
            return None
        text = ",".join(parts)
        try:
            SpecifierSet(text)
            for bound in (self.introduced, self.fixed, self.last_affected):
                if bound is not None and bound != "0":
                    Version(bound)
        except (InvalidSpecifier, InvalidVersion):
            raise OsvError(f"range {text!r} is not a PEP 440 specifier") from None
        return text


@dataclass(frozen=True, slots=True)
class Affected:
    """What one advisory says about one project."""

    project: str  # PEP 503 normalized
    versions: tuple[str, ...] = ()
    intervals: tuple[Interval, ...] = ()

    @property
    def fixed(self) -> tuple[str, ...]:
        """The versions that fix it, in the advisory's order, each once."""
        return tuple(dict.fromkeys(i.fixed for i in self.intervals if i.fixed is not None))

    @property
    def every_version(self) -> bool:
        return any(
            i.introduced == "0" and i.fixed is None and i.last_affected is None
            for i in self.intervals
        )

    def affects(self, version: str) -> bool:
        """Whether ``version`` is affected: listed, or inside a range. A version that is not
        PEP 440 matches only when listed as written."""
        if version in self.versions:
            return True
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        for listed in self.versions:
            try:
                if Version(listed) == parsed:
                    return True
            except InvalidVersion:
                continue
        return any(interval.contains(parsed) for interval in self.intervals)

    def block_specifiers(self) -> list[str | None]:
        """One specifier per block a malicious advisory makes (None: every version): a block
        per listed version and per bounded range, since a specifier set cannot say "or". An entry
        naming neither versions nor ranges means the whole project."""
        if self.every_version or not (self.versions or self.intervals):
            return [None]
        found: dict[str | None, None] = {}
        for version in self.versions:
            try:
                found[f"=={Version(version)}"] = None
            except InvalidVersion:
                found[f"==={version}"] = None  # arbitrary equality: the string as written
        for interval in self.intervals:
            try:
                found[interval.specifier()] = None
            except OsvError:
                continue  # not PEP 440: the versions listed (if any) still count
        return list(found)[:MAX_BLOCKS]

    def to_json(self) -> dict[str, Any]:
        """The ``affected`` column of the advisories table."""
        return {
            "versions": list(self.versions),
            "ranges": [[i.introduced, i.fixed, i.last_affected] for i in self.intervals],
        }

    @classmethod
    def from_json(cls, project: str, data: Mapping[str, Any]) -> Affected:
        intervals = tuple(
            Interval(str(item[0]), item[1], item[2])
            for item in data.get("ranges", ())
            if isinstance(item, list) and len(item) == 3
        )
        return cls(project, tuple(str(v) for v in data.get("versions", ())), intervals)


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    kind: Kind
    summary: str | None
    details: str | None
    aliases: tuple[str, ...]
    link: str
    modified: str | None
    withdrawn: str | None
    affected: tuple[Affected, ...]  # PyPI entries only; empty for other ecosystems

    @property
    def projects(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.project for a in self.affected))


def parse(data: bytes) -> Advisory:
    """One OSV JSON document; raises OsvError saying why it cannot be used."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise OsvError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise OsvError(f"not JSON: {str(error)[:100]}") from None
    return parse_document(document)


def parse_document(document: object) -> Advisory:
    if not isinstance(document, dict):
        raise OsvError("not a JSON object")
    advisory_id = document.get("id")
    if not isinstance(advisory_id, str) or not _ID.fullmatch(advisory_id):
        raise OsvError(f"missing or invalid id {str(advisory_id)[:60]!r}")
    affected = document.get("affected", [])
    if not isinstance(affected, list):
        raise OsvError(f"{advisory_id}: 'affected' is not a list")
    if len(affected) > MAX_AFFECTED:
        raise OsvError(f"{advisory_id}: more than {MAX_AFFECTED} affected entries")
    entries = _merged([entry for item in affected if (entry := _affected(advisory_id, item))])
    return Advisory(
        id=advisory_id,
        kind="malicious" if advisory_id.upper().startswith("MAL-") else "vulnerability",
        summary=_text(document.get("summary"), MAX_SUMMARY),
        details=_text(document.get("details"), MAX_DETAILS),
        aliases=_aliases(document.get("aliases")),
        link=LINK_BASE + advisory_id,
        modified=_time(document.get("modified")),
        withdrawn=_time(document.get("withdrawn")),
        affected=entries,
    )


def _text(value: object, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value[:limit]


def _time(value: object) -> str | None:
    if isinstance(value, str) and len(value) <= 40 and _TIME.fullmatch(value):
        return value
    return None


def _aliases(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(a for a in value[:MAX_ALIASES] if isinstance(a, str) and _ID.fullmatch(a))


def _version(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= _MAX_VERSION_CHARS and value.isprintable():
        return value.strip() or None
    return None


def _affected(advisory_id: str, item: object) -> Affected | None:
    """One entry of ``affected`` when it is about a PyPI project; OsvError when malformed."""
    if not isinstance(item, dict):
        raise OsvError(f"{advisory_id}: an affected entry is not an object")
    package = item.get("package")
    if not isinstance(package, dict) or package.get("ecosystem") != ECOSYSTEM:
        return None  # another ecosystem (or a git-only entry): not ours
    name = package.get("name")
    if not isinstance(name, str) or not is_valid_project_name(name):
        raise OsvError(f"{advisory_id}: invalid PyPI project name {str(name)[:60]!r}")
    versions = item.get("versions", [])
    ranges = item.get("ranges", [])
    if not isinstance(versions, list) or not isinstance(ranges, list):
        raise OsvError(f"{advisory_id}: 'versions' or 'ranges' is not a list")
    if len(versions) > MAX_VERSIONS or len(ranges) > MAX_RANGES:
        raise OsvError(f"{advisory_id}: too many versions or ranges for {name}")
    listed = tuple(dict.fromkeys(v for raw in versions if (v := _version(raw))))
    intervals: list[Interval] = []
    for entry in ranges:
        if isinstance(entry, dict) and entry.get("type") == "ECOSYSTEM":
            intervals.extend(_intervals(advisory_id, entry.get("events")))
    return Affected(normalize_project_name(name), listed, tuple(intervals))


def _intervals(advisory_id: str, events: object) -> list[Interval]:
    """An ECOSYSTEM range's events, in order: each ``introduced`` opens an interval that the
    next ``fixed`` or ``last_affected`` closes."""
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise OsvError(f"{advisory_id}: a range's events are not a list of at most {MAX_EVENTS}")
    found: list[Interval] = []
    start: str | None = None
    for event in events:
        if not isinstance(event, dict) or len(event) != 1:
            raise OsvError(f"{advisory_id}: a range event is not a one-key object")
        ((key, raw),) = event.items()
        value = _version(raw)
        if value is None:
            raise OsvError(f"{advisory_id}: a range event has no version")
        if key == "introduced":
            if start is not None:
                found.append(Interval(start))
            start = value
        elif key in ("fixed", "last_affected", "limit"):
            if start is None:
                continue  # closes nothing
            if key == "fixed":
                found.append(Interval(start, fixed=value))
            elif key == "last_affected":
                found.append(Interval(start, last_affected=value))
            else:
                found.append(Interval(start))  # "limit" bounds git ranges; ECOSYSTEM has none
            start = None
    if start is not None:
        found.append(Interval(start))
    return found


def _merged(entries: Sequence[Affected]) -> tuple[Affected, ...]:
    """One entry per project (an advisory may list a project twice, e.g. per range type)."""
    by_project: dict[str, Affected] = {}
    for entry in entries:
        seen = by_project.get(entry.project)
        if seen is None:
            by_project[entry.project] = entry
        else:
            by_project[entry.project] = Affected(
                entry.project,
                tuple(dict.fromkeys(seen.versions + entry.versions)),
                tuple(dict.fromkeys(seen.intervals + entry.intervals)),
            )
    return tuple(by_project.values())
