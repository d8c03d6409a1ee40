"""``acl_read`` as an index setting (issue 20): defaults, validation, PATCH forms, bounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from cheeseboard.core.acl import acl_read_of
from cheeseboard.core.indexconfig import (
    MAX_LIST_ENTRIES,
    MIRROR_KEYS,
    STAGE_KEYS,
    ConfigError,
    config_is_noop,
    new_index_config,
    patch_index_config,
    shown_config,
)

EXISTING = {"root/pypi"}
MIRROR_URL = "https://pypi.org/simple/"


def exists(name: str) -> bool:
    return name in EXISTING


def stage(raw: Mapping[str, object] | None = None) -> dict[str, object]:
    """Create alice/dev from a PUT body."""
    return new_index_config("alice", raw or {}, exists, fullname="alice/dev")


def mirror(**raw: object) -> dict[str, object]:
    """Create root/mirror from a PUT body with type mirror."""
    body: dict[str, object] = {"type": "mirror", "mirror_url": MIRROR_URL, **raw}
    return new_index_config("root", body, exists, fullname="root/mirror")


def patch(
    current: Mapping[str, object], body: Mapping[str, object] | Sequence[str]
) -> dict[str, object]:
    """PATCH alice/dev (a mirror's PATCH goes through the same function)."""
    return patch_index_config(current, body, "alice", "alice/dev", exists)


def refused(current: Mapping[str, object], body: Mapping[str, object] | Sequence[str]) -> str:
    with pytest.raises(ConfigError) as info:
        patch(current, body)
    return str(info.value)


# --- defaults -------------------------------------------------------------------------------


def test_new_stage_and_mirror_are_readable_by_everyone() -> None:
    """Both index types get acl_read, defaulting to :ANONYMOUS: (devpi's behaviour)."""
    assert stage()["acl_read"] == [":ANONYMOUS:"]
    assert mirror()["acl_read"] == [":ANONYMOUS:"]
    assert "acl_read" in STAGE_KEYS and "acl_read" in MIRROR_KEYS


def test_mirror_keeps_acl_read_while_stage_settings_are_dropped() -> None:
    """A mirror drops stage settings silently, but not acl_read."""
    config = mirror(acl_read="root,:AUTHENTICATED:", acl_upload="alice", bases="root/pypi")
    assert config["acl_read"] == ["root", ":AUTHENTICATED:"]
    assert "acl_upload" not in config and "bases" not in config


def test_put_accepts_a_list_or_a_comma_separated_string() -> None:
    """devpi-client's `index -c dev acl_read=alice,bob` sends one comma-separated string."""
    assert stage({"acl_read": "alice, bob,,alice"})["acl_read"] == ["alice", "bob"]
    assert stage({"acl_read": ["alice", ":devs"]})["acl_read"] == ["alice", ":devs"]


def test_special_principals_are_upper_cased() -> None:
    assert stage({"acl_read": ":anonymous:,:Authenticated:"})["acl_read"] == [
        ":ANONYMOUS:",
        ":AUTHENTICATED:",
    ]


def test_old_config_without_acl_read_shows_and_means_the_default() -> None:
    """Indexes stored before acl_read existed show the default; core/acl.py reads it so."""
    old = {"type": "stage", "volatile": True, "bases": [], "acl_upload": ["alice"]}
    assert shown_config(old)["acl_read"] == [":ANONYMOUS:"]
    assert "acl_read" not in old  # the stored dict is not changed
    assert acl_read_of(old) == (":ANONYMOUS:",)
    assert shown_config({"acl_read": []})["acl_read"] == []


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["a b", "../x", ":", "alice/dev", ":bad group"])
def test_invalid_entries_are_refused(entry: str) -> None:
    with pytest.raises(ConfigError, match="'acl_read' setting has an invalid entry"):
        stage({"acl_read": [entry]})


@pytest.mark.parametrize("value", [5, {"a": 1}, [1, 2], None])
def test_values_that_are_not_lists_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="'acl_read' setting must be a list"):
        stage({"acl_read": value})


def test_bounded_like_other_lists() -> None:
    names = [f"user{n}" for n in range(MAX_LIST_ENTRIES)]
    assert stage({"acl_read": names})["acl_read"] == names
    with pytest.raises(ConfigError, match=f"at most {MAX_LIST_ENTRIES} entries"):
        stage({"acl_read": [*names, "one-more"]})
    current = stage({"acl_read": names})
    with pytest.raises(ConfigError, match=f"at most {MAX_LIST_ENTRIES} entries"):
        patch(current, ["acl_read+=one-more"])


# --- PATCH ----------------------------------------------------------------------------------


def test_patch_list_forms() -> None:
    """devpi's `index alice/dev acl_read=…`, `acl_read+=…`, `acl_read-=…` items."""
    current = stage()
    replaced = patch(current, ["acl_read=alice,bob"])
    assert replaced["acl_read"] == ["alice", "bob"]
    added = patch(replaced, ["acl_read+=:AUTHENTICATED:"])
    assert added["acl_read"] == ["alice", "bob", ":AUTHENTICATED:"]
    removed = patch(added, ["acl_read-=bob", "acl_read-=alice"])
    assert removed["acl_read"] == [":AUTHENTICATED:"]


def test_removing_an_absent_entry_is_refused() -> None:
    message = refused(stage(), ["acl_read-=bob"])
    assert message == "The 'acl_read' setting doesn't have value 'bob'"


def test_removing_the_last_entry_leaves_a_private_index() -> None:
    """An empty acl_read is allowed: owner and root only."""
    private = patch(stage(), ["acl_read-=:ANONYMOUS:"])
    assert private["acl_read"] == []
    assert patch(stage(), ["acl_read="])["acl_read"] == []
    assert patch(stage(), {"acl_read": []})["acl_read"] == []


def test_the_key_itself_cant_be_removed() -> None:
    """`acl_read-=` and a null in a JSON body are refused: the setting always holds a value."""
    assert refused(stage(), ["acl_read-="]) == "Default values can't be removed."
    assert "must be a list" in refused(stage(), {"acl_read": None})


def test_patch_with_a_json_body() -> None:
    changed = patch(stage(), {"acl_read": ["alice", ":ci"]})
    assert changed["acl_read"] == ["alice", ":ci"]
    envelope = {"type": "indexconfig", "result": {**changed, "acl_read": "bob"}}
    assert patch(changed, envelope)["acl_read"] == ["bob"]


def test_patch_of_an_old_config_starts_from_the_default() -> None:
    """`acl_read+=` on an index stored without the key adds to the default it meant."""
    old = dict(stage())
    del old["acl_read"]
    assert patch(old, ["acl_read+=alice"])["acl_read"] == [":ANONYMOUS:", "alice"]
    # Storing the default it meant is no change (?error_on_noop still refuses such a PATCH).
    assert config_is_noop(old, patch(old, {}))
    assert not config_is_noop(old, patch(old, ["acl_read=alice"]))


def test_mirror_patch_keeps_acl_read() -> None:
    current = mirror()
    changed = patch_index_config(current, ["acl_read=:AUTHENTICATED:"], "root", "root/m", exists)
    assert changed["acl_read"] == [":AUTHENTICATED:"]
    again = patch_index_config(changed, {"title": "M"}, "root", "root/m", exists)
    assert again["acl_read"] == [":AUTHENTICATED:"]
