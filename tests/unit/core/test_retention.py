"""core/retention.py: which releases the cleanup policies remove, which files the cap evicts."""

from __future__ import annotations

import pytest

from cheeseboard.core.retention import (
    DAY,
    Release,
    RetentionConfigError,
    Sized,
    doomed_releases,
    evicted,
    retention_config,
)

NOW = 1_800_000_000.0


def names(config: dict[str, object], *releases: Release) -> list[str]:
    return [
        f"{d.release.project}=={d.release.version}" for d in doomed_releases(releases, config, NOW)
    ]


def test_keep_dev_releases_keeps_the_highest_pre_releases_per_project() -> None:
    """Version order, not upload order, decides; finals and other projects are untouched."""
    found = [
        Release("a", "1.1.dev2", NOW),
        Release("a", "1.1.dev10", NOW - 5),  # higher than dev2 though uploaded earlier
        Release("a", "1.0", NOW),
        Release("a", "1.1rc1", NOW),
        Release("b", "0.1a1", NOW),
        Release("a", "not a version", NOW),
    ]
    assert names({"keep_dev_releases": 2}, *found) == ["a==1.1.dev2"]
    assert names({"keep_dev_releases": 0}, *found) == [
        "a==1.1.dev2",
        "a==1.1.dev10",
        "a==1.1rc1",
        "b==0.1a1",
    ]


def test_max_release_age_removes_only_older_releases() -> None:
    """Releases older than D days go, whatever their kind; younger ones stay."""
    old = Release("a", "1.0", NOW - 31 * DAY)
    young = Release("a", "2.0", NOW - 29 * DAY)
    assert names({"max_release_age": 30}, old, young) == ["a==1.0"]


def test_non_volatile_index_loses_nothing() -> None:
    """Even a stored policy removes nothing once the index is non-volatile."""
    old = Release("a", "1.0.dev1", NOW - 400 * DAY)
    assert names({"volatile": False, "max_release_age": 1, "keep_dev_releases": 0}, old) == []


def test_evicted_takes_least_recently_used_until_under_cap() -> None:
    files = [Sized(1, 100, 30.0), Sized(2, 100, 10.0), Sized(3, 100, 20.0)]
    assert [f.key for f in evicted(files, 150)] == [2, 3]
    assert [f.key for f in evicted(files, 300)] == []
    assert [f.key for f in evicted(files, 0)] == [2, 3, 1]


@pytest.mark.parametrize(
    ("values", "volatile", "message"),
    [
        ({"keep_dev_releases": "-1"}, True, "whole number"),
        ({"keep_dev_releases": True}, True, "whole number"),
        ({"keep_dev_releases": "9" * 40}, True, "whole number"),
        ({"max_release_age": "0"}, True, "between 1 and"),
        ({"max_release_age": "3"}, False, "non-volatile"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(
    values: dict[str, object], volatile: bool, message: str
) -> None:
    with pytest.raises(RetentionConfigError, match=message):
        retention_config(values, volatile)
