"""Users and indexes: create, change, delete, in the devpi shapes the management API returns.

Every operation takes the acting identity and checks permissions first (core.acl); refusals
raise Unauthorized for anonymous callers and Forbidden otherwise, and change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from cheeseboard.core import acl
from cheeseboard.core.indexconfig import (
    ConfigError,
    config_is_noop,
    new_index_config,
    patch_index_config,
)
from cheeseboard.core.names import InvalidName, checked_segment_name
from cheeseboard.server.settings import Settings
from cheeseboard.services.auth import AuthService, Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, CheeseboardError, NotFound
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.users import hash_password
from cheeseboard.store import accounts, queries
from cheeseboard.store.accounts import USER_FIELDS, IndexRecord, UserRecord
from cheeseboard.store.db import Database

_USER_KEYS = {"password", "pwhash", *USER_FIELDS}


class Conflict(CheeseboardError):
    """Raised when the thing to create exists already."""

    status = 409


def _require(decision: acl.Decision, identity: Identity, what: str) -> None:
    if decision.allowed:
        return
    if identity.anonymous:
        raise Unauthorized(f"{what}: authentication required")
    raise Forbidden(f"{what}: {decision.reason}")


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

    def user_view(self, user: UserRecord) -> dict[str, Any]:
        view: dict[str, Any] = {"username": user.name, "created": _iso(user.created)}
        if user.modified:
            view["modified"] = _iso(user.modified)
        for field in USER_FIELDS:
            value = getattr(user, field)
            if value is not None:
                view[field] = value
        view["indexes"] = {
            index.name: dict(index.config)
            for index in sorted(self._indexes.all(), key=lambda ix: ix.name)
            if index.user == user.name
        }
        return view

    def all_users(self) -> dict[str, Any]:
        return {user.name: self.user_view(user) for user in self._auth.users()}

    def get_user(self, name: str) -> UserRecord:
        user = self._auth.user(name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    async def index_view(self, index: IndexRecord, with_projects: bool) -> dict[str, Any]:
        view = dict(index.config)
        if with_projects:
            view["projects"] = await self._db.read(queries.project_names, index.id)
        return view

    # --- users -------------------------------------------------------------------------------

    async def create_user(
        self, identity: Identity, name: str, body: Mapping[str, Any]
    ) -> UserRecord:
        _require(
            acl.may_manage(identity.user, self._settings.restrict_modify), identity, "create user"
        )
        try:
            checked_segment_name("user", name)
        except InvalidName as exc:
            raise BadRequest(str(exc)) from exc
        unknown = sorted(set(body) - _USER_KEYS)
        if unknown:
            raise BadRequest("Unknown keys in user config: " + ", ".join(unknown))
        pwhash = self._password_hash(body)
        if pwhash is None:
            raise BadRequest("password needs to be set")
        extra = {field: body[field] for field in USER_FIELDS if field in body}
        if self._auth.user(name) is not None:
            raise Conflict(f"user {name!r} already exists")
        await self._changes.write(_create_user, name, pwhash, extra)
        return self.get_user(name)

    @staticmethod
    def _password_hash(body: Mapping[str, Any]) -> str | None:
        if body.get("password"):
            return hash_password(str(body["password"]))
        if body.get("pwhash"):
            pwhash = str(body["pwhash"])
            if not pwhash.startswith("$argon2"):
                raise BadRequest("pwhash must be an argon2 hash")
            return pwhash
        return None

    async def modify_user(self, identity: Identity, name: str, body: Mapping[str, Any]) -> bool:
        """Change account fields; returns True if the password changed. Other keys are ignored,
        as devpi does (clients send back the whole user config)."""
        user = self.get_user(name)
        _require(
            acl.may_modify_user(identity.user, user.name, self._settings.restrict_modify),
            identity,
            f"modify user {name}",
        )
        values: dict[str, Any] = {f: body[f] for f in USER_FIELDS if f in body}
        pwhash = self._password_hash(body)
        if pwhash is not None:
            values["pwhash"] = pwhash
        await self._changes.write(_update_user, name, values)
        return pwhash is not None

    async def delete_user(self, identity: Identity, name: str) -> None:
        user = self.get_user(name)
        _require(
            acl.may_manage(identity.user, self._settings.restrict_modify),
            identity,
            f"delete user {name}",
        )
        if user.name == "root":
            raise Forbidden("root cannot be deleted")
        owned = [ix for ix in self._indexes.all() if ix.user == name]
        for index in owned:
            if not index.config.get("volatile", True):
                raise Forbidden(f"user {name} has non-volatile index {index.fullname}")
            self._refuse_if_base(index, ignore_owner=name)
        await self._changes.write(_delete_user, name, [ix.id for ix in owned])

    # --- indexes ------------------------------------------------------------------------------

    def get_index(self, user: str, name: str) -> IndexRecord:
        index = self._indexes.get(user, name)
        if index is None:
            raise NotFound(f"no index {user}/{name}")
        return index

    def _base_exists(self, fullname: str) -> bool:
        user, _, name = fullname.partition("/")
        return self._indexes.get(user, name) is not None

    async def create_index(
        self, identity: Identity, user: str, name: str, body: Mapping[str, Any]
    ) -> IndexRecord:
        owner = self.get_user(user)
        fullname = f"{user}/{name}"
        _require(
            acl.may_manage(identity.user, self._settings.restrict_modify),
            identity,
            f"no permission to create index {fullname}",
        )
        try:
            checked_segment_name("index", name)
            config = new_index_config(
                owner=user, raw=body, base_exists=self._base_exists, fullname=fullname
            )
        except (InvalidName, ConfigError) as exc:
            raise BadRequest(str(exc)) from exc
        if self._indexes.get(user, name) is not None:
            raise Conflict(f"index {fullname!r} exists")
        await self._changes.write(_create_index, owner.name, name, config)
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
        _require(
            acl.may_modify_index(identity.user, index.user, self._settings.restrict_modify),
            identity,
            f"no permission to modify index {index.fullname}",
        )
        try:
            config = patch_index_config(
                current=index.config,
                patch=patch,
                owner=index.user,
                fullname=index.fullname,
                base_exists=self._base_exists,
            )
        except ConfigError as exc:
            raise BadRequest(str(exc)) from exc
        if config_is_noop(index.config, config):
            if error_on_noop:
                raise BadRequest("the modification would not change anything")
            return index
        await self._changes.write(_update_index, index.id, config)
        return self.get_index(user, name)

    async def delete_index(self, identity: Identity, user: str, name: str) -> None:
        index = self.get_index(user, name)
        _require(
            acl.may_modify_index(identity.user, index.user, self._settings.restrict_modify),
            identity,
            f"no permission to delete index {index.fullname}",
        )
        if not index.config.get("volatile", True):
            raise Forbidden(f"index {index.fullname} non-volatile, cannot delete")
        self._refuse_if_base(index)
        await self._changes.write(_delete_index, index.id)

    def _refuse_if_base(self, index: IndexRecord, ignore_owner: str | None = None) -> None:
        for other in self._indexes.all():
            if other.user == ignore_owner:
                continue
            if index.fullname in other.config.get("bases", ()):
                raise Conflict(f"index {index.fullname} is a base of {other.fullname}")


# --- transactions (run on the database thread) ---------------------------------------------


def _create_user(tx: Transaction, name: str, pwhash: str, extra: dict[str, Any]) -> None:
    accounts.create_user(tx.conn, name, pwhash, **extra)
    tx.log(None, None, "user-created")


def _update_user(tx: Transaction, name: str, values: dict[str, Any]) -> None:
    accounts.update_user(tx.conn, name, **values)
    tx.log(None, None, "user-modified")


def _delete_user(tx: Transaction, name: str, index_ids: list[int]) -> None:
    accounts.delete_user(tx.conn, name)
    tx.log(None, None, "user-deleted")
    for index_id in index_ids:
        tx.log(index_id, None, "index-deleted")


def _create_index(tx: Transaction, owner: str, name: str, config: dict[str, Any]) -> None:
    owner_id = accounts.user_id(tx.conn, owner)
    if owner_id is None:
        raise NotFound(f"no user {owner!r}")
    index_id = accounts.create_index(tx.conn, owner_id, name, str(config["type"]), config)
    tx.log(index_id, None, "index-created")


def _update_index(tx: Transaction, index_id: int, config: dict[str, Any]) -> None:
    accounts.update_index_config(tx.conn, index_id, config)
    tx.log(index_id, None, "index-modified")


def _delete_index(tx: Transaction, index_id: int) -> None:
    accounts.delete_index(tx.conn, index_id)
    tx.log(index_id, None, "index-deleted")
