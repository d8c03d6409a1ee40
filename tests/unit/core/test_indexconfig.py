"""Index configuration: validation, defaults and devpi's PATCH semantics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from cheeseboard.core.indexconfig import (
    MAX_BASES,
    MAX_LIST_ENTRIES,
    MIRROR_KEYS,
    POLICY_KEYS,
    STAGE_KEYS,
    ConfigError,
    EntrySet,
    config_is_noop,
    new_index_config,
    patch_index_config,
)
from cheeseboard.core.retention import RETENTION_KEYS
from cheeseboard.services.indexes import mirror_config
from cheeseboard.store.records import IndexRecord

EXISTING = {"root/pypi", "local/stable", "alice/base"}
MIRROR_URL = "https://pypi.org/simple/"


def exists(name: str) -> bool:
    """Base lookup for tests: only the EXISTING indexes are there."""
    return name in EXISTING


def stage(raw: Mapping[str, object] | None = None, owner: str = "alice") -> dict[str, object]:
    """Create alice/dev (or ``owner``/dev) from a PUT body."""
    return new_index_config(owner, raw or {}, exists, fullname=f"{owner}/dev")


def mirror(**raw: object) -> dict[str, object]:
    """Create root/mirror from a PUT body with type mirror and the PyPI URL."""
    body: dict[str, object] = {"type": "mirror", "mirror_url": MIRROR_URL, **raw}
    return new_index_config("root", body, exists, fullname="root/mirror")


def patch(
    current: Mapping[str, object], body: Mapping[str, object] | Sequence[str]
) -> dict[str, object]:
    """PATCH alice/dev."""
    return patch_index_config(current, body, "alice", "alice/dev", exists)


def error(raw: Mapping[str, object]) -> str:
    """The message of the ConfigError a PUT of ``raw`` to alice/dev raises."""
    with pytest.raises(ConfigError) as info:
        stage(raw)
    return str(info.value)


# --- PUT: stage ---------------------------------------------------------------------------


def test_devpi_client_put_body_gives_observed_stage() -> None:
    """devpi-client's `index -c dev bases=root/pypi volatile=True` body gives devpi's dict."""
    assert stage({"bases": "root/pypi", "volatile": "True"}) == {
        "bases": ["root/pypi"],
        "mirror_whitelist": [],
        "acl_toxresult_upload": [":ANONYMOUS:"],
        "volatile": True,
        "mirror_whitelist_inheritance": "intersection",
        "acl_upload": ["alice"],
        "type": "stage",
        "allow_upstream_names": False,
        "acl_read": [":ANONYMOUS:"],
    }


def test_empty_body_gives_stage_defaults() -> None:
    """An empty PUT makes a volatile stage without bases that only its owner uploads to."""
    config = stage({}, owner="bob")
    assert config["type"] == "stage"
    assert config["bases"] == []
    assert config["volatile"] is True
    assert config["acl_upload"] == ["bob"]
    optional = {"title", "description", "custom_data"} | POLICY_KEYS | RETENTION_KEYS
    assert set(config) == STAGE_KEYS - optional


def test_unknown_type_is_rejected() -> None:
    """Only stage and mirror exist."""
    assert "unknown index type 'plugin'" in error({"type": "plugin"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("False", False),
        ("false", False),
        ("no", False),
        ("0", False),
        (False, False),
        (0, False),
        ("True", True),
        ("YES", True),
        (" 1 ", True),
        (True, True),
        (1, True),
    ],
)
def test_volatile_accepts_bools_and_words(value: object, expected: bool) -> None:
    """volatile takes a bool or true/false/yes/no/1/0 in any case."""
    assert stage({"volatile": value})["volatile"] is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, None, [True]])
def test_volatile_rejects_other_values(value: object) -> None:
    """Anything else is an error that names the key and the value."""
    message = error({"volatile": value})
    assert "'volatile'" in message
    assert repr(value) in message


def test_allow_upstream_names_is_a_boolean() -> None:
    """Our own stage flag takes the same boolean words."""
    assert stage({"allow_upstream_names": "yes"})["allow_upstream_names"] is True
    assert "'allow_upstream_names'" in error({"allow_upstream_names": "perhaps"})


@pytest.mark.parametrize(
    "bases",
    [
        "root/pypi,local/stable",
        " root/pypi , local/stable ,",
        ["root/pypi", "local/stable"],
        "root/pypi,local/stable,root/pypi",
    ],
)
def test_bases_from_list_or_csv_without_duplicates(bases: object) -> None:
    """bases is a list or a comma-separated string; repeats are dropped, first kept."""
    assert stage({"bases": bases})["bases"] == ["root/pypi", "local/stable"]


@pytest.mark.parametrize("bases", ["/root/pypi", ["/root/pypi", "root/pypi"], " /root/pypi"])
def test_base_with_leading_slash_is_normalized(bases: object) -> None:
    """devpi takes ``/root/pypi`` (devpi-client users write index paths) as ``root/pypi``."""
    assert stage({"bases": bases})["bases"] == ["root/pypi"]


def test_patch_base_with_leading_slash() -> None:
    """``bases+=/x/y`` and ``bases-=/x/y`` name the same base as ``x/y``."""
    added = patch(stage(), ["bases+=/root/pypi", "bases+=root/pypi"])
    assert added["bases"] == ["root/pypi"]
    assert patch(added, ["bases-=/root/pypi"])["bases"] == []


def test_missing_base_is_rejected() -> None:
    """Every base must exist, in devpi's words."""
    assert error({"bases": "root/pypi,nobody/here"}) == "base index 'nobody/here' does not exist"


def test_index_cannot_be_its_own_base() -> None:
    """An index listing itself would make every lookup go round in circles."""
    with pytest.raises(ConfigError, match="base of itself"):
        new_index_config("alice", {"bases": "alice/dev"}, lambda _: True, fullname="alice/dev")


@pytest.mark.parametrize(
    "base", ["rootpypi", "root/pypi/x", "root/+pypi", "/pypi", "//root/pypi", "root/pypi/", [1]]
)
def test_malformed_base_is_rejected(base: object) -> None:
    """A base must be one valid user/index name."""
    with pytest.raises(ConfigError):
        stage({"bases": base})


def test_acl_special_principals_are_upper_cased() -> None:
    """:anonymous: and :authenticated: are stored in devpi's upper-case spelling."""
    config = stage({"acl_upload": "alice,:authenticated:", "acl_toxresult_upload": [":Anonymous:"]})
    assert config["acl_upload"] == ["alice", ":AUTHENTICATED:"]
    assert config["acl_toxresult_upload"] == [":ANONYMOUS:"]


def test_acl_keeps_users_and_groups_once() -> None:
    """User names and :group names are kept in order, repeats dropped."""
    assert stage({"acl_upload": ["bob", ":devs", "bob", "carol"]})["acl_upload"] == [
        "bob",
        ":devs",
        "carol",
    ]


def test_acl_may_be_empty() -> None:
    """An empty acl_upload means nobody may upload, which is a valid setting."""
    assert stage({"acl_upload": ""})["acl_upload"] == []


@pytest.mark.parametrize("entry", ["bad name", ":bad group", ":", ":other:", "a/b"])
def test_acl_rejects_invalid_names(entry: str) -> None:
    """User and group names follow the user name rules."""
    assert "'acl_upload'" in error({"acl_upload": [entry]})


def test_whitelist_is_normalized() -> None:
    """Whitelist entries are PEP 503 names (or *), stored normalized and once."""
    config = stage({"mirror_whitelist": "Six,Foo_Bar,six,*"})
    assert config["mirror_whitelist"] == ["six", "foo-bar", "*"]


@pytest.mark.parametrize("entry", ["-bad", "no spaces", "x/y"])
def test_whitelist_rejects_invalid_project_names(entry: str) -> None:
    """A whitelist entry that can't be a project name is an error."""
    assert "'mirror_whitelist'" in error({"mirror_whitelist": [entry]})


@pytest.mark.parametrize(
    ("value", "stored"), [("union", "union"), ("Intersection", "intersection")]
)
def test_whitelist_inheritance_values(value: str, stored: str) -> None:
    """mirror_whitelist_inheritance is intersection or union."""
    assert stage({"mirror_whitelist_inheritance": value})["mirror_whitelist_inheritance"] == stored


def test_whitelist_inheritance_rejects_other_values() -> None:
    """Any other inheritance is an error naming the setting."""
    assert "'mirror_whitelist_inheritance'" in error({"mirror_whitelist_inheritance": "all"})


def test_unknown_key_is_rejected_like_devpi() -> None:
    """An unknown key gets devpi's message with key=value."""
    assert error({"bogus": 1}) == "indexconfig got unexpected keyword arguments: bogus=1"


def test_mirror_key_on_stage_is_unexpected() -> None:
    """A stage has no mirror_url."""
    assert "unexpected keyword arguments: mirror_url=" in error({"mirror_url": MIRROR_URL})


def test_projects_key_is_ignored() -> None:
    """Clients send back the project list they got from GET; it is not configuration."""
    assert stage({"projects": ["a", "b"]}) == stage({})


def test_optional_text_and_custom_data_are_kept() -> None:
    """title, description and custom_data are stored as given."""
    config = stage({"title": "Dev", "description": "d", "custom_data": {"k": [1]}})
    assert (config["title"], config["description"], config["custom_data"]) == (
        "Dev",
        "d",
        {"k": [1]},
    )


def test_optional_keys_set_to_null_are_absent() -> None:
    """A null optional value counts as not given."""
    assert "title" not in stage({"title": None, "custom_data": None})


def test_title_must_be_text() -> None:
    """The web UI shows the title as text."""
    assert "'title'" in error({"title": 5})


# --- PUT: mirror --------------------------------------------------------------------------


def test_mirror_defaults() -> None:
    """A mirror is volatile by default and keeps only mirror keys."""
    assert mirror() == {
        "type": "mirror",
        "volatile": True,
        "mirror_url": MIRROR_URL,
        "acl_read": [":ANONYMOUS:"],
    }


def test_mirror_needs_url() -> None:
    """A mirror without a URL has nothing to mirror."""
    with pytest.raises(ConfigError, match="mirror_url"):
        new_index_config("root", {"type": "mirror"}, exists, fullname="root/mirror")


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://pypi.org/simple", "https://pypi.org/simple"),
        ("http://127.0.0.1:8080/simple/", "http://127.0.0.1:8080/simple/"),
        ("https://user:secret@example.com/simple", "https://user:secret@example.com/simple"),
        (" https://pypi.org/simple ", "https://pypi.org/simple"),
    ],
)
def test_mirror_url_is_kept_as_given(url: str, stored: str) -> None:
    """http(s) URLs, credentials included, are stored and shown as given (devpi does so); the
    slash project URLs need is added where the URL is used."""
    assert mirror(mirror_url=url)["mirror_url"] == stored


def test_mirror_url_is_used_with_slash() -> None:
    """mirror_config appends the "/" a URL given without it lacks, and finds its JSON API."""
    record = IndexRecord(1, "root", "m", "mirror", mirror(mirror_url="https://pypi.org/simple"))
    config = mirror_config(record, 1800.0)
    assert config.simple_url == "https://pypi.org/simple/"
    assert config.json_api_url == "https://pypi.org/pypi/{name}/json"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://pypi.org/simple/",
        "pypi.org/simple/",
        "https:///simple/",
        "https://pypi.org/simple/?x=1",
        "https://pypi.org/simple/#top",
        "https://pypi.org:port/simple/",
        "https://pypi.org/sim ple/",
        "https://[::1/simple/",
        5,
    ],
)
def test_mirror_url_rejects_non_http_urls(url: object) -> None:
    """Anything but a plain http(s) URL with a host is an error."""
    with pytest.raises(ConfigError, match="mirror_url"):
        mirror(mirror_url=url)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(60, 60), ("1800", 1800), (" 5 ", 5), (30.0, 30), (0, 0), ("0", 0), (0.0, 0), ("00", 0)],
)
def test_mirror_cache_expiry_is_whole_seconds(value: object, seconds: int) -> None:
    """mirror_cache_expiry is a whole number of seconds, strings allowed; 0 is devpi's
    "revalidate every time"."""
    assert mirror(mirror_cache_expiry=value)["mirror_cache_expiry"] == seconds


@pytest.mark.parametrize("value", [-1, "-0", "abc", "1.5", 1.5, True, "²", -0.5])
def test_mirror_cache_expiry_rejects_other_values(value: object) -> None:
    """Negatives, fractions and words are errors."""
    with pytest.raises(ConfigError, match="mirror_cache_expiry"):
        mirror(mirror_cache_expiry=value)


def test_mirror_optional_keys_are_kept() -> None:
    """Web URL format and the boolean mirror flags are stored when given."""
    config = mirror(
        mirror_web_url_fmt="https://pypi.org/project/{name}/",
        mirror_use_external_urls="yes",
        mirror_no_project_list=False,
        mirror_ignore_serial_header="0",
        mirror_provides_core_metadata="True",
        volatile="false",
        title="PyPI",
    )
    assert config["mirror_web_url_fmt"] == "https://pypi.org/project/{name}/"
    assert config["mirror_use_external_urls"] is True
    assert config["mirror_no_project_list"] is False
    assert config["mirror_ignore_serial_header"] is False
    assert config["mirror_provides_core_metadata"] is True
    assert config["volatile"] is False
    assert set(config) <= MIRROR_KEYS


def test_mirror_flag_rejects_non_boolean() -> None:
    """A mirror flag that isn't a boolean word is an error naming it."""
    with pytest.raises(ConfigError, match="'mirror_no_project_list'"):
        mirror(mirror_no_project_list="sometimes")


def test_mirror_drops_stage_keys_silently() -> None:
    """As devpi, a mirror ignores bases, ACLs and whitelist settings instead of failing."""
    config = mirror(
        bases="nobody/here",
        acl_upload="bob",
        acl_toxresult_upload="bob",
        mirror_whitelist="six",
        mirror_whitelist_inheritance="bogus",
        allow_upstream_names="x",
    )
    assert config == mirror()


# --- PATCH --------------------------------------------------------------------------------


def test_patch_list_from_devpi_client() -> None:
    """devpi-client's `index dev mirror_whitelist+=six title=X` list is applied in order."""
    after = patch(stage({"bases": "root/pypi"}), ["mirror_whitelist+=six", "title=X"])
    assert after["mirror_whitelist"] == ["six"]
    assert after["title"] == "X"
    assert after["bases"] == ["root/pypi"]


def test_patch_set_volatile_false_string() -> None:
    """`volatile=False` arrives as a string and is stored as a bool."""
    assert patch(stage(), ["volatile=False"])["volatile"] is False


def test_patch_set_list_key_from_csv() -> None:
    """`k=v` replaces a list with the CSV entries; `k=` empties it."""
    after = patch(stage(), ["bases=root/pypi,local/stable"])
    assert after["bases"] == ["root/pypi", "local/stable"]
    assert patch(after, ["bases="])["bases"] == []


def test_patch_append_skips_duplicates() -> None:
    """`k+=v` adds entries not already there, compared in normalized form."""
    current = stage({"mirror_whitelist": "six"})
    after = patch(current, ["mirror_whitelist+=Six,foo_bar", "acl_upload+=:anonymous:"])
    assert after["mirror_whitelist"] == ["six", "foo-bar"]
    assert after["acl_upload"] == ["alice", ":ANONYMOUS:"]


def test_patch_remove_from_list() -> None:
    """`k-=v` removes the entry."""
    current = stage({"mirror_whitelist": "six,foo"})
    assert patch(current, ["mirror_whitelist-=SIX"])["mirror_whitelist"] == ["foo"]


def test_patch_remove_missing_value_is_an_error() -> None:
    """Removing an entry that isn't there gets devpi's message."""
    with pytest.raises(ConfigError) as info:
        patch(stage(), ["mirror_whitelist-=six"])
    assert str(info.value) == "The 'mirror_whitelist' setting doesn't have value 'six'"


def test_patch_reset_optional_key() -> None:
    """`title-=` removes an optional key; again is harmless."""
    current = stage({"title": "X"})
    after = patch(current, ["title-="])
    assert "title" not in after
    assert patch(after, ["title-="]) == after


@pytest.mark.parametrize("key", ["type", "volatile", "bases", "acl_upload"])
def test_patch_reset_required_key_is_an_error(key: str) -> None:
    """Keys that always have a value can't be removed."""
    with pytest.raises(ConfigError, match=r"Default values can't be removed\."):
        patch(stage(), [f"{key}-="])


@pytest.mark.parametrize("item", ["title+=x", "volatile-=True"])
def test_patch_list_ops_need_list_keys(item: str) -> None:
    """`+=` and `-=v` only make sense on list settings."""
    with pytest.raises(ConfigError, match="not a list"):
        patch(stage(), [item])


def test_patch_unknown_key_is_rejected() -> None:
    """`bogus=1` gets devpi's unexpected keyword message."""
    with pytest.raises(ConfigError, match="unexpected keyword arguments: bogus=1"):
        patch(stage(), ["bogus=1"])


@pytest.mark.parametrize("body", [["title"], [5], "title=X"])
def test_patch_rejects_malformed_bodies(body: object) -> None:
    """Items must be key=value strings and the body a dict or a list."""
    with pytest.raises(ConfigError):
        patch(stage(), body)  # type: ignore[arg-type]


def test_patch_ignores_projects_item() -> None:
    """A `projects=...` item is ignored like the key in a dict."""
    assert patch(stage(), ["projects=a,b"]) == stage()


def test_patch_value_may_contain_equals() -> None:
    """Only the first '=' separates key and value."""
    assert patch(stage(), ["title=a=b"])["title"] == "a=b"


@pytest.mark.parametrize("body", [["type=mirror"], {"type": "mirror"}])
def test_patch_type_is_immutable(body: Mapping[str, object] | Sequence[str]) -> None:
    """A stage can't become a mirror."""
    with pytest.raises(ConfigError, match="type"):
        patch(stage(), body)


def test_patch_same_type_is_allowed() -> None:
    """Sending the unchanged type back is fine."""
    assert patch(stage(), {"type": "stage", "title": "T"})["title"] == "T"


def test_patch_dict_is_a_partial_update() -> None:
    """A dict changes only the keys it has."""
    current = stage({"bases": "root/pypi", "title": "T"})
    after = patch(current, {"volatile": "no", "acl_upload": "bob,carol"})
    assert after == {**current, "volatile": False, "acl_upload": ["bob", "carol"]}


def test_patch_dict_accepts_get_envelope() -> None:
    """The whole GET response, projects included, can be sent back edited."""
    current = stage({"bases": "root/pypi"})
    envelope = {"type": "indexconfig", "result": {**current, "projects": ["x"], "title": "E"}}
    assert patch(current, envelope) == {**current, "title": "E"}


def test_patch_dict_null_drops_optional_key() -> None:
    """A dict can drop an optional key by setting it to null."""
    assert "title" not in patch(stage({"title": "T"}), {"title": None})


def test_patch_result_is_revalidated() -> None:
    """A dict patch goes through the same rules as a PUT."""
    with pytest.raises(ConfigError, match="'volatile'"):
        patch(stage(), {"volatile": "maybe"})
    with pytest.raises(ConfigError, match="unexpected keyword"):
        patch(stage(), {"bogus": 1})


def test_patch_new_base_must_exist() -> None:
    """Adding a base that doesn't exist fails."""
    with pytest.raises(ConfigError, match="base index 'nobody/here' does not exist"):
        patch(stage(), ["bases+=nobody/here"])


def test_patch_keeps_base_deleted_since() -> None:
    """A base deleted after it was set doesn't block unrelated edits."""
    current = {**stage(), "bases": ["gone/index"]}
    assert patch(current, ["title=T"])["bases"] == ["gone/index"]


def test_patch_cannot_add_itself_as_base() -> None:
    """The self-base rule holds for PATCH too."""
    with pytest.raises(ConfigError, match="base of itself"):
        patch_index_config(stage(), ["bases+=alice/dev"], "alice", "alice/dev", lambda _: True)


def test_patch_mirror() -> None:
    """Mirror keys are patched and validated; stage keys are still dropped."""
    current = mirror()
    after = patch_index_config(
        current, ["mirror_cache_expiry=60", "bases=x/y"], "root", "root/mirror", exists
    )
    assert after == {**current, "mirror_cache_expiry": 60}
    with pytest.raises(ConfigError, match=r"Default values can't be removed\."):
        patch_index_config(current, ["mirror_url-="], "root", "root/mirror", exists)


# --- no-op detection ----------------------------------------------------------------------


def test_noop_detection() -> None:
    """A patch that changes nothing is a no-op; a real change is not."""
    current = stage({"mirror_whitelist": "six"})
    assert config_is_noop(current, patch(current, ["mirror_whitelist+=six"]))
    assert config_is_noop(current, patch(current, {"volatile": "true"}))
    assert not config_is_noop(current, patch(current, ["title=X"]))


# --- list sizes and the cost of list edits (issue 17, item 10) -----------------------------


def _names(count: int, prefix: str = "user") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


@pytest.mark.parametrize("key", ["acl_upload", "acl_toxresult_upload", "mirror_whitelist"])
def test_list_settings_hold_at_most_the_bound(key: str) -> None:
    """A PUT with more entries than MAX_LIST_ENTRIES is refused naming the bound; the bound fits."""
    assert len(stage({key: _names(MAX_LIST_ENTRIES)})[key]) == MAX_LIST_ENTRIES  # type: ignore[arg-type]
    message = error({key: _names(MAX_LIST_ENTRIES + 1)})
    assert message == (
        f"The '{key}' setting can hold at most {MAX_LIST_ENTRIES} entries, "
        f"not {MAX_LIST_ENTRIES + 1}"
    )


def test_bases_are_bounded_lower() -> None:
    """More than MAX_BASES bases are refused before any is looked up."""
    looked_up: list[str] = []

    def existing(name: str) -> bool:
        looked_up.append(name)
        return True

    bases = [f"u/i{n}" for n in range(MAX_BASES + 1)]
    with pytest.raises(ConfigError) as info:
        new_index_config("alice", {"bases": bases}, existing, fullname="alice/dev")
    assert f"at most {MAX_BASES} entries" in str(info.value)
    assert looked_up == []
    ok = new_index_config("alice", {"bases": bases[:MAX_BASES]}, existing, fullname="alice/dev")
    assert len(ok["bases"]) == MAX_BASES  # type: ignore[arg-type]


def test_the_reviewed_25k_name_removal_is_refused_by_the_bound() -> None:
    """The review's ``acl_upload-=`` with 25,000 names (37 s before) is a 400 at once."""
    current = stage() | {"acl_upload": _names(25_000)}
    with pytest.raises(ConfigError) as info:
        patch(current, ["acl_upload-=" + ",".join(_names(25_000))])
    assert str(info.value) == (
        f"The 'acl_upload' setting can hold at most {MAX_LIST_ENTRIES} entries, not 25000"
    )


def test_appending_item_by_item_stops_at_the_bound() -> None:
    """Thousands of single ``k+=v`` items are refused at the first one past the bound."""
    items = [f"acl_upload+=u{i}" for i in range(20_000)]
    with pytest.raises(ConfigError) as info:
        patch(stage(), items)
    assert str(info.value).endswith(f"not {MAX_LIST_ENTRIES + 1}")
    full = patch(stage(), items[: MAX_LIST_ENTRIES - 1])
    assert full["acl_upload"] == ["alice", *(f"u{i}" for i in range(MAX_LIST_ENTRIES - 1))]


def test_a_stored_list_past_the_bound_can_still_shrink() -> None:
    """A list stored before the bound existed can be edited down (not locked by its size)."""
    current = stage() | {"acl_upload": _names(MAX_LIST_ENTRIES + 5)}
    after = patch(current, ["acl_upload-=" + ",".join(_names(5))])
    assert after["acl_upload"] == _names(MAX_LIST_ENTRIES + 5)[5:]


def test_list_items_edit_one_working_copy() -> None:
    """Mixed items act in order on one list: add, remove, set, add again."""
    after = patch(
        stage(),
        ["acl_upload+=bob,carol", "acl_upload-=alice", "acl_upload+=dave", "mirror_whitelist=six"],
    )
    assert after["acl_upload"] == ["bob", "carol", "dave"]
    after = patch(stage(), ["acl_upload+=bob", "acl_upload=erin", "acl_upload+=frank"])
    assert after["acl_upload"] == ["erin", "frank"]
    with pytest.raises(ConfigError, match="doesn't have value 'bob'"):
        patch(stage(), ["acl_upload+=bob", "acl_upload-=bob", "acl_upload-=bob"])


class CountedName(str):
    """A string that counts how often it is compared for equality (class-wide)."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountedName.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_list_edits_do_linear_work() -> None:
    """Removing and adding n entries compares O(n) times, not n²/2 as a list scan does."""
    n = MAX_LIST_ENTRIES
    entries = EntrySet("acl_upload", [CountedName(f"user{i}") for i in range(n)])
    CountedName.comparisons = 0
    # Equal values but other objects, so no lookup can shortcut by identity.
    entries.remove([CountedName(f"user{i}") for i in range(n - 1)])
    entries.add([CountedName(f"new{i}") for i in range(n - 1)])
    entries.add([CountedName(f"new{i}") for i in range(n - 1)])  # all present already
    assert CountedName.comparisons <= 4 * n, CountedName.comparisons
    assert entries.entries() == ["user999", *(f"new{i}" for i in range(n - 1))]
