"""Who may do what: pure permission rules, each answering with a reason.

Safe defaults (DESIGN.md §7): only the principals in ``restrict_modify`` (root by default) create
users and indexes; users change their own account; index owners manage their indexes; uploads go
to ``acl_upload`` only (root is not implicit there, as in devpi).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ANONYMOUS = ":ANONYMOUS:"
AUTHENTICATED = ":AUTHENTICATED:"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


def _matches(user: str | None, principals: Iterable[str]) -> bool:
    for principal in principals:
        if principal == ANONYMOUS:
            return True
        if user is not None and principal in (AUTHENTICATED, user):
            return True
    return False


def may_manage(user: str | None, restrict_modify: Iterable[str]) -> Decision:
    """Create users, create indexes for anyone, change or delete any user or index."""
    if user == "root" or _matches(user, restrict_modify):
        return Decision(True, f"{user} may manage users and indexes")
    return Decision(False, "only " + ", ".join(sorted({"root", *restrict_modify})) + " may do that")


def may_modify_user(user: str | None, target: str, restrict_modify: Iterable[str]) -> Decision:
    if user is not None and user == target:
        return Decision(True, "users manage their own account")
    return may_manage(user, restrict_modify)


def may_modify_index(user: str | None, owner: str, restrict_modify: Iterable[str]) -> Decision:
    if user is not None and user == owner:
        return Decision(True, "owners manage their indexes")
    return may_manage(user, restrict_modify)


def may_upload(user: str | None, acl_upload: Iterable[str]) -> Decision:
    if _matches(user, acl_upload):
        return Decision(True, "in acl_upload")
    return Decision(False, f"{user or 'anonymous'} is not in acl_upload")


def may_delete_files(user: str | None, owner: str, acl_upload: Iterable[str]) -> Decision:
    """Remove or yank releases: uploaders, the owner and root."""
    if user is not None and user in ("root", owner):
        return Decision(True, "owner or root")
    return may_upload(user, acl_upload)
