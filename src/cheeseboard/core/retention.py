"""Retention decisions (issue 23), pure: which stage releases an index's cleanup policy
removes, and which cached mirror files a size cap evicts, each with the reason.

Two index settings (stage indexes, volatile only):

- ``keep_dev_releases=N``: of each project's dev and pre-releases, keep the N highest by version
  order (PEP 440); the older ones go. Final releases are never touched by it.
- ``max_release_age=D``: releases uploaded more than D days ago go.

A version that is not PEP 440 is never removed by either: its order is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

KEEP_DEV_KEY = "keep_dev_releases"
MAX_AGE_KEY = "max_release_age"
RETENTION_KEYS = frozenset({KEEP_DEV_KEY, MAX_AGE_KEY})
MAX_KEEP = 100_000  # releases kept per project: far beyond any real need
MAX_AGE_DAYS = 100 * 365
DAY = 86400.0  # seconds
_DIGITS = re.compile(r"[0-9]{1,9}")


class RetentionConfigError(ValueError):
    """Raised for a bad retention setting; the message is shown to the client."""


def parse_count(key: str, value: object, minimum: int, maximum: int) -> int:
    """A whole number from a config value (``3`` or ``"3"``) within bounds, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RetentionConfigError(f"The '{key}' setting must be a whole number, not {value!r:.60}")
    text = str(value).strip()
    if not _DIGITS.fullmatch(text):
        raise RetentionConfigError(f"The '{key}' setting must be a whole number, not {text!r:.60}")
    number = int(text)
    if not minimum <= number <= maximum:
        raise RetentionConfigError(
            f"The '{key}' setting must be between {minimum} and {maximum}, not {number}"
        )
    return number


def retention_config(values: Mapping[str, object], volatile: bool) -> dict[str, int]:
    """The retention keys of ``values`` in stored form; refused on a non-volatile index, whose
    releases are never removed but by hand (with force)."""
    config: dict[str, int] = {}
    for key, minimum, maximum in ((KEEP_DEV_KEY, 0, MAX_KEEP), (MAX_AGE_KEY, 1, MAX_AGE_DAYS)):
        value = values.get(key)
        if value is None or value == "":
            continue
        config[key] = parse_count(key, value, minimum, maximum)
        if not volatile:
            raise RetentionConfigError(
                f"The '{key}' setting removes releases, which a non-volatile index never does: "
                "set volatile=True first, or leave it unset"
            )
    return config


@dataclass(frozen=True, slots=True)
class Release:
    """A stage release as retention sees it."""

    project: str
    version: str
    created: float  # upload time, seconds since the epoch
    size: int = 0  # bytes of its files, for reports


@dataclass(frozen=True, slots=True)
class Doomed:
    """A release a policy removes, and why."""

    release: Release
    reason: str


def doomed_releases(
    releases: Iterable[Release], config: Mapping[str, object], now: float
) -> list[Doomed]:
    """The releases ``config``'s policies remove at ``now``; none on a non-volatile index."""
    if not config.get("volatile", True):
        return []
    keep = config.get(KEEP_DEV_KEY)
    max_age = config.get(MAX_AGE_KEY)
    by_project: dict[str, list[tuple[Version, Release]]] = {}
    for release in releases:
        try:
            version = Version(release.version)
        except InvalidVersion:
            continue
        by_project.setdefault(release.project, []).append((version, release))
    doomed: dict[tuple[str, str], Doomed] = {}
    for entries in by_project.values():
        if isinstance(max_age, int):
            cutoff = now - max_age * DAY
            for _, release in entries:
                if release.created < cutoff:
                    days = (now - release.created) / DAY
                    reason = f"{MAX_AGE_KEY}={max_age}: uploaded {days:.0f} days ago"
                    doomed[(release.project, release.version)] = Doomed(release, reason)
        if isinstance(keep, int):
            pre = sorted((e for e in entries if e[0].is_prerelease), key=lambda e: e[0])
            for _, release in pre[: max(0, len(pre) - keep)]:
                reason = f"{KEEP_DEV_KEY}={keep}: {len(pre)} dev/pre-releases, only the newest kept"
                doomed.setdefault((release.project, release.version), Doomed(release, reason))
    return sorted(doomed.values(), key=lambda d: (d.release.project, Version(d.release.version)))


@dataclass(frozen=True, slots=True)
class Sized:
    """A cached file as eviction sees it: its size and when it was last used."""

    key: int
    size: int
    last_used: float


def evicted(files: Sequence[Sized], cap: int) -> list[Sized]:
    """The least recently used files to drop so that the rest fit in ``cap`` bytes."""
    total = sum(f.size for f in files)
    doomed: list[Sized] = []
    for item in sorted(files, key=lambda f: (f.last_used, f.key)):
        if total <= cap:
            break
        doomed.append(item)
        total -= item.size
    return doomed
