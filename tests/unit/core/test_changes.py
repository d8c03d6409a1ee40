"""Change kinds: stored values and what each concerns."""

from __future__ import annotations

from cheeseboard.core.changes import ChangeKind


def test_values_are_the_stored_strings() -> None:
    """The changelog table holds these strings: renaming one would orphan existing rows."""
    assert {kind.value for kind in ChangeKind} == {
        "user-created", "user-modified", "user-deleted",
        "token-created", "token-revoked", "token-deleted",
        "index-created", "index-modified", "index-deleted",
        "upload", "doc-upload", "push", "remove", "yank", "unyank",
        "mirror-page", "mirror-checked", "mirror-file", "mirror-file-cached",
        "blocks", "advisories", "project-status", "toxresult", "groups",
    }  # fmt: skip


def test_what_each_kind_concerns() -> None:
    accounts = {k for k in ChangeKind if k.concerns_accounts}
    credentials = {k for k in ChangeKind if k.value.startswith(("user-", "token-"))}
    assert accounts == credentials | {ChangeKind.GROUPS}  # members: who a :group:NAME names
    indexes = {k for k in ChangeKind if k.concerns_indexes}
    assert indexes == {k for k in ChangeKind if k.value.startswith("index-")}
    assert [k for k in ChangeKind if k.only_caches_bytes] == [ChangeKind.MIRROR_FILE_CACHED]
    unlisted = [k for k in ChangeKind if not k.changes_project_lists]
    assert unlisted == [ChangeKind.MIRROR_CHECKED, ChangeKind.TOXRESULT]
