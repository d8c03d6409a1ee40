"""Web sign-in through the configured OpenID Connect provider (authorization code with PKCE).

``begin`` makes the request's secrets (state, nonce, PKCE verifier) and seals them in a
short-lived cookie signed with the server secret, so the callback is bound to the browser that
started it, on any worker or node. ``finish`` checks the callback against that cookie, uses the
state once (a replayed callback is refused), trades the code for an ``id_token``, verifies it
(services/oidc.py), maps its claims to a user and groups, creates the user when configured to,
and issues the same login token a password sign-in gives. Every outcome is in the audit log:
``login`` with ``via: oidc``, or ``login-failed`` with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from cheeseboard.core.acl import ROOT
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.constant_time import same_secret
from cheeseboard.core.names import InvalidName, checked_segment_name
from cheeseboard.oidc_settings import OidcSettings
from cheeseboard.services import audit
from cheeseboard.services.auth import AuthService
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.oidc import OidcClient, OidcRefused, Request
from cheeseboard.services.throttle import client_address
from cheeseboard.store import audit_rows, oidc_rows
from cheeseboard.store.db import Database

FLOW_LIFETIME = 600
"""Seconds between starting a sign-in and its callback."""
MAX_FLOW_COOKIE = 2048
MAX_GROUPS = 100
SOURCE = "oidc"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A finished sign-in: the session token to set, where to go, and what the claims said."""

    user: str
    token: str
    next: str
    groups: frozenset[str]
    created: bool
    cli: CliReturn | None = None


@dataclass(frozen=True, slots=True)
class CliReturn:
    """Where a command-line sign-in (``cheeseboard login --sso``) gets its token: a port on the
    browser's own loopback, and the state the client made to recognise the answer."""

    port: int
    state: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SsoService:
    """OIDC sign-in for the web UI; ``client`` is None when no ``oidc:`` section is configured."""

    def __init__(
        self,
        settings: OidcSettings | None,
        ca_bundle: str | None,
        db: Database,
        changes: ChangeFeed,
        auth: AuthService,
    ) -> None:
        self.client = OidcClient(settings, ca_bundle) if settings is not None else None
        self._db = db
        self._changes = changes
        self._auth = auth

    @property
    def display_name(self) -> str | None:
        return self.client.settings.display_name if self.client is not None else None

    def _configured(self) -> OidcClient:
        if self.client is None:
            raise OidcRefused("single sign-on is not configured on this server")
        return self.client

    # --- the flow cookie ----------------------------------------------------------------------

    def _seal(self, request: Request, next_path: str, cli: CliReturn | None) -> str:
        payload = {
            "s": request.state,
            "n": request.nonce,
            "v": request.verifier,
            "x": next_path,
            "e": int(time.time()) + FLOW_LIFETIME,
            "c": [cli.port, cli.state] if cli else None,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._auth.tokens.derive('oidc-flow', body)}"

    def _open(self, cookie: str | None) -> tuple[Request, str, CliReturn | None]:
        if not cookie or len(cookie) > MAX_FLOW_COOKIE or "." not in cookie:
            raise OidcRefused("no sign-in was started in this browser (or it took too long)")
        body, _, mac = cookie.rpartition(".")
        if not same_secret(mac, self._auth.tokens.derive("oidc-flow", body)):
            raise OidcRefused("the sign-in cookie is not one this server made")
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            request = Request(str(payload["s"]), str(payload["n"]), str(payload["v"]))
            expires, next_path = int(payload["e"]), str(payload["x"])
            cli = CliReturn(int(payload["c"][0]), str(payload["c"][1])) if payload["c"] else None
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise OidcRefused("the sign-in cookie is malformed") from None
        if time.time() > expires:
            raise OidcRefused("the sign-in took longer than 10 minutes; start again")
        return request, next_path, cli

    # --- the flow -----------------------------------------------------------------------------

    async def begin(
        self, redirect_uri: str, next_path: str, cli: CliReturn | None = None
    ) -> tuple[str, str]:
        """The provider's authorization URL to send the browser to, and the flow cookie."""
        client = self._configured()
        request = Request.new()
        url = await client.authorization_url(request, redirect_uri)
        return url, self._seal(request, next_path, cli)

    async def finish(
        self, cookie: str | None, query: Mapping[str, str], redirect_uri: str
    ) -> SignedIn:
        """The callback: a session for the user the provider names, or OidcRefused (audited)."""
        try:
            return await self._finish(cookie, query, redirect_uri)
        except OidcRefused as exc:
            await self._record(None, "login-failed", {"via": SOURCE, "reason": str(exc)[:300]})
            raise

    async def _finish(
        self, cookie: str | None, query: Mapping[str, str], redirect_uri: str
    ) -> SignedIn:
        client = self._configured()
        request, next_path, cli = self._open(cookie)
        if "error" in query:
            reason = query["error"][:100]
            raise OidcRefused(f"the provider did not sign you in ({reason})")
        state, code = query.get("state", ""), query.get("code", "")
        if not same_secret(state, request.state):
            raise OidcRefused("the callback's state is not this browser's sign-in")
        if not code or len(code) > 2048:
            raise OidcRefused("the callback carries no authorization code")
        digest = hashlib.sha256(f"oidc-state\0{request.state}".encode()).hexdigest()
        if not await self._db.write(oidc_rows.use_once, digest, time.time() + FLOW_LIFETIME):
            raise OidcRefused("this sign-in was completed already (a replayed callback)")
        id_token = await client.exchange(code, request.verifier, redirect_uri)
        claims = await client.verify(id_token, request.nonce)
        name, groups = self._map(client.settings, claims)
        created = await self._ensure_user(client.settings, name, groups, cli is not None)
        record = self._auth.user(name)
        if record is None:  # deleted in between
            raise OidcRefused(f"user {name!r} does not exist")
        if not created:
            detail = {"via": SOURCE, "groups": sorted(groups), "cli": cli is not None}
            await self._record(name, "login", detail)
        return SignedIn(name, self._auth.issue_token(record), next_path, groups, created, cli)

    @staticmethod
    def _map(settings: OidcSettings, claims: Mapping[str, object]) -> tuple[str, frozenset[str]]:
        """The user name (``username_claim``, else ``sub``) and groups the claims give."""
        raw = claims.get(settings.username_claim)
        if not isinstance(raw, str) or not raw:
            raw = claims.get("sub")
        name = str(raw)
        try:
            checked_segment_name("user", name)
        except InvalidName:
            raise OidcRefused(
                f"the provider's user name {name[:80]!r} is not a valid user name here"
            ) from None
        groups: set[str] = set()
        listed = claims.get(settings.groups_claim) if settings.groups_claim else None
        if isinstance(listed, list):
            for item in listed[:MAX_GROUPS]:
                if isinstance(item, str) and 0 < len(item) <= 64 and item.isprintable():
                    groups.add(item.strip("/"))  # Keycloak sends paths such as /team
        return name, frozenset(g for g in groups if g)

    async def _ensure_user(
        self, settings: OidcSettings, name: str, groups: frozenset[str], cli: bool
    ) -> bool:
        """Whether the user was created now; OidcRefused if it may not sign in this way."""
        exists, source = await self._db.read(oidc_rows.auth_source, name)
        if exists:
            if source == SOURCE:
                return False
            if source is not None:
                raise OidcRefused(f"user {name!r} signs in through {source}, not single sign-on")
            if name == ROOT or not settings.link_local_users:
                # A password account: whoever may choose the claimed name at the provider
                # would take it over, so only with link_local_users, and never root.
                raise OidcRefused(
                    f"user {name!r} signs in with a password here, not single sign-on"
                    + ("" if name == ROOT else " (see oidc.link_local_users)")
                )
            return False
        if not settings.auto_create_users:
            raise OidcRefused(
                f"there is no user {name!r} on this server; ask an administrator to create it"
            )
        who = audit.Actor(name, client_address.get())
        await self._changes.write(_create_user, who, name, sorted(groups), cli)
        return True

    async def _record(self, user: str | None, action: str, detail: dict[str, object]) -> None:
        address = client_address.get()
        entry = audit_rows.AuditEntry(user, action, user, detail, address)
        try:
            await self._db.write(audit_rows.append, entry)
        except SQLAlchemyError as exc:
            log.warning("could not record an OIDC sign-in (%s) from %s: %s", action, address, exc)


def _create_user(
    tx: Transaction, who: audit.Actor, name: str, groups: list[str], cli: bool
) -> None:
    """The account an OIDC sign-in makes, and its first sign-in, in one transaction."""
    oidc_rows.create_external_user(tx.conn, name, SOURCE)
    tx.log(None, None, ChangeKind.USER_CREATED)
    audit.record(tx, who, "user-create", name, {"via": SOURCE})
    audit.record(tx, who, "login", name, {"via": SOURCE, "groups": groups, "cli": cli})
