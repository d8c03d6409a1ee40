"""Fuzzing index configuration: any JSON body gives a canonical config or a ConfigError (400)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cheeseboard.core.indexconfig import (
    MIRROR_KEYS,
    STAGE_KEYS,
    ConfigError,
    new_index_config,
    patch_index_config,
)
from tests.unit.fuzz.counting import counted
from tests.unit.fuzz.strategies import FUZZ, FUZZ_SLOW, hostile_text

BASES = {"root/pypi", "alice/base", "bob/dev"}
KNOWN_VALUES = [
    "True",
    "false",
    "yes",
    "0",
    "root/pypi",
    "alice/base, bob/dev",
    ":ANONYMOUS:",
    ":authenticated:",
    "alice",
    ":group",
    "*",
    "union",
    "intersection",
    "https://pypi.org/simple/",
    "http://[::1]:99999/",
    "ftp://x/",
    "3600",
    "1" * 5000,
    "stage",
    "mirror",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(KNOWN_VALUES),
    hostile_text,
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(sorted(STAGE_KEYS | MIRROR_KEYS | {"projects", "result"})) | st.text(
    max_size=12
)
bodies = st.dictionaries(keys, json_values, max_size=6)
patch_items = st.lists(
    st.builds(
        lambda key, op, value: f"{key}{op}{value}",
        keys,
        st.sampled_from(["=", "+=", "-=", "", "=="]),
        st.sampled_from(KNOWN_VALUES) | hostile_text,
    ),
    max_size=5,
)


def _exists(name: str) -> bool:
    return name in BASES


def _assert_canonical(config: Mapping[str, object], owner: str, fullname: str) -> None:
    """A stored config is plain JSON and validating it again changes nothing."""
    assert json.loads(json.dumps(config, allow_nan=False)) == config
    assert new_index_config(owner, config, _exists, fullname=fullname) == config


def _assert_clean(exc: ConfigError) -> None:
    assert str(exc)
    assert len(str(exc)) < 2500  # values are quoted cut short, never echoed back whole


@FUZZ
@given(bodies)
@counted("indexconfig: PUT bodies (arbitrary JSON)")
def test_new_config_is_canonical_or_config_error(body: dict[str, object]) -> None:
    """PUT /alice/dev with any JSON object: a canonical config or a ConfigError."""
    try:
        config = new_index_config("alice", body, _exists, fullname="alice/dev")
    except ConfigError as exc:
        _assert_clean(exc)
        return
    assert config["type"] in ("stage", "mirror")
    _assert_canonical(config, "alice", "alice/dev")


@FUZZ_SLOW
@given(st.sampled_from(["stage", "mirror"]), st.one_of(bodies, patch_items, json_values))
@counted("indexconfig: PATCH bodies (arbitrary JSON)")
def test_patch_is_canonical_or_config_error(kind: str, patch: object) -> None:
    """PATCH with any JSON (object, list of items, or anything else): same rule, and the type of
    an index never changes."""
    start = (
        {"mirror_url": "https://pypi.org/simple/"} if kind == "mirror" else {"bases": "root/pypi"}
    )
    current = new_index_config("alice", {"type": kind, **start}, _exists, fullname="alice/dev")
    try:
        config = patch_index_config(current, patch, "alice", "alice/dev", _exists)  # type: ignore[arg-type]
    except ConfigError as exc:
        _assert_clean(exc)
        return
    assert config["type"] == kind
    _assert_canonical(config, "alice", "alice/dev")


def test_huge_expiry_is_a_config_error() -> None:
    """A 5000-digit expiry is refused as a setting, not a ValueError from int() (a 500)."""
    body = {"type": "mirror", "mirror_url": "https://x/", "mirror_cache_expiry": "1" * 5000}
    try:
        new_index_config("alice", body, _exists, fullname="alice/dev")
    except ConfigError as exc:
        assert "mirror_cache_expiry" in str(exc)
        assert len(str(exc)) < 300
    else:
        raise AssertionError("a 5000-digit expiry was accepted")


@pytest.mark.parametrize("value", [math.nan, [1, {"x": math.inf}], -math.inf])
def test_custom_data_must_be_json(value: object) -> None:
    """NaN and infinities are no JSON: stored, they made every answer with the config a 500."""
    with pytest.raises(ConfigError, match="custom_data"):
        new_index_config("alice", {"custom_data": value}, _exists, fullname="alice/dev")
