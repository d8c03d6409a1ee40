"""Who is asking: HTTP Basic (and devpi's X-Devpi-Auth) credentials checked against users.

argon2 is slow on purpose (tens of milliseconds), so a successful check is remembered per process
under a keyed digest of the credentials until that user changes; installers sending credentials
on every request then cost a dictionary lookup. Failed checks are not cached.

Scoped tokens (see services/tokens.py) may read and upload to their indexes, nothing else: every
caller says what it is about to do (``action``), and a scoped token asking for more is refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import Headers

from cheeseboard.core.tokens import TokenSigner
from cheeseboard.services.errors import CheeseboardError
from cheeseboard.services.throttle import LoginThrottle, client_address
from cheeseboard.services.users import verify_password
from cheeseboard.store import accounts
from cheeseboard.store.accounts import UserRecord
from cheeseboard.store.db import Database
from cheeseboard.store.queries import Change
from cheeseboard.store.tokens import TokenRecord, load_tokens

Action = Literal["read", "upload", "manage"]
TOKEN_USER = "__token__"  # noqa: S105 - PyPI's convention: the token names its owner


class Unauthorized(CheeseboardError):
    """Raised when credentials are missing for an action that needs them, or are wrong."""

    status = 401


class Forbidden(CheeseboardError):
    """Raised when the authenticated user may not do what they asked."""

    status = 403


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated user, or anonymous (``user`` None)."""

    user: str | None

    @property
    def anonymous(self) -> bool:
        return self.user is None


ANONYMOUS = Identity(None)


def _credentials(headers: Headers) -> tuple[str, str] | None:
    raw = None
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "basic" and value:
        raw = value.strip()
    elif headers.get("x-devpi-auth"):
        raw = headers["x-devpi-auth"].strip()
    if raw is None:
        return None
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed credentials") from exc
    user, sep, secret = decoded.partition(":")
    if not sep or not user:
        raise Unauthorized("malformed credentials")
    return user, secret


class AuthService:
    """Authenticate requests against the users table (kept in memory, refreshed on change)."""

    def __init__(
        self, db: Database, tokens: TokenSigner, throttle: LoginThrottle | None = None
    ) -> None:
        self._db = db
        self.tokens = tokens
        self.throttle = throttle or LoginThrottle(limit=10, window=300.0)
        self._users: dict[str, UserRecord] = {}
        self.scoped: dict[str, TokenRecord] = {}
        # keyed digest of credentials -> (user, scoped token id or None)
        self._verified: dict[bytes, tuple[str, str | None]] = {}
        self._key = secrets.token_bytes(32)

    async def load(self) -> None:
        self._users = {u.name: u for u in await self._db.read(accounts.load_users)}
        self.scoped = {t.id: t for t in await self._db.read(load_tokens)}
        self._verified.clear()

    async def on_change(self, change: Change) -> None:
        if change.kind.startswith(("user", "token")):
            await self.load()

    def user(self, name: str) -> UserRecord | None:
        return self._users.get(name)

    def users(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda u: u.name)

    async def identify(
        self, headers: Headers, action: Action = "manage", index: str | None = None
    ) -> Identity:
        """The requester, for ``action`` (on ``index``); raises Unauthorized for wrong or
        malformed credentials and Forbidden for a scoped token used beyond its scope."""
        credentials = _credentials(headers)
        if credentials is None:
            return ANONYMOUS
        user, secret = credentials
        if user == TOKEN_USER:
            user = self.tokens.owner(secret) or user
        digest = hmac.new(self._key, f"{user}\0{secret}".encode(), hashlib.sha256).digest()
        known = self._verified.get(digest)
        if known is None or known[0] != user:
            known = (user, await self._throttled_verify(user, secret))
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = known
        if known[1] is not None:
            self._check_scope(known[1], action, index)
        return Identity(user)

    async def _throttled_verify(self, user: str, secret: str) -> str | None:
        """``_verify``, refused early while the user or the client address is blocked."""
        address = client_address.get()
        self.throttle.check(user, address)
        try:
            token_id = await self._verify(user, secret)
        except Unauthorized:
            self.throttle.failed(user, address)
            raise
        self.throttle.succeeded(user)
        return token_id

    async def _verify(self, user: str, secret: str) -> str | None:
        """Check a password or token; the scoped token's id, else None."""
        record = self._users.get(user)
        if record is not None and self.tokens.looks_like_token(secret):
            check = self.tokens.check(secret, user, record.pwhash)
            if check.user is None:
                raise Unauthorized(f"user {user!r} could not be authenticated: {check.reason}")
            return check.token_id
        if record is None or not await self.check_password(record, secret):
            raise Unauthorized(f"user {user!r} could not be authenticated")
        return None

    def _check_scope(self, token_id: str, action: Action, index: str | None) -> None:
        scoped = self.scoped.get(token_id)
        if scoped is None:
            raise Unauthorized(f"token {token_id} was revoked")
        if time.time() >= scoped.expires:
            raise Unauthorized(f"token {token_id} expired")
        if action == "read" or (action == "upload" and index in scoped.indexes):
            return
        allowed = ", ".join(scoped.indexes)
        raise Forbidden(f"token {token_id} may only upload to {allowed}")

    async def check_password(self, record: UserRecord, password: str) -> bool:
        return await asyncio.to_thread(verify_password, record.pwhash, password)

    async def login(self, user: str, password: str) -> str:
        """A fresh token for ``user``; raises Unauthorized for a wrong password and
        TooManyAttempts while the user or the client address is blocked."""
        address = client_address.get()
        self.throttle.check(user, address)
        record = self._users.get(user)
        if record is None or not await self.check_password(record, password):
            self.throttle.failed(user, address)
            raise Unauthorized(f"user {user!r} could not be authenticated")
        self.throttle.succeeded(user)
        return self.tokens.issue(user, record.pwhash)
