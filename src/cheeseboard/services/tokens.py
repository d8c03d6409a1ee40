"""Scoped API tokens: credentials for CI, limited to named indexes, expiring.

A token's ``scope`` is ``upload`` (read and upload to its indexes, the default) or ``read``
(read its indexes only: installs from private indexes). Either way it grants nothing on any
other index (services/auth.py: there its bearer reads as an anonymous caller).

A token is signed like a login token and names its id; the row under that id holds the scope.
Only the owner (with a password or login token, never another scoped token) or root creates,
lists and revokes a user's tokens. Changing the password, or deleting the user, invalidates them
all, as it does login tokens (a user created again under the same name is another account).

A login token can be revoked before it expires (``revoke_login``, the web UI's sign-out): its
digest is stored until it would have expired, and every worker and node refuses it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from cheeseboard.core.changes import ChangeKind
from cheeseboard.services import audit
from cheeseboard.services.auth import AuthService, Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.store import accounts
from cheeseboard.store.tokens import (
    SCOPES,
    Scope,
    TokenRecord,
    create_token,
    delete_token,
    revoke,
)

DEFAULT_LIFETIME = 90 * 86_400
MAX_LIFETIME = 366 * 86_400
_KEYS = {"indexes", "expires_in", "description", "scope"}


def token_view(record: TokenRecord) -> dict[str, Any]:
    """What listing shows of a token (never the token itself)."""
    return {
        "id": record.id,
        "description": record.description,
        "indexes": list(record.indexes),
        "scope": record.scope,
        "created": record.created,
        "expires": record.expires,
    }


class TokenService:
    """Create, list and revoke scoped tokens."""

    def __init__(self, changes: ChangeFeed, auth: AuthService, indexes: IndexRegistry) -> None:
        self._changes = changes
        self._auth = auth
        self._indexes = indexes

    def _owner_or_root(self, identity: Identity, user: str) -> None:
        if identity.anonymous:
            raise Unauthorized("log in to manage tokens")
        if identity.user not in (user, "root"):
            raise Forbidden(f"only {user} and root manage the tokens of {user}")
        if self._auth.user(user) is None:
            raise NotFound(f"no user {user!r}")

    def list(self, identity: Identity, user: str) -> list[dict[str, Any]]:
        self._owner_or_root(identity, user)
        mine = (t for t in self._auth.scoped.values() if t.user == user)
        return [token_view(t) for t in sorted(mine, key=lambda t: t.created)]

    async def create(
        self, identity: Identity, user: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._owner_or_root(identity, user)
        unknown = sorted(set(body) - _KEYS)
        if unknown:
            raise BadRequest("unknown token keys: " + ", ".join(unknown))
        indexes = body.get("indexes")
        if isinstance(indexes, str):
            indexes = [item for item in indexes.split(",") if item]
        if not isinstance(indexes, list) or not indexes:
            raise BadRequest("a token needs 'indexes': the user/index names it may use")
        for name in indexes:
            if not isinstance(name, str) or self._indexes.by_name(name) is None:
                raise BadRequest(f"no index {name!r}")
        lifetime = body.get("expires_in", DEFAULT_LIFETIME)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int):
            raise BadRequest("'expires_in' is a number of seconds")
        if not 60 <= lifetime <= MAX_LIFETIME:
            raise BadRequest(f"'expires_in' must be between 60 and {MAX_LIFETIME} seconds")
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 200:
            raise BadRequest("'description' is a text of at most 200 characters")
        scope = _scope(body.get("scope", "upload"))
        now = time.time()
        record = TokenRecord(
            secrets.token_hex(8), user, description, tuple(indexes), now, now + lifetime, scope
        )
        await self._changes.write(_create, audit.actor(identity), record)
        owner = self._auth.user(user)
        assert owner is not None  # checked above; users are only deleted with their tokens
        token = self._auth.tokens.issue_scoped(user, owner.token_binding, record.id, record.expires)
        return {**token_view(record), "token": token}

    async def revoke(self, identity: Identity, user: str, token_id: str) -> None:
        self._owner_or_root(identity, user)
        found = self._auth.scoped.get(token_id)
        if found is None or found.user != user:
            raise NotFound(f"no token {token_id!r} of {user}")
        await self._changes.write(_delete, audit.actor(identity), user, token_id)

    async def revoke_login(self, token: str) -> None:
        """End a login token now (web sign-out); a token that is not valid is left alone."""
        owner = self._auth.tokens.owner(token)
        check = self._auth.check_token(token, owner) if owner else None
        if check is None or check.user is None or check.expires is None:
            return
        await self._changes.write(
            _revoke_login,
            audit.actor(Identity(check.user)),
            self._auth.tokens.digest(token),
            check.expires,
            time.time(),
        )


def _scope(value: object) -> Scope:
    for scope in SCOPES:
        if value == scope:
            return scope
    raise BadRequest(
        "'scope' is 'upload' (read and upload to the token's indexes) or 'read' (read them only)"
    )


def _revoke_login(
    tx: Transaction, who: audit.Actor, digest: str, expires: float, now: float
) -> None:
    """A login token ended early (web sign-out): ``token-revoke`` in the audit log."""
    revoke(tx.conn, digest, expires, now)
    tx.log(None, None, ChangeKind.TOKEN_REVOKED)
    audit.record(tx, who, "token-revoke", who.user, {"kind": "login"})


def _create(tx: Transaction, who: audit.Actor, token: TokenRecord) -> None:
    owner_id = accounts.user_id(tx.conn, token.user)
    if owner_id is None:
        raise NotFound(f"no user {token.user!r}")
    create_token(tx.conn, token, owner_id)
    tx.log(None, None, ChangeKind.TOKEN_CREATED)
    detail = {
        "id": token.id,
        "scope": token.scope,
        "indexes": list(token.indexes),
        "expires": token.expires,
    }
    audit.record(tx, who, "token-create", token.user, detail)


def _delete(tx: Transaction, who: audit.Actor, user: str, token_id: str) -> None:
    """A scoped token revoked (its row deleted): ``token-delete`` in the audit log."""
    delete_token(tx.conn, token_id)
    tx.log(None, None, ChangeKind.TOKEN_DELETED)
    audit.record(tx, who, "token-delete", user, {"id": token_id})
