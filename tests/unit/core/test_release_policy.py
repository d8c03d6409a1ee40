"""The supply-chain guard's decisions (core/release_policy.py) and their index settings."""

from __future__ import annotations

import pytest

from cheeseboard.core.indexconfig import ConfigError, new_index_config, patch_index_config
from cheeseboard.core.release_policy import (
    Block,
    BlockSet,
    Exemption,
    PolicyError,
    TimeRule,
    exemption_from,
    format_age,
    format_time,
    judge,
    parse_age,
    parse_specifier,
    parse_time,
    rule_of,
    upload_seconds,
)

DAY = 86400.0
NOW = parse_time("2026-12-07T12:00:00Z")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(604800, 604800), ("7d", 604800), ("12h", 43200), ("30m", 1800), ("90s", 90), ("2w", 1209600),
     ("0", 0), ("45", 45), (" 3D ", 259200)],
)  # fmt: skip
def test_ages_read_with_units(value: object, seconds: int) -> None:
    assert parse_age(value) == seconds


@pytest.mark.parametrize("value", ["-1d", "7 days", "1y", "", True, None, 1.5, "9" * 13, "4000w"])
def test_bad_ages_are_refused_with_the_setting_named(value: object) -> None:
    with pytest.raises(PolicyError, match="min_release_age"):
        parse_age(value)


def test_ages_and_times_format_back() -> None:
    assert format_age(604800) == "1w" and format_age(86400 * 3) == "3d" and format_age(61) == "61s"
    assert format_time(parse_time("2026-01-31")) == "2026-01-31T00:00:00Z"
    assert parse_time("2026-01-31T01:00:00+01:00") == parse_time("2026-01-31T00:00:00Z")
    with pytest.raises(PolicyError, match="RFC 3339"):
        parse_time("last tuesday")


def test_upload_times_as_stored_are_read_or_unknown() -> None:
    assert upload_seconds("2026-12-07T12:00:00.123456Z") == pytest.approx(NOW + 0.123456)
    assert upload_seconds("2026-12-07T12:00:00") == NOW
    assert upload_seconds(None) is None and upload_seconds("yesterday") is None


def _judge(upload: float | None, *rules: TimeRule, version: str = "1.0", blocks=()) -> object:  # type: ignore[no-untyped-def]
    return judge("foo", version, f"foo-{version}.tar.gz", "ab" * 32, upload, rules, blocks, NOW)


def test_a_young_file_is_held_until_it_comes_of_age() -> None:
    rule = TimeRule("root/pypi", min_age=7 * 86400)
    verdict = _judge(NOW - DAY, rule)
    assert verdict.held is not None and verdict.held.until == NOW + 6 * DAY  # type: ignore[attr-defined]
    assert verdict.recheck_at == NOW + 6 * DAY  # type: ignore[attr-defined]
    assert "minimum release age of 1w" in verdict.held.reason  # type: ignore[attr-defined]
    assert "available from 2026-12-13T12:00:00Z" in verdict.held.message("foo-1.0.tar.gz")  # type: ignore[attr-defined]
    assert _judge(NOW - 8 * DAY, rule).held is None  # type: ignore[attr-defined]


def test_unknown_upload_times_fail_closed() -> None:
    verdict = _judge(None, TimeRule("root/pypi", min_age=60))
    assert verdict.held is not None and verdict.held.until is None  # type: ignore[attr-defined]
    assert "upload time is unknown" in verdict.held.reason  # type: ignore[attr-defined]
    assert _judge(None, TimeRule("root/pypi", cutoff=NOW)).held is not None  # type: ignore[attr-defined]
    assert _judge(None).held is None  # type: ignore[attr-defined]  # no rule: nothing to judge


def test_the_cutoff_hides_later_uploads_for_good() -> None:
    rule = TimeRule("root/pypi", cutoff=NOW - DAY)
    assert _judge(NOW - 2 * DAY, rule).held is None  # type: ignore[attr-defined]
    late = _judge(NOW - 0.5 * DAY, rule)
    assert late.held.until is None and "cut-off 2026-12-06T12:00:00Z" in late.held.reason  # type: ignore[attr-defined]


def test_exemptions_let_a_version_through_until_they_expire() -> None:
    exemption = Exemption("foo", "1.0", "hotfix", "alice", NOW - DAY, NOW + DAY)
    rule = TimeRule("alice/dev", min_age=7 * 86400, exemptions=(exemption,))
    verdict = _judge(NOW - DAY, rule)
    assert verdict.held is None and verdict.recheck_at == NOW + DAY  # type: ignore[attr-defined]
    assert _judge(NOW - DAY, rule, version="1.0.0").held is None  # type: ignore[attr-defined]
    assert _judge(NOW - DAY, rule, version="1.1").held is not None  # type: ignore[attr-defined]
    expired = judge("foo", "1.0", "f", None, NOW - DAY, (rule,), (), NOW + 2 * DAY)
    assert expired.held is not None  # the file is still young then: held again


def test_an_exemption_does_not_lift_a_cutoff_or_a_block() -> None:
    exemption = Exemption("foo", None, "", "alice", 0.0)
    rule = TimeRule("a/b", min_age=86400, cutoff=NOW - DAY, exemptions=(exemption,))
    assert _judge(NOW - 0.5 * DAY, rule).held is not None  # type: ignore[attr-defined]
    block = Block(1, "malware", project="foo")
    open_rule = TimeRule("a/b", min_age=86400, exemptions=(exemption,))
    verdict = _judge(NOW - 30 * DAY, open_rule, blocks=[block])
    assert verdict.held.blocked and verdict.held.reason == "blocked: malware"  # type: ignore[attr-defined]


def test_several_rules_hold_until_the_last_one_lets_go() -> None:
    mirror = TimeRule("root/pypi", min_age=2 * 86400)
    stage = TimeRule("team/prod", min_age=7 * 86400)
    verdict = _judge(NOW - DAY, mirror, stage)
    assert verdict.held.until == NOW + 6 * DAY and "team/prod" in verdict.held.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("block", "version", "matched"),
    [
        (Block(1, "r", project="foo"), "1.0", True),
        (Block(1, "r", project="bar"), "1.0", False),
        (Block(1, "r", project="foo", specifier=parse_specifier(">=1.0,<1.2")), "1.1", True),
        (Block(1, "r", project="foo", specifier=parse_specifier(">=1.0,<1.2")), "1.2", False),
        (Block(1, "r", project="foo", specifier=parse_specifier("==1.0")), "1.0.0", True),
        (Block(1, "r", project="foo", specifier=parse_specifier("==1.0")), "2.0rc1", False),
        (Block(1, "r", filename="foo-1.0.tar.gz"), "1.0", True),
        (Block(1, "r", sha256="ab" * 32), "9", True),
        (Block(1, "r", sha256="cd" * 32), "9", False),
    ],
)
def test_blocks_match_every_part_they_name(block: Block, version: str, matched: bool) -> None:
    assert block.matches("foo", version, f"foo-{version}.tar.gz", "AB" * 32) is matched


def test_specifiers_are_checked() -> None:
    assert parse_specifier("") is None
    with pytest.raises(PolicyError, match="PEP 440"):
        parse_specifier("=>1")


def test_exemptions_read_from_strings_and_dicts() -> None:
    made = exemption_from("Foo_Bar==1.0; reason=CVE fix; expires=2d", "alice", NOW)
    assert (made.project, made.version, made.reason, made.author) == (
        "foo-bar",
        "1.0",
        "CVE fix",
        "alice",
    )
    assert made.expires == NOW + 2 * DAY
    again = exemption_from(made.stored(), "mallory", NOW + 5)
    assert again == made  # a stored entry keeps its author and times
    assert exemption_from({"entry": "foo"}, "bob", NOW).version is None
    for bad in ("foo==not a version", "foo; colour=red", "../x", 42):
        with pytest.raises(PolicyError):
            exemption_from(bad, "alice", NOW)


def test_index_settings_store_the_policy_and_refuse_nonsense() -> None:
    config = new_index_config(
        "alice",
        {"bases": "root/pypi", "min_release_age": "7d", "release_cutoff": "2026-06-01",
         "release_age_exempt": ["foo==1.0; reason=urgent"]},
        {"root/pypi"}.__contains__, fullname="alice/dev", actor="root", now=NOW,
    )  # fmt: skip
    assert config["min_release_age"] == 604800
    assert config["release_cutoff"] == "2026-06-01T00:00:00Z"
    assert config["release_age_exempt"] == [
        {"entry": "foo==1.0", "reason": "urgent", "author": "root", "added": format_time(NOW)}
    ]
    rule = rule_of("alice/dev", config)
    assert rule.min_age == 604800 and rule.exemptions[0].author == "root"
    with pytest.raises(ConfigError, match="min_release_age"):
        new_index_config("alice", {"min_release_age": "soon"}, bool, fullname="alice/x")
    mirror = new_index_config(
        "root", {"type": "mirror", "mirror_url": "https://pypi.org/simple/", "min_release_age": 0},
        bool, fullname="root/pypi",
    )  # fmt: skip
    assert "min_release_age" not in mirror  # 0 is off


def test_exemptions_edit_with_devpis_list_syntax() -> None:
    start = new_index_config("alice", {}, bool, fullname="alice/dev")
    added = patch_index_config(
        start, ["release_age_exempt+=foo==1.0; reason=fix; expires=1d", "release_age_exempt+=bar"],
        "alice", "alice/dev", bool, actor="bob", now=NOW,
    )  # fmt: skip
    entries = added["release_age_exempt"]
    assert [e["entry"] for e in entries] == ["foo==1.0", "bar"]  # type: ignore[union-attr,index]
    assert entries[0]["author"] == "bob" and entries[0]["expires"] == format_time(NOW + DAY)  # type: ignore[index]
    later = patch_index_config(
        added, ["release_age_exempt-=foo==1.0", "title=x"], "alice", "alice/dev", bool,
        actor="carol", now=NOW + 60,
    )  # fmt: skip
    assert later["release_age_exempt"] == [entries[1]]  # type: ignore[index]  # bar keeps its author
    with pytest.raises(ConfigError, match="doesn't have value 'baz'"):
        patch_index_config(later, ["release_age_exempt-=baz"], "alice", "alice/dev", bool)
    cleared = patch_index_config(later, ["release_age_exempt-="], "alice", "alice/dev", bool)
    assert "release_age_exempt" not in cleared


def test_a_block_set_offers_only_the_blocks_a_file_can_match() -> None:
    """Thousands of blocks (an OSV import) are not each checked against every file of a page:
    only those naming the file's project, file name or sha256 are candidates."""
    many = [Block(i, "malware", project=f"evil-{i}") for i in range(5000)]
    by_name = Block(9001, "bad upload", filename="foo-1.0.tar.gz")
    by_hash = Block(9002, "bad bytes", sha256="ab" * 32)
    on_foo = Block(9003, "broken", project="foo", specifier=parse_specifier("==1.0"))
    blocks = BlockSet([*many, by_name, by_hash, on_foo])
    assert blocks.size == 5003 and blocks
    assert blocks.candidates("foo", "foo-1.0.tar.gz", "AB" * 32) == [on_foo, by_name, by_hash]
    assert blocks.candidates("bar", "bar-1.0.tar.gz", None) == []
    assert blocks.candidates("evil-42", "evil_42-1.0.tar.gz", None) == [many[42]]
    assert not BlockSet()
    verdict = judge(
        "foo",
        "2.0",
        "foo-2.0.tar.gz",
        "cd" * 32,
        NOW,
        (),
        blocks.candidates("foo", "foo-2.0.tar.gz", "cd" * 32),
        NOW,
    )
    assert verdict.held is None  # the project's block is a candidate but 2.0 is outside it
