"""Users and indexes: create, change, delete, in the devpi shapes the management API returns.

Every operation takes the acting identity and checks permissions first (core.acl); refusals
raise Unauthorized for anonymous callers and Forbidden otherwise, with the rule's reason as the
whole message, and change nothing.

Bases: an index may list as a base any index its owner may read (inheriting is reading: core/acl.py
``may_read`` with the owner as the reader, so root's indexes may list any; root/pypi is everyone's
base). Inheritance can't widen access: a base the owner may not read is refused (400) when it is
added, and one the acting user may not read is answered as a missing one (the same words, as a
read of it would be). Bases already listed are not checked again: a base whose ``acl_read`` later
shuts the owner out stays listed, and the pages merge only the bases their reader may read
(services/visibility.py ``hidden_bases``). Listing one gives no say over it: its
owner or root deletes it with ``?force``, which drops it from the dependents' bases in the same
transaction. Without ``?force`` the delete is refused with the dependents named, so nobody
removes a base by accident, and nobody can make someone else's index undeletable.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.indexconfig import (
    BaseExists,
    ConfigError,
    config_is_noop,
    new_index_config,
    patch_index_config,
    shown_config,
)
from cheeseboard.core.names import InvalidName, checked_segment_name
from cheeseboard.services import audit
from cheeseboard.services.auth import AuthService, Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, CheeseboardError, NotFound
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.users import hash_password, pwhash_problem
from cheeseboard.settings import Settings
from cheeseboard.store import accounts, project_rows
from cheeseboard.store.accounts import USER_FIELDS
from cheeseboard.store.db import Database
from cheeseboard.store.records import IndexRecord, UserRecord

_USER_KEYS = {"password", "pwhash", *USER_FIELDS}


class Conflict(CheeseboardError):
    """Raised when the thing to create exists already, or an index to delete without
    ``?force`` is a base of other indexes."""


def _require(decision: acl.Decision, identity: Identity) -> None:
    if decision.allowed:
        return
    if identity.anonymous:
        raise Unauthorized(decision.reason)
    raise Forbidden(decision.reason)


_JSON_TYPES = {
    list: "a list",
    dict: "an object",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def _user_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The account fields of a PUT/PATCH body: text fields must be strings (or null), since a
    list or object there reached the database and answered 500; custom_data is any JSON."""
    values: dict[str, Any] = {}
    for field in USER_FIELDS:
        if field not in body:
            continue
        value = body[field]
        if field != "custom_data" and value is not None and not isinstance(value, str):
            kind = _JSON_TYPES.get(type(value), type(value).__name__)
            raise BadRequest(f"user field '{field}' must be a string, not {kind}")
        values[field] = value
    return values


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class AccountService:
    """The management side of users and indexes."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        changes: ChangeFeed,
        auth: AuthService,
        indexes: IndexRegistry,
    ) -> None:
        self._settings = settings
        self._db = db
        self._changes = changes
        self._auth = auth
        self._indexes = indexes

    # --- views -----------------------------------------------------------------------------

    def user_view(self, user: UserRecord, viewer: Identity) -> dict[str, Any]:
        """devpi's ``userconfig``; the email only for the user themselves and root (anyone may
        list users, and addresses are not for harvesting)."""
        view: dict[str, Any] = {"username": user.name, "created": _iso(user.created)}
        if user.modified:
            view["modified"] = _iso(user.modified)
        private = viewer.user not in (acl.ROOT, user.name)
        for field in USER_FIELDS:
            value = getattr(user, field)
            if value is not None and not (private and field == "email"):
                view[field] = value
        view["indexes"] = {
            index.name: shown_config(index.config)
            for index in sorted(self._indexes.all(), key=lambda ix: ix.name)
            if index.user == user.name
        }
        return view

    def all_users(self, viewer: Identity) -> dict[str, Any]:
        return {user.name: self.user_view(user, viewer) for user in self._auth.users()}

    def get_user(self, name: str) -> UserRecord:
        user = self._auth.user(name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    async def index_view(self, index: IndexRecord, with_projects: bool) -> dict[str, Any]:
        view = shown_config(index.config)
        if with_projects:
            view["projects"] = await self._db.read(project_rows.project_names, index.id)
        return view

    # --- users -------------------------------------------------------------------------------

    async def create_user(
        self, identity: Identity, name: str, body: Mapping[str, Any]
    ) -> UserRecord:
        settings = self._settings
        _require(
            acl.may_create_user(identity, settings.restrict_modify, settings.open_registration),
            identity,
        )
        try:
            checked_segment_name("user", name)
        except InvalidName as exc:
            raise BadRequest(str(exc)) from exc
        unknown = sorted(set(body) - _USER_KEYS)
        if unknown:
            raise BadRequest("Unknown keys in user config: " + ", ".join(unknown))
        extra = _user_fields(body)
        pwhash = self._password_hash(identity, body)
        if pwhash is None:
            raise BadRequest("password needs to be set")
        if self._auth.user(name) is not None:
            raise Conflict(f"user {name!r} already exists")
        await self._changes.write(_create_user, audit.actor(identity), name, pwhash, extra)
        return self.get_user(name)

    @staticmethod
    def _password_hash(identity: Identity, body: Mapping[str, Any]) -> str | None:
        """The hash to store from ``password`` (hashed here) or ``pwhash`` (root only, within
        the bounds of services/users.py); None if the body sets neither."""
        password = body.get("password")
        if password:
            if not isinstance(password, str):
                raise BadRequest("user field 'password' must be a string")
            return hash_password(password)
        pwhash = body.get("pwhash")
        if pwhash:
            _require(acl.may_set_pwhash(identity.user), identity)
            if not isinstance(pwhash, str):
                raise BadRequest("user field 'pwhash' must be a string")
            problem = pwhash_problem(pwhash)
            if problem is not None:
                raise BadRequest(problem)
            return pwhash
        return None

    async def modify_user(self, identity: Identity, name: str, body: Mapping[str, Any]) -> bool:
        """Change account fields; returns True if the password changed. Other keys are ignored,
        as devpi does (clients send back the whole user config)."""
        user = self.get_user(name)
        _require(acl.may_modify_user(identity.user, user.name), identity)
        values = _user_fields(body)
        changed = sorted(k for k, v in values.items() if getattr(user, k) != v)
        pwhash = self._password_hash(identity, body)
        if pwhash is not None:
            values["pwhash"] = pwhash
        await self._changes.write(
            _update_user, audit.actor(identity), name, values, changed, pwhash is not None
        )
        return pwhash is not None

    async def delete_user(self, identity: Identity, name: str, force: bool = False) -> None:
        """Delete the account and its indexes; ``force`` as for ``delete_index``."""
        user = self.get_user(name)
        _require(acl.may_modify_user(identity.user, user.name), identity)
        if user.name == acl.ROOT:
            raise Forbidden("root cannot be deleted")
        owned = [ix for ix in self._indexes.all() if ix.user == name]
        for index in owned:
            if not index.config.get("volatile", True):
                raise Forbidden(f"user {name} has non-volatile index {index.fullname}")
        await self._changes.write(_delete_user, audit.actor(identity), name, force)

    # --- indexes ------------------------------------------------------------------------------

    def get_index(self, user: str, name: str) -> IndexRecord:
        index = self._indexes.get(user, name)
        if index is None:
            raise NotFound(f"no index {user}/{name}")
        return index

    def _as_owner(self, owner: str) -> Identity:
        """``owner`` with its groups: what its index inherits is what it may read."""
        return Identity(owner, None, self._auth.groups_of(owner))

    def _may_read(self, user: acl.Who, index: IndexRecord) -> bool:
        """The read rule of services/visibility.py ``ReadAccess``, over the same registry."""
        acl_read = acl.acl_read_of(index.config)
        return acl.may_read(user, index.user, acl_read, self._settings.read_requires_auth).allowed

    def _visible_base(self, identity: Identity) -> BaseExists:
        """``base_exists`` for a config the acting user writes: a base they may not read is
        missing to them, as a read of it would answer."""

        def visible(fullname: str) -> bool:
            user, _, name = fullname.partition("/")
            base = self._indexes.get(user, name)
            return base is not None and self._may_read(identity, base)

        return visible

    def _check_bases_readable(
        self, owner: str, fullname: str, bases: object, known: object = ()
    ) -> None:
        """Refuse (400) a new base of ``fullname`` that its ``owner`` may not read: inheritance
        can't widen access. Bases in ``known`` (already listed) are not checked again."""
        if not isinstance(bases, list):
            return
        listed = set(known) if isinstance(known, list) else set()
        for name in bases:
            user, _, short = str(name).partition("/")
            base = self._indexes.get(user, short)
            if name in listed or base is None or self._may_read(self._as_owner(owner), base):
                continue
            raise BadRequest(
                f"base index '{name}' can't be a base of {fullname}: its acl_read doesn't let "
                f"{owner}, the owner of {fullname}, read it (an index can't inherit what its "
                "owner may not read)"
            )

    async def create_index(
        self, identity: Identity, user: str, name: str, body: Mapping[str, Any]
    ) -> IndexRecord:
        owner = self.get_user(user)
        fullname = f"{user}/{name}"
        settings = self._settings
        decision = acl.may_create_index(
            identity,
            owner.name,
            settings.restrict_modify,
            settings.open_registration,
            mirror=body.get("type") == "mirror",
        )
        _require(decision, identity)
        try:
            checked_segment_name("index", name)
            config = new_index_config(
                owner=user,
                raw=body,
                base_exists=self._visible_base(identity),
                fullname=fullname,
                actor=identity.user,
            )
        except (InvalidName, ConfigError) as exc:
            raise BadRequest(str(exc)) from exc
        self._check_bases_readable(owner.name, fullname, config.get("bases"))
        if self._indexes.get(user, name) is not None:
            raise Conflict(f"index {fullname!r} exists")
        await self._changes.write(_create_index, audit.actor(identity), owner.name, name, config)
        return self.get_index(user, name)

    async def patch_index(
        self,
        identity: Identity,
        user: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[str],
        error_on_noop: bool = False,
    ) -> IndexRecord:
        index = self.get_index(user, name)
        _require(acl.may_modify_index(identity.user, index.user), identity)
        try:
            config = patch_index_config(
                current=index.config,
                patch=patch,
                owner=index.user,
                fullname=index.fullname,
                base_exists=self._visible_base(identity),
                actor=identity.user,
            )
        except ConfigError as exc:
            raise BadRequest(str(exc)) from exc
        self._check_bases_readable(
            index.user, index.fullname, config.get("bases"), index.config.get("bases")
        )
        if config.get("mirror_url") != index.config.get("mirror_url"):
            _require(acl.may_point_mirror(identity.user), identity)
        if config_is_noop(index.config, config):
            if error_on_noop:
                raise BadRequest("the modification would not change anything")
            return index
        await self._changes.write(_update_index, audit.actor(identity), index, config)
        return self.get_index(user, name)

    async def delete_index(
        self, identity: Identity, user: str, name: str, force: bool = False
    ) -> None:
        """Delete the index; one that others list as a base only with ``force``, which removes
        it from their bases in the same transaction (see the module docstring)."""
        index = self.get_index(user, name)
        _require(acl.may_modify_index(identity.user, index.user), identity)
        if not index.config.get("volatile", True):
            raise Forbidden(f"index {index.fullname} non-volatile, cannot delete")
        await self._changes.write(_delete_index, audit.actor(identity), index, force)


# --- transactions (run on the database thread) ---------------------------------------------


def _create_user(
    tx: Transaction, who: audit.Actor, name: str, pwhash: str, extra: dict[str, Any]
) -> None:
    accounts.create_user(tx.conn, name, pwhash, **extra)
    tx.log(None, None, ChangeKind.USER_CREATED)
    audit.record(tx, who, "user-create", name, {"fields": sorted(extra)})


def _update_user(
    tx: Transaction,
    who: audit.Actor,
    name: str,
    values: dict[str, Any],
    changed: list[str],
    password: bool,
) -> None:
    """Change the account; the audit log names the fields changed (never their values: an email
    address is the user's) and a password change as an entry of its own."""
    accounts.update_user(tx.conn, name, **values)
    tx.log(None, None, ChangeKind.USER_MODIFIED)
    if changed:
        audit.record(tx, who, "user-modify", name, {"fields": changed})
    if password:
        audit.record(tx, who, "password-change", name)


def _delete_user(tx: Transaction, who: audit.Actor, name: str, force: bool) -> None:
    owned = [ix for ix in accounts.load_indexes(tx.conn) if ix.user == name]
    _drop_from_bases(tx, who, owned, force)
    accounts.delete_user(tx.conn, name)
    detail = {"indexes": sorted(ix.fullname for ix in owned), "force": force}
    audit.record(tx, who, "user-delete", name, detail)
    tx.log(None, None, ChangeKind.USER_DELETED)
    for index in owned:
        tx.log(index.id, None, ChangeKind.INDEX_DELETED)


def _drop_from_bases(
    tx: Transaction, who: audit.Actor, doomed: list[IndexRecord], force: bool
) -> None:
    """Before ``doomed`` go: refuse (Conflict) if other indexes list them as bases, or with
    ``force`` remove them from those bases. Read in the transaction, so a base added meanwhile
    is seen."""
    names = {index.fullname for index in doomed}
    ids = {index.id for index in doomed}
    for other in accounts.load_indexes(tx.conn):
        bases = other.config.get("bases") or []
        if other.id in ids or not names.intersection(bases):
            continue
        if not force:
            used = ", ".join(sorted(names.intersection(bases)))
            raise Conflict(
                f"index {used} is a base of {other.fullname}: "
                "delete with ?force to remove it from the bases of the indexes using it"
            )
        config = dict(other.config)
        config["bases"] = [base for base in bases if base not in names]
        accounts.update_index_config(tx.conn, other.id, config)
        tx.log(other.id, None, ChangeKind.INDEX_MODIFIED)
        detail = {
            "changed": audit.config_changes(other.config, config),
            "why": "a base was deleted",
        }
        audit.record(tx, who, "index-modify", other.fullname, detail)


def _create_index(
    tx: Transaction, who: audit.Actor, owner: str, name: str, config: dict[str, Any]
) -> None:
    owner_id = accounts.user_id(tx.conn, owner)
    if owner_id is None:
        raise NotFound(f"no user {owner!r}")
    index_id = accounts.create_index(tx.conn, owner_id, name, str(config["type"]), config)
    tx.log(index_id, None, ChangeKind.INDEX_CREATED)
    detail = {"config": {key: audit.shown(value) for key, value in sorted(config.items())}}
    audit.record(tx, who, "index-create", f"{owner}/{name}", detail)


def _update_index(
    tx: Transaction, who: audit.Actor, index: IndexRecord, config: dict[str, Any]
) -> None:
    """Store the new config; the audit log has each changed key (exemptions are one:
    ``release_age_exempt``) with its old and new value."""
    accounts.update_index_config(tx.conn, index.id, config)
    tx.log(index.id, None, ChangeKind.INDEX_MODIFIED)
    detail = {"changed": audit.config_changes(index.config, config)}
    audit.record(tx, who, "index-modify", index.fullname, detail)


def _delete_index(tx: Transaction, who: audit.Actor, index: IndexRecord, force: bool) -> None:
    doomed = [ix for ix in accounts.load_indexes(tx.conn) if ix.id == index.id]
    _drop_from_bases(tx, who, doomed, force)
    accounts.delete_index(tx.conn, index.id)
    tx.log(index.id, None, ChangeKind.INDEX_DELETED)
    audit.record(tx, who, "index-delete", index.fullname, {"force": force})
