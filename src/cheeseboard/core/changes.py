"""What a committed change was: the kinds of changelog rows, and what each one concerns.

The values are stored in the changelog table (and read back by every process and node catching
up), so they never change; subscribers ask a kind what it concerns instead of matching prefixes.

A newer version may add kinds, and during a rolling upgrade its rows reach older nodes catching up.
Reading such a value gives an unknown kind (``known`` is False) instead of an error; it answers
every question conservatively, as a change that may concern anything.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeKind(StrEnum):
    """The kind of one changelog row."""

    USER_CREATED = "user-created"
    USER_MODIFIED = "user-modified"
    USER_DELETED = "user-deleted"
    TOKEN_CREATED = "token-created"  # noqa: S105 - a change kind, not a secret
    TOKEN_REVOKED = "token-revoked"  # noqa: S105
    TOKEN_DELETED = "token-deleted"  # noqa: S105
    INDEX_CREATED = "index-created"
    INDEX_MODIFIED = "index-modified"
    INDEX_DELETED = "index-deleted"
    UPLOAD = "upload"
    DOC_UPLOAD = "doc-upload"
    PUSH = "push"
    REMOVE = "remove"
    YANK = "yank"
    UNYANK = "unyank"
    MIRROR_PAGE = "mirror-page"  # a mirror's page was fetched and differs
    MIRROR_CHECKED = "mirror-checked"  # a mirror's page was fetched and is unchanged
    MIRROR_FILE = "mirror-file"  # a mirrored file's bytes arrived and it is now listed
    MIRROR_FILE_CACHED = "mirror-file-cached"  # bytes arrived for a file already listed
    BLOCKS = "blocks"  # a block was added or removed (project set when it names one)
    ADVISORIES = "advisories"  # advisories were imported
    PROJECT_STATUS = "project-status"  # an owner or root set a project's PEP 792 status
    TOXRESULT = "toxresult"  # a tox result was attached to a release file (devpi test)
    GROUPS = "groups"  # root created, changed or deleted a local group (its members)

    @classmethod
    def _missing_(cls, value: object) -> ChangeKind | None:
        """A stored value this version does not know (a newer node wrote it): an unknown kind
        that keeps the value, rather than a ValueError that would stop every reader catching up.
        It is not a member: iterating over ChangeKind lists the known kinds only."""
        if not isinstance(value, str) or not value:
            return None
        unknown = str.__new__(cls, value)
        unknown._name_ = "UNKNOWN"
        unknown._value_ = value
        return unknown

    @property
    def known(self) -> bool:
        """False for a kind read from the changelog that this version does not define."""
        return self._value_ in type(self)._value2member_map_

    @property
    def concerns_accounts(self) -> bool:
        """Users, tokens or groups changed: credentials (and groups) must be reloaded."""
        return self in _ACCOUNTS or not self.known

    @property
    def concerns_indexes(self) -> bool:
        """An index was created, configured or deleted."""
        return self in _INDEXES or not self.known

    @property
    def only_caches_bytes(self) -> bool:
        """File bytes were cached, but no online page lists anything new."""
        return self is ChangeKind.MIRROR_FILE_CACHED

    @property
    def changes_project_lists(self) -> bool:
        """The lists of projects (root and index pages) may differ afterwards (unknown kinds:
        they may)."""
        return self not in (ChangeKind.MIRROR_CHECKED, ChangeKind.TOXRESULT)


_ACCOUNTS = frozenset(
    {
        ChangeKind.USER_CREATED,
        ChangeKind.USER_MODIFIED,
        ChangeKind.USER_DELETED,
        ChangeKind.TOKEN_CREATED,
        ChangeKind.TOKEN_REVOKED,
        ChangeKind.TOKEN_DELETED,
        ChangeKind.GROUPS,
    }
)
_INDEXES = frozenset(
    {ChangeKind.INDEX_CREATED, ChangeKind.INDEX_MODIFIED, ChangeKind.INDEX_DELETED}
)
