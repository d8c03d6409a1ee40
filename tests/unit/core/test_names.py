"""Project, user and index names: PEP 503 normalization and validation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheeseboard.core.names import (
    InvalidName,
    checked_project_name,
    checked_segment_name,
    is_valid_project_name,
    normalize_project_name,
)

PROPERTY = settings(database=None, max_examples=300, deadline=None)
NAME_CHARS = st.sampled_from("abcXYZ019-_.")


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("friendly-bard", "friendly-bard"),
        ("Friendly-Bard", "friendly-bard"),
        ("FRIENDLY-BARD", "friendly-bard"),
        ("friendly.bard", "friendly-bard"),
        ("friendly_bard", "friendly-bard"),
        ("friendly--bard", "friendly-bard"),
        ("FrIeNdLy-._.-bArD", "friendly-bard"),
        ("zope.interface", "zope-interface"),
        ("a", "a"),
    ],
)
def test_normalize_pep503_examples(name: str, normalized: str) -> None:
    """The PEP 503 examples (and a few more) normalize to one lower-case, dash-joined key."""
    assert normalize_project_name(name) == normalized


@PROPERTY
@given(st.text(NAME_CHARS, min_size=1, max_size=30))
def test_normalize_is_idempotent_and_canonical(name: str) -> None:
    """Normalizing twice changes nothing; the result has no '_', '.', upper case or '--'."""
    once = normalize_project_name(name)
    assert normalize_project_name(once) == once
    assert not re.search(r"[_.A-Z]|--", once)


@PROPERTY
@given(st.text(NAME_CHARS, min_size=1, max_size=30), st.data())
def test_normalize_ignores_case_and_separator_spelling(name: str, data: st.DataObject) -> None:
    """Swapping case or one separator for another never changes the normalized key."""
    respelled = "".join(
        data.draw(st.sampled_from("-_.")) if c in "-_." else c.swapcase() for c in name
    )
    assert normalize_project_name(respelled) == normalize_project_name(name)


@pytest.mark.parametrize("name", ["a", "A1", "requests", "zope.interface", "my_pkg-2", "x.y_z"])
def test_valid_project_names(name: str) -> None:
    """PEP 508 names: ASCII letters/digits with '-', '_', '.' only inside."""
    assert is_valid_project_name(name)
    assert checked_project_name(name) == normalize_project_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-lead",
        "trail-",
        ".dot",
        "_under",
        "sp ace",
        "a/b",
        "a+b",
        "naïve",
        "\u212aelvin",  # KELVIN SIGN: case-insensitive [A-Z] would accept it
        "\u017fong",  # LATIN SMALL LETTER LONG S, likewise
        "name\n",  # "$" matches before a trailing newline
        "a\x00",
    ],
)
def test_invalid_project_names(name: str) -> None:
    """Empty, edge punctuation, whitespace, non-ASCII and trailing newlines are rejected."""
    assert not is_valid_project_name(name)
    with pytest.raises(InvalidName, match="not a valid project name"):
        checked_project_name(name)


@pytest.mark.parametrize("name", ["root", "pypi", "a", "user.name", "me@example.com", "x_y-z", "9"])
def test_valid_segment_names(name: str) -> None:
    """User and index names: letters, digits, '-', '.', '@', '_', returned unchanged."""
    assert checked_segment_name("user", name) == name


def test_segment_name_length_limit() -> None:
    """At most 64 characters."""
    assert checked_segment_name("index", "a" * 64) == "a" * 64
    with pytest.raises(InvalidName, match="at most 64"):
        checked_segment_name("index", "a" * 65)


@pytest.mark.parametrize(
    "name",
    ["", "+simple", "a+b", "a/b", "a b", "tab\t", "nl\n", "-x", ".x", "_x", "@x", "a\\b", "ü"],
)
def test_invalid_segment_names(name: str) -> None:
    """No '+' (routes), '/', whitespace, backslash, non-ASCII, or leading punctuation."""
    with pytest.raises(InvalidName) as info:
        checked_segment_name("index", name)
    assert str(info.value).startswith(f"index name {name!r}")


def test_invalid_name_is_a_value_error() -> None:
    """Callers that catch ValueError also catch InvalidName."""
    assert issubclass(InvalidName, ValueError)
