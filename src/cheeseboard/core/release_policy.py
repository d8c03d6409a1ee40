"""Which files an index may offer: the cooldown, the cut-off, their exemptions, and blocks.

Pure decisions (issue 21, docs/supply-chain.md). A file is judged by the rules of every index
that offers it: its own index's when that is a mirror (everything a mirror has comes from
upstream), and each inheriting index's, for what it inherits. An uploader's own files are never
held back by their own index's cooldown; they are by an index that inherits them.

- ``min_release_age``: a file is offered once it is that old, counted from its upload time as
  upstream (or the upload) gave it, never from when this server fetched it.
- ``release_cutoff``: a file uploaded after that moment is never offered.
- Both **fail closed**: a file whose upload time is unknown is held, and the reason says so.
- ``release_age_exempt``: ``project`` or ``project==version`` entries, each with a reason, an
  author and an optional expiry, let files through the cooldown of the index that lists them
  (not through its cut-off, nor through blocks).
- Blocks (a project, a version range, a filename or a sha256, with a reason) hide files
  everywhere they apply; nothing exempts from them.

Every verdict also says when it may change next (a file coming of age, an exemption expiring),
so a page built from verdicts knows how long it stays right without asking again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from cheeseboard.core.names import InvalidName, checked_project_name, normalize_project_name

MAX_AGE_SECONDS = 10 * 365 * 86400  # a cooldown beyond ten years is a typo
MAX_REASON = 1000  # characters of a reason (exemptions, blocks)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*([0-9]{1,12})\s*([smhdw]?)\s*", re.IGNORECASE)


class PolicyError(ValueError):
    """An invalid policy value; the message is shown to the client."""


# --- values ------------------------------------------------------------------------------------


def parse_age(value: object, key: str = "min_release_age") -> int:
    """Seconds from ``604800``, ``"7d"``, ``"12h"``, ``"30m"``, ``"90s"`` or ``"2w"``; 0 is off."""
    seconds: int | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and (match := _AGE.fullmatch(value)):
        seconds = int(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if seconds is None or seconds < 0 or seconds > MAX_AGE_SECONDS:
        raise PolicyError(
            f"The '{key}' setting can't have value {_short(value)}: use seconds or a number "
            "with a unit, e.g. 7d, 12h, 30m (at most ten years)"
        )
    return seconds


def format_age(seconds: int) -> str:
    """``604800`` -> ``"7d"``: the largest unit that divides it."""
    if seconds == 0:
        return "0"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_time(value: object, key: str = "release_cutoff") -> float:
    """Seconds since the epoch from an RFC 3339 time (``2026-01-31T00:00:00Z``; a date alone
    means its midnight UTC; a time without an offset is UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not 8 <= len(value.strip()) <= 40:
        raise PolicyError(f"The '{key}' setting can't have value {_short(value)}: use RFC 3339")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise PolicyError(
            f"The '{key}' setting can't have value {_short(value)}: use an RFC 3339 time "
            "such as 2026-01-31T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def upload_seconds(upload_time: str | None) -> float | None:
    """A file's upload time (as stored: ISO 8601 from upstream or the upload) in seconds since
    the epoch, or None when it is missing or unreadable (then it fails closed)."""
    if not upload_time:
        return None
    try:
        moment = datetime.fromisoformat(upload_time.strip().replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _reason(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolicyError(f"the reason of {what} must be text")
    text = " ".join(value.split())
    if len(text) > MAX_REASON:
        raise PolicyError(f"the reason of {what} is longer than {MAX_REASON} characters")
    return text


def _canonical_version(version: str) -> str:
    try:
        return canonicalize_version(Version(version))
    except InvalidVersion:
        return version.strip().lower()


# --- exemptions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exemption:
    """``project`` (all versions) or ``project==version`` through one index's cooldown."""

    project: str
    version: str | None
    reason: str
    author: str
    added: float
    expires: float | None = None

    @property
    def entry(self) -> str:
        return self.project if self.version is None else f"{self.project}=={self.version}"

    def active(self, now: float) -> bool:
        return self.added <= now and (self.expires is None or now < self.expires)

    def covers(self, project: str, version: str | None, now: float) -> bool:
        if not self.active(now) or project != self.project:
            return False
        if self.version is None:
            return True
        return version is not None and _canonical_version(version) == _canonical_version(
            self.version
        )

    def stored(self) -> dict[str, object]:
        """The form kept in the index configuration (and shown by GET)."""
        shown: dict[str, object] = {
            "entry": self.entry,
            "reason": self.reason,
            "author": self.author,
            "added": format_time(self.added),
        }
        if self.expires is not None:
            shown["expires"] = format_time(self.expires)
        return shown


def _entry(text: str) -> tuple[str, str | None]:
    name, sep, version = text.strip().partition("==")
    try:
        project = normalize_project_name(checked_project_name(name.strip()))
    except InvalidName as exc:
        raise PolicyError(f"release_age_exempt entry {_short(text)}: {exc}") from None
    if not sep:
        return project, None
    version = version.strip()
    try:
        Version(version)
    except InvalidVersion:
        raise PolicyError(
            f"release_age_exempt entry {_short(text)}: {version!r} is not a valid version"
        ) from None
    return project, version


def exemption_from(value: object, author: str, now: float) -> Exemption:
    """An exemption from a client's value: a stored dict (kept as it is, author included), a new
    dict ``{"entry", "reason", "expires"}``, or a string ``"foo==1.0; reason=...; expires=..."``
    (``expires`` an RFC 3339 time or an age from now such as ``2d``). New ones get ``author``
    and ``now`` as when they were added."""
    if isinstance(value, str):
        head, *options = value.split(";")
        fields: dict[str, object] = {"entry": head}
        for option in options:
            key, sep, text = option.partition("=")
            if not sep or key.strip() not in ("reason", "expires"):
                raise PolicyError(
                    f"release_age_exempt entry {_short(value)}: options are "
                    "'; reason=TEXT' and '; expires=TIME'"
                )
            fields[key.strip()] = text.strip()
        value = fields
    if not isinstance(value, Mapping) or not isinstance(value.get("entry"), str):
        raise PolicyError(
            "release_age_exempt entries are 'project' or 'project==version' (optionally with "
            f"'; reason=…; expires=…'), not {_short(value)}"
        )
    project, version = _entry(str(value["entry"]))
    stored_author = value.get("author")
    added_text = value.get("added")
    added = parse_time(added_text, "added") if isinstance(added_text, str) else now
    expires_value = value.get("expires")
    expires: float | None = None
    if expires_value not in (None, ""):
        if isinstance(expires_value, str) and _AGE.fullmatch(expires_value):
            expires = added + parse_age(expires_value, "expires")
        else:
            expires = parse_time(expires_value, "expires")
    return Exemption(
        project,
        version,
        _reason(value.get("reason"), f"exemption {project}"),
        str(stored_author)[:64] if isinstance(stored_author, str) and stored_author else author,
        added,
        expires,
    )


# --- rules and blocks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeRule:
    """One index's cooldown and cut-off (None/0: none), with its exemptions."""

    index: str
    min_age: int = 0
    cutoff: float | None = None
    exemptions: tuple[Exemption, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.min_age and self.cutoff is None


def rule_of(index: str, config: Mapping[str, object]) -> TimeRule:
    """The rule an index's (validated) configuration states."""
    min_age = config.get("min_release_age") or 0
    cutoff = config.get("release_cutoff")
    raw = config.get("release_age_exempt") or []
    exemptions: list[Exemption] = []
    if isinstance(raw, list):
        for item in raw:
            try:
                exemptions.append(exemption_from(item, "", 0.0))
            except PolicyError:
                continue  # validated when stored; a damaged entry exempts nothing
    return TimeRule(
        index,
        min_age if isinstance(min_age, int) else 0,
        parse_time(cutoff) if isinstance(cutoff, str) else None,
        tuple(exemptions),
    )


@dataclass(frozen=True, slots=True)
class Block:
    """What may not be installed: every given part must match (at least one is given)."""

    id: int
    reason: str
    project: str | None = None
    specifier: SpecifierSet | None = None
    filename: str | None = None
    sha256: str | None = None

    def matches(self, project: str, version: str | None, filename: str, sha256: str | None) -> bool:
        if self.project is not None and self.project != project:
            return False
        if self.filename is not None and self.filename != filename:
            return False
        if self.sha256 is not None and self.sha256 != (sha256 or "").lower():
            return False
        if self.specifier is not None:
            if version is None:
                return True  # a file whose version is unknown cannot show it is outside
            try:
                return Version(version) in self.specifier
            except InvalidVersion:
                return True
        return True


class BlockSet:
    """Blocks found by what they name: a file is checked against the blocks naming its
    project, its file name or its sha256, not against every block (an OSV import makes
    thousands, and a page lists thousands of files). Each block is filed under one part it
    requires (the project if it names one), which is enough: a file must match every part."""

    __slots__ = ("_by_filename", "_by_project", "_by_sha256", "size")

    def __init__(self, blocks: Iterable[Block] = ()) -> None:
        self._by_project: dict[str, list[Block]] = {}
        self._by_filename: dict[str, list[Block]] = {}
        self._by_sha256: dict[str, list[Block]] = {}
        self.size = 0
        for block in blocks:
            if block.project is not None:
                self._by_project.setdefault(block.project, []).append(block)
            elif block.filename is not None:
                self._by_filename.setdefault(block.filename, []).append(block)
            elif block.sha256 is not None:
                self._by_sha256.setdefault(block.sha256, []).append(block)
            else:
                continue  # names nothing: matches nothing (parse_block refuses such blocks)
            self.size += 1

    def __bool__(self) -> bool:
        return self.size > 0

    def candidates(self, project: str, filename: str, sha256: str | None) -> list[Block]:
        """The blocks that may match this file (each still checked with ``matches``)."""
        found = [*self._by_project.get(project, ()), *self._by_filename.get(filename, ())]
        if sha256:
            found.extend(self._by_sha256.get(sha256.lower(), ()))
        return found


def parse_specifier(value: object) -> SpecifierSet | None:
    """A block's version range: a PEP 440 specifier set (``==1.0``, ``>=1.2,<1.4``), or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise PolicyError(f"a block's specifier must be a PEP 440 specifier, not {_short(value)}")
    try:
        return SpecifierSet(value, prereleases=True)
    except InvalidSpecifier:
        raise PolicyError(f"{_short(value)} is not a PEP 440 specifier (e.g. '==1.0')") from None


# --- verdicts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """Why a file is not offered, and when it will be (None: not by waiting)."""

    reason: str
    until: float | None = None
    blocked: bool = False

    def message(self, filename: str) -> str:
        if self.until is not None:
            available = format_time(self.until)
            return f"{filename} is held back: {self.reason}; available from {available}"
        return f"{filename} is not available: {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A file's verdict: held (with why) or not, and the moment it may change next (None:
    not by the clock alone)."""

    held: Held | None
    recheck_at: float | None = None


def judge(
    project: str,
    version: str | None,
    filename: str,
    sha256: str | None,
    upload_time: float | None,
    rules: Sequence[TimeRule],
    blocks: Iterable[Block],
    now: float,
) -> Verdict:
    """Whether a file may be offered ``now`` under ``rules`` (those of every index that offers
    it through this one) and ``blocks`` (those that apply here)."""
    for block in blocks:
        if block.matches(project, version, filename, sha256):
            reason = f"blocked: {block.reason}" if block.reason else "blocked"
            return Verdict(Held(reason, None, True))
    recheck: float | None = None
    held: Held | None = None
    for rule in rules:
        if rule.cutoff is not None:
            if upload_time is None:
                return Verdict(Held(_unknown(rule, "a release cut-off")), None)
            if upload_time > rule.cutoff:
                reason = f"uploaded after {rule.index}'s release cut-off {format_time(rule.cutoff)}"
                return Verdict(Held(reason), None)
        if not rule.min_age:
            continue
        exempt_until: float | None = None
        exempt = False
        for exemption in rule.exemptions:
            if exemption.covers(project, version, now):
                exempt = True
                if exemption.expires is None:
                    exempt_until = None
                    break
                exempt_until = max(exempt_until or 0.0, exemption.expires)
            elif exemption.project == project and exemption.added > now:
                recheck = _earliest(recheck, exemption.added)
        if upload_time is None:
            if exempt:
                recheck = _earliest(recheck, exempt_until)
                continue
            return Verdict(Held(_unknown(rule, "a minimum release age")), recheck)
        mature = upload_time + rule.min_age
        if mature <= now:
            continue
        if exempt:
            recheck = _earliest(recheck, exempt_until)
            continue
        age = f"younger than {rule.index}'s minimum release age of {format_age(rule.min_age)}"
        if held is None or held.until is None or mature > held.until:
            held = Held(age, mature)
    if held is not None:
        return Verdict(held, held.until)
    return Verdict(None, recheck)


def _unknown(rule: TimeRule, what: str) -> str:
    return (
        f"its upload time is unknown, and {rule.index} has {what} (files whose age cannot be "
        "established are held)"
    )


def _earliest(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    return candidate if current is None else min(current, candidate)
