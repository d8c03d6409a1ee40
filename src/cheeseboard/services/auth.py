"""Who is asking: HTTP Basic (and devpi's X-Devpi-Auth) credentials checked against users.

argon2 is slow on purpose (tens of milliseconds), so a successful check is remembered per process
under a keyed digest of the credentials until that user changes; installers sending credentials
on every request then cost a dictionary lookup. Failed checks are not cached.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.datastructures import Headers

from cheeseboard.core.tokens import TokenSigner
from cheeseboard.services.errors import CheeseboardError
from cheeseboard.services.users import verify_password
from cheeseboard.store import accounts
from cheeseboard.store.accounts import UserRecord
from cheeseboard.store.db import Database
from cheeseboard.store.queries import Change


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

    def __init__(self, db: Database, tokens: TokenSigner) -> None:
        self._db = db
        self.tokens = tokens
        self._users: dict[str, UserRecord] = {}
        self._verified: dict[bytes, str] = {}  # keyed digest of credentials -> user
        self._key = secrets.token_bytes(32)

    async def load(self) -> None:
        self._users = {u.name: u for u in await self._db.read(accounts.load_users)}
        self._verified.clear()

    async def on_change(self, change: Change) -> None:
        if change.kind.startswith("user"):
            await self.load()

    def user(self, name: str) -> UserRecord | None:
        return self._users.get(name)

    def users(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda u: u.name)

    async def identify(self, headers: Headers) -> Identity:
        """The requester; raises Unauthorized for wrong or malformed credentials."""
        credentials = _credentials(headers)
        if credentials is None:
            return ANONYMOUS
        user, secret = credentials
        digest = hmac.new(self._key, f"{user}\0{secret}".encode(), hashlib.sha256).digest()
        if self._verified.get(digest) == user:
            return Identity(user)
        record = self._users.get(user)
        if record is not None and self.tokens.looks_like_token(secret):
            check = self.tokens.check(secret, user, record.pwhash)
            if check.user is None:
                raise Unauthorized(f"user {user!r} could not be authenticated: {check.reason}")
        elif record is None or not await self.check_password(record, secret):
            raise Unauthorized(f"user {user!r} could not be authenticated")
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[digest] = user
        return Identity(user)

    async def check_password(self, record: UserRecord, password: str) -> bool:
        return await asyncio.to_thread(verify_password, record.pwhash, password)

    async def login(self, user: str, password: str) -> str:
        """A fresh token for ``user``; raises Unauthorized for a wrong password."""
        record = self._users.get(user)
        if record is None or not await self.check_password(record, password):
            raise Unauthorized(f"user {user!r} could not be authenticated")
        return self.tokens.issue(user, record.pwhash)
