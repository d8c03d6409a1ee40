"""Fuzzing project, user and index names: only InvalidName, and nothing path-like gets through."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from cheeseboard.core.names import (
    InvalidName,
    checked_project_name,
    checked_segment_name,
    is_valid_project_name,
    normalize_project_name,
)
from tests.unit.fuzz.counting import counted
from tests.unit.fuzz.strategies import FUZZ, any_text, project_names

_ALNUM = frozenset(string.ascii_letters + string.digits)


def _is_pep508_name(name: str) -> bool:
    """An independent spelling of PEP 508's rule, character by character."""
    if not name or name[0] not in _ALNUM or name[-1] not in _ALNUM:
        return False
    return all(char in _ALNUM or char in "._-" for char in name)


@FUZZ
@given(any_text)
@counted("names: normalize (arbitrary text)")
def test_normalize_never_raises_and_is_idempotent(name: str) -> None:
    """Any text normalizes without error, like packaging's canonicalize_name, and only once."""
    once = normalize_project_name(name)
    assert normalize_project_name(once) == once
    assert once == canonicalize_name(name)


@FUZZ
@given(project_names, st.data())
@counted("names: PEP 503 equivalence")
def test_pep503_spellings_are_one_project(name: str, data: st.DataObject) -> None:
    """Every respelling (case, '-', '_', '.', runs of them) of a valid name is the same project."""
    respelled = "".join(
        data.draw(st.sampled_from(["-", "_", ".", "-_", "._."]))
        if char in "-_."
        else data.draw(st.sampled_from([char.lower(), char.upper()]))
        for char in name
    )
    assert is_valid_project_name(name)
    assert normalize_project_name(respelled) == normalize_project_name(name)
    assert checked_project_name(name) == normalize_project_name(name)


@FUZZ
@given(any_text)
@counted("names: checked_project_name (arbitrary text)")
def test_checked_project_name_raises_only_invalid_name(name: str) -> None:
    """Valid names come back normalized; everything else is InvalidName with a short message."""
    try:
        normalized = checked_project_name(name)
    except InvalidName as exc:
        assert not _is_pep508_name(name)
        assert len(str(exc)) < 300  # a huge name is not echoed back whole
        return
    assert _is_pep508_name(name)
    assert normalized == canonicalize_name(name)
    assert _is_pep508_name(normalized)


@FUZZ
@given(st.sampled_from(["user", "index", "group"]), any_text)
@counted("names: user/index segments (arbitrary text)")
def test_segment_names_are_never_path_like(kind: str, name: str) -> None:
    """Accepted user and index names can't traverse: no '/', '\\', NUL, control characters,
    no '.' or '..' alone, no leading '+' or '.', ASCII only, at most 64 characters."""
    try:
        accepted = checked_segment_name(kind, name)
    except InvalidName as exc:
        assert kind in str(exc)
        assert len(str(exc)) < 400
        return
    assert accepted == name
    assert name not in (".", "..")
    assert not any(char in name for char in "/\\\0%+")
    assert name.isascii() and name.isprintable() and not any(c.isspace() for c in name)
    assert name[0].isalnum()
    assert 1 <= len(name) <= 64


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "a\0b", "+simple", "-", "a b", "é"])
def test_path_like_segments_are_refused(name: str) -> None:
    """The traversal spellings the properties above must catch are in fact refused."""
    with pytest.raises(InvalidName):
        checked_segment_name("user", name)
    with pytest.raises(InvalidName):
        checked_project_name(name)
