"""Permission rules: --restrict-modify grants creating only, --open-registration is devpi's
default, and accounts and indexes stay their owners' (and root's)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cheeseboard.core import acl

DEFAULT = ("root",)
EVERYONE_LOGGED_IN = ("root", acl.AUTHENTICATED)


def test_default_only_root_creates() -> None:
    """Out of the box only root creates users and indexes; the refusal names both options."""
    assert acl.may_create_user("root", DEFAULT, False).allowed
    assert acl.may_create_index("root", "alice", DEFAULT, False).allowed
    for user in (None, "alice"):
        refused = acl.may_create_user(user, DEFAULT, False)
        assert not refused.allowed
        assert refused.reason == (
            "creating users is limited to root (see --restrict-modify / --open-registration)"
        )
        refused = acl.may_create_index(user, "alice", DEFAULT, False)
        assert not refused.allowed
        assert refused.reason == (
            "creating indexes is limited to root (see --restrict-modify / --open-registration)"
        )


def test_restrict_modify_grants_creating_only() -> None:
    """With :AUTHENTICATED: any user creates users and indexes, and changes nobody else's."""
    assert acl.may_create_user("mallory", EVERYONE_LOGGED_IN, False).allowed
    assert acl.may_create_index("mallory", "alice", EVERYONE_LOGGED_IN, False).allowed
    assert not acl.may_create_user(None, EVERYONE_LOGGED_IN, False).allowed
    # The review: with :AUTHENTICATED: any user changed root's password.
    assert not acl.may_modify_user("mallory", "root").allowed
    assert not acl.may_modify_user("mallory", "alice").allowed
    assert not acl.may_modify_index("mallory", "alice").allowed
    assert not acl.may_set_pwhash("mallory").allowed


def test_restrict_modify_names_the_principals_in_refusals() -> None:
    """A refusal lists root and the configured principals, once each."""
    refused = acl.may_create_user("bob", ("root", ":admins", "carol", "root"), False)
    assert refused.reason == (
        "creating users is limited to root, :admins, carol "
        "(see --restrict-modify / --open-registration)"
    )
    assert acl.may_create_user("carol", ("carol",), False).allowed


def test_restrict_modify_does_not_reach_roots_namespace() -> None:
    """Root's indexes (the mirror, the trusted ones) are created by root only."""
    refused = acl.may_create_index("mallory", "root", EVERYONE_LOGGED_IN, True)
    assert not refused.allowed
    assert refused.reason == (
        "creating indexes of root is limited to root (see --restrict-modify / --open-registration)"
    )


def test_open_registration_is_devpis_default() -> None:
    """Anyone registers; a logged-in user creates stages under their own name only."""
    assert acl.may_create_user(None, DEFAULT, True).allowed
    assert acl.may_create_user("alice", DEFAULT, True).allowed
    assert acl.may_create_index("alice", "alice", DEFAULT, True).allowed
    assert not acl.may_create_index(None, "alice", DEFAULT, True).allowed
    refused = acl.may_create_index("alice", "bob", DEFAULT, True)
    assert not refused.allowed
    assert refused.reason == (
        "creating indexes is limited to root, or users under their own name "
        "(see --restrict-modify / --open-registration)"
    )


@pytest.mark.parametrize(
    ("restrict_modify", "open_registration"), [(DEFAULT, True), (EVERYONE_LOGGED_IN, True)]
)
def test_mirrors_are_roots(restrict_modify: tuple[str, ...], open_registration: bool) -> None:
    """Creating a mirror or changing its URL needs root, whatever the options."""
    assert acl.may_create_index("root", "alice", restrict_modify, open_registration, True).allowed
    refused = acl.may_create_index("alice", "alice", restrict_modify, open_registration, True)
    assert not refused.allowed and refused.reason.startswith(
        "creating mirror indexes is limited to root"
    )
    assert acl.may_point_mirror("root").allowed
    assert not acl.may_point_mirror("alice").allowed


def test_accounts_are_their_users_and_roots() -> None:
    """A user changes or deletes their own account; root any; nobody else, and no option helps."""
    assert acl.may_modify_user("alice", "alice").allowed
    assert acl.may_modify_user("root", "alice").allowed
    assert acl.may_modify_user("root", "root").allowed
    refused = acl.may_modify_user(None, "alice")
    assert not refused.allowed
    assert refused.reason == (
        "changing or deleting user alice is limited to alice and root "
        "(no option grants it to others)"
    )


def test_indexes_are_their_owners_and_roots() -> None:
    """An owner changes or deletes their indexes; root any; nobody else."""
    assert acl.may_modify_index("alice", "alice").allowed
    assert acl.may_modify_index("root", "alice").allowed
    assert not acl.may_modify_index("bob", "alice").allowed
    assert not acl.may_modify_index(None, "alice").allowed


def test_only_root_sets_a_password_hash() -> None:
    """A stored hash's parameters decide every login's cost: root's choice, not the user's."""
    assert acl.may_set_pwhash("root").allowed
    assert not acl.may_set_pwhash("alice").allowed
    assert not acl.may_set_pwhash(None).allowed


def test_reasons_are_one_sentence() -> None:
    """No refusal repeats itself ("no permission: no permission …")."""
    decisions = [
        acl.may_create_user("x", DEFAULT, False),
        acl.may_create_index("x", "y", DEFAULT, False),
        acl.may_modify_user("x", "y"),
        acl.may_modify_index("x", "y"),
        acl.may_point_mirror("x"),
        acl.may_set_pwhash("x"),
    ]
    for decision in decisions:
        assert not decision.allowed
        assert "no permission" not in decision.reason
        assert decision.reason.count("limited to") == 1, decision.reason


def test_uploads_follow_acl_upload_only() -> None:
    """Root is not implicit in acl_upload (as in devpi); deletes add owner and root."""
    assert not acl.may_upload("root", ["alice"]).allowed
    assert acl.may_upload(None, [acl.ANONYMOUS]).allowed
    assert acl.may_upload("bob", [acl.AUTHENTICATED]).allowed
    assert acl.may_delete_files("root", "alice", []).allowed
    assert acl.may_delete_files("alice", "alice", []).allowed
    assert not acl.may_delete_files("bob", "alice", ["alice"]).allowed


@dataclass(frozen=True)
class _Caller:
    user: str | None
    groups: frozenset[str]


def test_group_principals_name_the_members() -> None:
    """``:group:devs`` (and devpi's ``:devs``) admit members of devs, in every principal list;
    a bare name or anonymous is in no group, and a group never makes anyone an owner."""
    member = _Caller("bob", frozenset({"devs"}))
    other = _Caller("eve", frozenset({"ops"}))
    for entry in (":group:devs", ":devs"):
        assert acl.may_upload(member, [entry]).allowed
        assert acl.may_upload_toxresult(member, [entry]).allowed
        assert acl.may_read(member, "alice", [entry]).allowed
        assert acl.may_delete_files(member, "alice", [entry]).allowed
        assert acl.may_create_user(member, ("root", entry), False).allowed
        assert acl.may_create_index(member, "carol", ("root", entry), False).allowed
        assert not acl.may_create_index(member, "root", ("root", entry), False).allowed
        assert not acl.may_upload(other, [entry]).allowed
        assert not acl.may_upload("bob", [entry]).allowed
        assert not acl.may_read(None, "alice", [entry]).allowed
    assert not acl.may_upload(_Caller(None, frozenset({"devs"})), [":group:devs"]).allowed
    assert not acl.may_modify_index(acl.name_of(member), "alice").allowed
    assert acl.may_manage_groups("root").allowed
    assert not acl.may_manage_groups(member).allowed
