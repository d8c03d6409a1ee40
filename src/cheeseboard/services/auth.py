"""Who is asking: HTTP Basic (and devpi's X-Devpi-Auth) credentials checked against users.

argon2 is slow on purpose (tens of milliseconds), so a successful check is remembered per process
under a keyed digest of the credentials until that user changes (and, for a token, until it
expires); installers sending credentials on every request then cost a dictionary lookup. Failed
checks are not cached. Concurrent requests with the same credentials share one check.

Every check not answered from memory is an attempt counted before it runs, and password checks
take turns (services/throttle.py): a burst of guesses gets ``--login-attempts`` checks, and
argon2 never runs on more threads than there are cores.

A failed check that the throttle counted is recorded in the audit log (``login-failed``, with the
user name tried and the client address, never the secret). Attempts the throttle refuses are not
checked and not recorded, so the log grows no faster than the throttle lets guesses through.

Login tokens revoked early (web sign-out) are kept as digests in the database and loaded by
every worker and node on change, like users and scoped tokens.

Scoped tokens (see services/tokens.py) have a scope: ``upload`` tokens read and upload to their
indexes, ``read`` tokens only read them; nothing else. Every caller says what it is about to do
(``action``, and on which index): a scoped token asking for more is refused (Forbidden), except
for reading an index outside its scope, where it grants nothing and its bearer reads as an
anonymous caller would (public indexes stay readable, private ones are refused as to anyone).
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers

from cheeseboard.core import metrics
from cheeseboard.core.tokens import TokenCheck, TokenSigner
from cheeseboard.services.errors import CheeseboardError
from cheeseboard.services.throttle import Attempt, LoginThrottle, VerifyGate, client_address
from cheeseboard.services.users import verify_password
from cheeseboard.store import accounts, audit_rows, group_rows, identity_rows
from cheeseboard.store.db import Database
from cheeseboard.store.records import Change, UserRecord
from cheeseboard.store.tokens import TokenRecord, load_revoked, load_tokens

if TYPE_CHECKING:
    from cheeseboard.services.directory_signin import DirectorySignIn

Action = Literal["read", "upload", "manage"]
T = TypeVar("T")
log = logging.getLogger(__name__)
TOKEN_USER = "__token__"  # noqa: S105 - PyPI's convention: the token names its owner


class Unauthorized(CheeseboardError):
    """Raised when credentials are missing for an action that needs them, or are wrong."""


class UnknownUser(Unauthorized):
    """Credentials naming no user (or one deleted since they were issued): refused as wrong
    ones are; a path naming that user answers 404 instead, as devpi does (http/access.py)."""

    def __init__(self, user: str) -> None:
        super().__init__(f"user {user!r} could not be authenticated")
        self.user = user


class Forbidden(CheeseboardError):
    """Raised when the authenticated user may not do what they asked."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated user, or anonymous (``user`` None). A scoped token's identity names
    its owner and the indexes it covers (``token_indexes``): it reads any other index only as
    an anonymous caller would (services/visibility.py). ``groups``: the groups the user is in
    (``:group:NAME`` principals, core/acl.py); a scoped token carries them as it carries its
    owner's name, only on its indexes."""

    user: str | None
    token_indexes: frozenset[str] | None = None
    groups: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        return self.user is None


ANONYMOUS = Identity(None)
_NO_GROUPS: frozenset[str] = frozenset()
_READERS = 10_000  # remembered identities per process (``identify_known``); then forgotten


def _credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
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
        # Bytes, not text: base64 of a str with a character outside ASCII raised ValueError
        # (a 500), where any such header is simply malformed.
        decoded = binascii.a2b_base64(raw.encode("latin-1"), strict_mode=True).decode("utf-8")
    except (binascii.Error, UnicodeError) as exc:
        raise Unauthorized("malformed credentials") from exc
    user, sep, secret = decoded.partition(":")
    if not sep or not user:
        raise Unauthorized("malformed credentials")
    return user, secret


@dataclass(frozen=True, slots=True)
class _Verified:
    """A remembered successful check: whose, which scoped token (if any), valid until when."""

    user: str
    token_id: str | None
    expires: float | None  # a token's expiry, a directory check's; None for a local password
    groups: frozenset[str] | None = None  # a directory user's groups, with the local ones


class AuthService:
    """Authenticate requests against the users table (kept in memory, refreshed on change)."""

    def __init__(
        self,
        db: Database,
        tokens: TokenSigner,
        throttle: LoginThrottle | None = None,
        gate: VerifyGate | None = None,
        directory: DirectorySignIn | None = None,
    ) -> None:
        self._db = db
        self.directory = directory
        self._sources: dict[str, str] = {}  # accounts an identity source made -> the source
        # a directory user -> its directory groups and until when they count (cache_seconds)
        self._directory_groups: dict[str, tuple[frozenset[str], float]] = {}
        self.tokens = tokens
        self.throttle = throttle or LoginThrottle(limit=10, window=300.0)
        self.gate = gate or VerifyGate()
        self._users: dict[str, UserRecord] = {}
        self.scoped: dict[str, TokenRecord] = {}
        self._revoked: frozenset[str] = frozenset()
        self._groups: dict[str, frozenset[str]] = {}  # user -> its local groups
        # keyed digest of credentials -> the outcome of their check
        self._verified: dict[bytes, _Verified] = {}
        # keyed digest of the credential headers as sent -> the identity they read as, and
        # until when (``identify_known``): the hot path's callers get the same object back
        self._readers: dict[bytes, tuple[Identity, float]] = {}
        self._in_flight: dict[bytes, asyncio.Future[_Verified]] = {}
        self._generation = 0  # bumped on every reload: checks begun before are not cached
        self._key = secrets.token_bytes(32)

    async def load(self) -> None:
        users = {u.name: u for u in await self._db.read(accounts.load_users)}
        scoped = {t.id: t for t in await self._db.read(load_tokens)}
        revoked = frozenset(await self._db.read(load_revoked, time.time()))
        groups = await self._db.read(group_rows.load_memberships)
        sources = await self._db.read(identity_rows.load_auth_sources)
        self._users, self.scoped, self._revoked = users, scoped, revoked
        self._groups, self._sources = groups, sources
        self._generation += 1
        self._verified.clear()
        self._readers.clear()

    async def on_change(self, change: Change) -> None:
        if change.kind.concerns_accounts:
            await self.load()

    def user(self, name: str) -> UserRecord | None:
        return self._users.get(name)

    def users(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda u: u.name)

    def issue_token(self, user: UserRecord) -> str:
        """A login token for ``user``, bound to its account and password."""
        return self.tokens.issue(user.name, user.token_binding)

    def check_token(self, token: str, user: str) -> TokenCheck:
        """Whether ``token`` is a valid, unrevoked token of ``user`` (an HMAC, no argon2)."""
        record = self._users.get(user)
        check = self.tokens.check(token, user, record.token_binding if record else None)
        if check.user is not None and self.tokens.digest(token) in self._revoked:
            return TokenCheck(None, "token revoked (signed out)")
        return check

    def session_user(self, token: str) -> str | None:
        """The user a browser's session token signs in (a login token, never a scoped one)."""
        owner = self.tokens.owner(token)
        if owner is None:
            return None
        check = self.check_token(token, owner)
        return owner if check.user is not None and check.token_id is None else None

    async def identify(
        self, headers: Headers, action: Action = "manage", index: str | None = None
    ) -> Identity:
        """The requester, for ``action`` (on ``index``); raises Unauthorized for wrong or
        malformed credentials and Forbidden for a scoped token used beyond its scope."""
        credentials = _credentials(headers)
        if credentials is None:
            return ANONYMOUS
        user, digest, known = self._remembered(*credentials)
        if known is None:
            known = await self._shared_verify(digest, user, credentials[1])
        if known.token_id is not None:
            if not self._check_scope(known.token_id, action, index):
                return ANONYMOUS
            return Identity(user, self._token_indexes(known.token_id), self.groups_of(user))
        return Identity(user, None, self.groups_of(user) if known.groups is None else known.groups)

    def identify_known(self, headers: Mapping[str, str], index: str | None) -> Identity | None:
        """``identify(headers, "read", index)`` when memory answers it (no credentials, or
        credentials checked before and still valid); else None, and the caller awaits
        ``identify``. Synchronous, for the hot path (http/hot.py).

        A user's identity (not a scoped token's, which depends on ``index``) is remembered per
        credential headers as sent, until they expire or the accounts change: the same object
        comes back, which the hot path keys its own memory by. Decoding, digesting and building
        it again, then the rule check, were a fifth of an authenticated cached page's time with
        the GIL (issue 19); the hot path's answer went from 10.5 to 5.9 us (anonymous: 4.2)."""
        authorization = headers.get("authorization", "")
        devpi_auth = headers.get("x-devpi-auth", "")
        if not authorization and not devpi_auth:
            return ANONYMOUS
        sent = f"{len(authorization)}:{authorization}\0{devpi_auth}"
        reader_key = hashlib.blake2b(sent.encode("utf-8", "surrogatepass"), key=self._key).digest()
        remembered = self._readers.get(reader_key)
        if remembered is not None:
            if remembered[1] > time.time():
                return remembered[0]
            del self._readers[reader_key]
        try:
            credentials = _credentials(headers)
        except Unauthorized:
            return None
        if credentials is None:
            return ANONYMOUS
        user, _, known = self._remembered(*credentials)
        if known is None:
            return None
        if known.token_id is not None:
            try:
                if not self._check_scope(known.token_id, "read", index):
                    return ANONYMOUS
            except (Unauthorized, Forbidden):
                return None
            return Identity(user, self._token_indexes(known.token_id), self.groups_of(user))
        until = known.expires if known.expires is not None else math.inf
        if known.groups is None:
            groups = self.groups_of(user)
            directory = self._directory_groups.get(user)
            if directory is not None:
                until = min(until, directory[1])
        else:
            groups = known.groups
        identity = Identity(user, None, groups)
        if len(self._readers) >= _READERS:
            self._readers.clear()
        self._readers[reader_key] = (identity, until)
        return identity

    def groups_of(self, user: str) -> frozenset[str]:
        """The groups ``user`` is in (from memory: no query on the hot path): its local ones,
        and a directory user's from its last directory check here, for ``cache_seconds``."""
        local = self._groups.get(user, _NO_GROUPS)
        remembered = self._directory_groups.get(user)
        if remembered is None:
            return local
        if time.time() >= remembered[1]:
            del self._directory_groups[user]
            return local
        return local | remembered[0]

    def is_local(self, user: str) -> bool:
        """Whether ``user`` has a local account with a local password (checked here, never
        against a directory)."""
        return user in self._users and user not in self._sources

    def _directory_user(self, user: str) -> bool:
        """Whether the directory decides for ``user``: no account yet, or one a directory sign-in
        made (an account from another source, OIDC, never signs in through the directory)."""
        return self._sources.get(user, "ldap") == "ldap"

    def _token_indexes(self, token_id: str) -> frozenset[str]:
        scoped = self.scoped.get(token_id)
        return frozenset(scoped.indexes) if scoped is not None else frozenset()

    def _remembered(self, user: str, secret: str) -> tuple[str, bytes, _Verified | None]:
        """The user the credentials name, their keyed digest, and their remembered successful
        check if it still holds (an expired token's is forgotten: checked again, and refused)."""
        if user == TOKEN_USER:
            user = self.tokens.owner(secret) or user
        # BLAKE2's keyed mode is a MAC, at a third of HMAC-SHA256's cost per request
        digest = hashlib.blake2b(f"{user}\0{secret}".encode(), key=self._key).digest()
        known = self._verified.get(digest)
        if known is not None and (
            known.user != user or (known.expires is not None and time.time() >= known.expires)
        ):
            del self._verified[digest]
            known = None
        return user, digest, known

    async def _shared_verify(self, digest: bytes, user: str, secret: str) -> _Verified:
        """``_throttled_verify`` once for concurrent requests with the same credentials (a
        client's parallel first requests cost one check and one attempt), remembered on success
        unless the users changed meanwhile."""
        running = self._in_flight.get(digest)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[_Verified] = asyncio.get_running_loop().create_future()
        self._in_flight[digest] = future
        generation = self._generation
        try:
            known = await self._throttled_verify(user, secret)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only the waiters (if any) re-raise it
            raise
        except BaseException:  # cancelled: the waiters try again themselves
            future.set_exception(Unauthorized("the sign-in was interrupted; try again"))
            future.exception()
            raise
        finally:
            del self._in_flight[digest]
        future.set_result(known)
        if generation == self._generation:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = known
        return known

    async def _throttled_verify(self, user: str, secret: str) -> _Verified:
        """``_verify``, counted as an attempt before it runs (services/throttle.py)."""
        attempt = self.throttle.reserve(user, client_address.get())
        return await self._settled(attempt, self._verify(user, secret), user, "credentials")

    async def _settled(self, attempt: Attempt, check: Awaitable[T], user: str, via: str) -> T:
        try:
            result = await check
        except Unauthorized:
            attempt.failed()
            metrics.count("login_failures_total")
            await self._record_failure(user, via)
            raise
        except BaseException:
            attempt.abandoned()
            raise
        attempt.succeeded()
        return result

    async def _record_failure(self, user: str, via: str) -> None:
        """A ``login-failed`` audit entry for a counted failure (``via``: ``login`` for a
        sign-in, ``credentials`` for a request's Basic or X-Devpi-Auth). A store that cannot
        take it is logged, and the caller still hears only that the credentials were wrong."""
        address = client_address.get()
        entry = audit_rows.AuditEntry(None, "login-failed", user[:64], {"via": via}, address)
        try:
            await self._db.write(audit_rows.append, entry)
        except SQLAlchemyError as exc:
            log.warning("could not record a failed sign-in of %r from %s: %s", user, address, exc)

    async def _verify(self, user: str, secret: str) -> _Verified:
        """Check a password or token."""
        record = self._users.get(user)
        if record is not None and self.tokens.looks_like_token(secret):
            check = self.check_token(secret, user)
            if check.user is None:
                raise Unauthorized(f"user {user!r} could not be authenticated: {check.reason}")
            return _Verified(user, check.token_id, check.expires)
        if record is not None and self.is_local(user):
            if not await self.check_password(record, secret):
                raise Unauthorized(f"user {user!r} could not be authenticated")
            return _Verified(user, None, None)
        if self.directory is None or not self._directory_user(user):
            raise (
                UnknownUser(user)
                if record is None
                else Unauthorized(
                    f"user {user!r} could not be authenticated: no identity source for it"
                )
            )
        groups = await self._directory_check(user, secret, record is not None)
        return _Verified(user, None, time.time() + self.directory.cache_seconds, groups)

    async def _directory_check(self, user: str, password: str, has_account: bool) -> frozenset[str]:
        """A directory user's password, checked by the directory (services/directory_signin.py):
        its groups with its local ones, remembered for login tokens until ``cache_seconds``."""
        assert self.directory is not None
        found = await self.directory.check(user, password, has_account)
        until = time.time() + self.directory.cache_seconds
        self._directory_groups[user] = (found, until)
        self._readers.clear()  # identities built with this user's groups before
        return self._groups.get(user, _NO_GROUPS) | found

    def _check_scope(self, token_id: str, action: Action, index: str | None) -> bool:
        """Whether the scoped token ``token_id`` acts as its owner for ``action`` on ``index``
        (True), or grants nothing there (False: a read of an index outside its scope, answered
        as to an anonymous caller). Raises Unauthorized for a revoked or expired token and
        Forbidden for anything else beyond its scope. Memory only: never awaits (the hot path
        calls it through ``identify_known``).

        A read naming no index (``/+api``'s login status, user listings, push's "who is this")
        is not an index's content: the token names its owner there, as before."""
        scoped = self.scoped.get(token_id)
        if scoped is None:
            raise Unauthorized(f"token {token_id} was revoked")
        if time.time() >= scoped.expires:
            raise Unauthorized(f"token {token_id} expired")
        allowed = ", ".join(scoped.indexes)
        if action == "read":
            return index is None or index in scoped.indexes
        if scoped.scope == "read":
            raise Forbidden(
                f"token {token_id} is a read-only token: it may only read {allowed}; "
                "uploading needs a token with scope 'upload'"
            )
        if action == "upload" and index in scoped.indexes:
            return True
        raise Forbidden(f"token {token_id} may only upload to {allowed}")

    async def check_password(self, record: UserRecord, password: str) -> bool:
        """argon2 in a thread, in turn (one per user and per address, one per core)."""
        async with self.gate.turn(record.name, client_address.get()):
            return await asyncio.to_thread(verify_password, record.pwhash, password)

    async def login(self, user: str, password: str) -> str:
        """A fresh token for ``user``; raises Unauthorized for a wrong password and
        TooManyAttempts while the user is blocked from the client address (or the address)."""
        attempt = self.throttle.reserve(user, client_address.get())
        record = await self._settled(attempt, self._password_login(user, password), user, "login")
        return self.issue_token(record)

    async def _password_login(self, user: str, password: str) -> UserRecord:
        record = self._users.get(user)
        if record is not None and self.is_local(user):
            if not await self.check_password(record, password):
                raise Unauthorized(f"user {user!r} could not be authenticated")
            return record
        if self.directory is None or not self._directory_user(user):
            raise Unauthorized(f"user {user!r} could not be authenticated")
        await self._directory_check(user, password, record is not None)
        record = self._users.get(user)  # made by the first sign-in, and loaded by now
        if record is None:
            raise Unauthorized(f"user {user!r} has no account yet; try again")
        return record
