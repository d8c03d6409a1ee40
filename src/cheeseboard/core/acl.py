"""Who may do what: pure permission rules, each answering with a reason.

Safe defaults (docs/security.md, "Who may do what"): only root creates users and indexes. Two
settings widen only the *create* rights, never rights over what belongs to someone else:

- ``--restrict-modify`` names principals (users, ``:group``, ``:AUTHENTICATED:``, ``:ANONYMOUS:``)
  that may create users, and indexes for any user but root (root's namespace holds the mirror and
  the indexes everyone trusts). devpi lets those principals change and delete every account and
  index as well; with ``:AUTHENTICATED:`` that let any user change root's password.
- ``--open-registration`` is devpi-server's default: anyone, even anonymous, registers a user, and
  a logged-in user creates stage indexes under their own name.

Accounts are changed and deleted by their user or root, indexes by their owner or root. Mirrors
make the server fetch from a URL of the creator's choice, so creating one or changing its
``mirror_url`` is root's alone. Uploads go to ``acl_upload`` only (root is not implicit there, as
in devpi).

Every refusal names the option that would allow the action, in one sentence the API returns as is.

Groups: ``:group:NAME`` (or devpi's ``:NAME``) in any principal list (``acl_upload``,
``acl_read``, ``acl_toxresult_upload``, ``--restrict-modify``) names every member of the group
NAME. A caller
is a ``Principal``: its user name and the groups it is in (services/auth.py ``Identity`` is one);
a bare name (or None, anonymous) is a caller in no group. Ownership and root are by name only:
no group makes anyone an owner or root.

Reading an index (its pages, files, documentation, JSON and web views) is for the principals in
its ``acl_read`` (``:ANONYMOUS:`` by default, as in devpi), its owner and root; with
``--read-requires-auth`` an anonymous caller reads nothing, whatever ``acl_read`` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

ANONYMOUS = ":ANONYMOUS:"
AUTHENTICATED = ":AUTHENTICATED:"
ROOT = "root"
GROUP = ":group:"
_OPTIONS = "see --restrict-modify / --open-registration"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


class Principal(Protocol):
    """A caller with its groups (the groups of anonymous callers are empty)."""

    @property
    def user(self) -> str | None: ...

    @property
    def groups(self) -> frozenset[str]: ...


Who = Principal | str | None
"""Who asks: a principal, or a bare user name (None: anonymous) in no group."""

_NO_GROUPS: frozenset[str] = frozenset()


def name_of(who: Who) -> str | None:
    """The user name of ``who`` (None: anonymous)."""
    if who is None or isinstance(who, str):
        return who
    return who.user


def group_of(principal: str) -> str:
    """The group a ``:group:NAME`` principal (or devpi's ``:NAME``) names."""
    return principal[len(GROUP) :] if principal.startswith(GROUP) else principal[1:]


def _matches(who: Who, principals: Iterable[str]) -> bool:
    """Whether ``who`` is among ``principals``: the one place group membership is decided."""
    user = name_of(who)
    groups = _NO_GROUPS if who is None or isinstance(who, str) else who.groups
    for principal in principals:
        if principal == ANONYMOUS:
            return True
        if user is None:
            continue
        if principal in (AUTHENTICATED, user):
            return True
        if groups and principal.startswith(":") and group_of(principal) in groups:
            return True
    return False


def _who(restrict_modify: Iterable[str]) -> str:
    """``root`` and the other principals of ``--restrict-modify``, for a message."""
    others = sorted(set(restrict_modify) - {ROOT})
    return ", ".join([ROOT, *others])


def _self_and_root(name: str) -> str:
    return ROOT if name == ROOT else f"{name} and {ROOT}"


def may_create_user(who: Who, restrict_modify: Iterable[str], open_registration: bool) -> Decision:
    """Register a new account (``PUT /<name>``)."""
    user = name_of(who)
    if user == ROOT:
        return Decision(True, "root creates users")
    if open_registration:
        return Decision(True, "--open-registration: anyone may create a user")
    if _matches(who, restrict_modify):
        return Decision(True, f"{user or 'anonymous'} is in --restrict-modify")
    return Decision(False, f"creating users is limited to {_who(restrict_modify)} ({_OPTIONS})")


def may_create_index(
    who: Who,
    owner: str,
    restrict_modify: Iterable[str],
    open_registration: bool,
    mirror: bool = False,
) -> Decision:
    """Create the index ``owner/…``; ``mirror`` for ``type=mirror``."""
    user = name_of(who)
    if user == ROOT:
        return Decision(True, "root creates indexes")
    if mirror:
        return Decision(
            False,
            "creating mirror indexes is limited to root "
            "(a mirror makes the server fetch from the URL it names)",
        )
    if open_registration and user is not None and user == owner:
        return Decision(True, "--open-registration: users create indexes under their own name")
    if _matches(who, restrict_modify) and owner != ROOT:
        return Decision(True, f"{user or 'anonymous'} is in --restrict-modify")
    if owner == ROOT:
        return Decision(False, f"creating indexes of root is limited to root ({_OPTIONS})")
    own = ", or users under their own name" if open_registration else ""
    return Decision(
        False, f"creating indexes is limited to {_who(restrict_modify)}{own} ({_OPTIONS})"
    )


def may_modify_user(user: str | None, target: str) -> Decision:
    """Change the account ``target`` (password, email, …) or delete it."""
    if user is not None and user in (ROOT, target):
        return Decision(True, "users manage their own account; root manages all")
    return Decision(
        False,
        f"changing or deleting user {target} is limited to {_self_and_root(target)} "
        "(no option grants it to others)",
    )


def may_set_pwhash(user: str | None) -> Decision:
    """Store a given password hash instead of hashing a password: its parameters decide what
    every later login for the account costs, so only root (and ``import``) may choose them."""
    if user == ROOT:
        return Decision(True, "root may set a password hash")
    return Decision(False, "setting pwhash is limited to root: send 'password' instead")


def may_modify_index(user: str | None, owner: str) -> Decision:
    """Change or delete the index ``owner/…``."""
    if user is not None and user in (ROOT, owner):
        return Decision(True, "owners manage their indexes; root manages all")
    return Decision(
        False,
        f"changing or deleting indexes of {owner} is limited to {_self_and_root(owner)} "
        "(no option grants it to others)",
    )


def may_point_mirror(user: str | None) -> Decision:
    """Change a mirror's ``mirror_url``: the server fetches from it (and for anyone reading it)."""
    if user == ROOT:
        return Decision(True, "root points mirrors")
    return Decision(False, "changing mirror_url is limited to root")


def may_upload(who: Who, acl_upload: Iterable[str]) -> Decision:
    if _matches(who, acl_upload):
        return Decision(True, "in acl_upload")
    return Decision(False, f"{name_of(who) or 'anonymous'} is not in acl_upload")


def may_upload_toxresult(who: Who, acl_toxresult_upload: Iterable[str]) -> Decision:
    """Attach a tox result to a release file (``devpi test``): the index's
    ``acl_toxresult_upload``, ``:ANONYMOUS:`` by default as in devpi (results never change the
    releases, and each is size-limited)."""
    if _matches(who, acl_toxresult_upload):
        return Decision(True, "in acl_toxresult_upload")
    return Decision(False, f"{name_of(who) or 'anonymous'} is not in acl_toxresult_upload")


def may_delete_files(who: Who, owner: str, acl_upload: Iterable[str]) -> Decision:
    """Remove or yank releases: uploaders, the owner and root."""
    user = name_of(who)
    if user is not None and user in (ROOT, owner):
        return Decision(True, "owner or root")
    return may_upload(who, acl_upload)


def acl_read_of(config: Mapping[str, object]) -> tuple[str, ...]:
    """An index's ``acl_read``: who may read it besides its owner and root (indexes made before
    read permissions existed have none: everyone, as before)."""
    value = config.get("acl_read")
    if not isinstance(value, (list, tuple)):
        return (ANONYMOUS,)
    return tuple(str(entry) for entry in value)


def may_read(who: Who, owner: str, acl_read: Iterable[str], require_auth: bool = False) -> Decision:
    """Read the index ``owner/…`` whose ``acl_read`` is given (``require_auth``:
    ``--read-requires-auth``)."""
    user = name_of(who)
    if user is not None and user in (ROOT, owner):
        return Decision(True, "owners read their indexes; root reads all")
    if user is None and require_auth:
        return Decision(False, "sign in to read (--read-requires-auth)")
    if _matches(who, acl_read):
        return Decision(True, "in acl_read")
    return Decision(False, f"{user or 'anonymous'} is not in acl_read")


def may_manage_groups(who: Who) -> Decision:
    """Create, change and delete local groups: a group's members get what ``:group:NAME``
    grants anywhere, so only root decides who is in one."""
    if name_of(who) == ROOT:
        return Decision(True, "root manages groups")
    return Decision(False, "managing groups is limited to root")
