"""Trusted publishing: register the CI runs that may publish to a stage index, and exchange
their OIDC ID tokens for short-lived upload tokens (PyPI's flow, warehouse/oidc/views.py).

Registering, listing and removing publishers takes the right to manage the index
(``acl.may_modify_index``: its owner and root); each change is in the audit log.

A minted token is an ordinary scoped token (services/tokens.py) with scope ``upload``, for the
one index whose publisher matched, expiring after ``MINTED_LIFETIME``. It acts as the index's
owner (whose ``acl_upload`` entry admits it, as the default does); the audit log's
``publisher-mint`` entry names the publisher and the token's identifying claims, so every upload
it makes can be traced to the CI run. An ID token is exchanged once: the digest of its issuer and
``jti`` is stored until it expires, so a replay on any worker or node is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.publishers import PublisherClaims, PublisherError, describe
from cheeseboard.services import audit
from cheeseboard.services.auth import AuthService, Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.id_tokens import TokenRequestFailed, VerifiedToken, verify
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.issuer_keys import IssuerKeys
from cheeseboard.services.throttle import client_address
from cheeseboard.store import accounts, publisher_rows
from cheeseboard.store.db import Database
from cheeseboard.store.publisher_rows import PublisherRow
from cheeseboard.store.records import IndexRecord
from cheeseboard.store.tokens import TokenRecord, create_token

MINTED_LIFETIME = 900
"""Seconds a minted upload token lives, as PyPI's."""
MAX_PUBLISHERS = 50
"""Publishers per index."""
MINTED_PREFIX = "trusted publisher #"
_KEYS = {"issuer", "audience", "claims", "description"}
_AUDITED_CLAIMS = (
    "sub",
    "repository",
    "project_path",
    "job_workflow_ref",
    "ci_config_ref_uri",
    "ref",
    "environment",
    "run_id",
    "pipeline_id",
    "job_id",
)


def publisher_view(row: PublisherRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "issuer": row.issuer,
        "audience": row.audience,
        "claims": row.claims,
        "description": row.description,
        "created": row.created,
        "created_by": row.created_by,
    }


class PublisherService:
    """Trusted publishers of stage indexes, and the token exchange."""

    def __init__(
        self,
        db: Database,
        changes: ChangeFeed,
        auth: AuthService,
        indexes: IndexRegistry,
        keys: IssuerKeys,
        audience: str,
    ) -> None:
        self._db = db
        self._changes = changes
        self._auth = auth
        self._indexes = indexes
        self.keys = keys
        self.audience = audience

    def _managed_stage(self, identity: Identity, user: str, name: str) -> IndexRecord:
        index = self._indexes.get(user, name)
        if index is None:
            raise NotFound(f"no index {user}/{name}")
        decision = acl.may_modify_index(identity.user, index.user)
        if not decision.allowed:
            if identity.anonymous:
                raise Unauthorized(decision.reason)
            raise Forbidden(decision.reason)
        if index.type != "stage":
            raise BadRequest(f"{index.fullname} is a mirror; publishers publish to stage indexes")
        return index

    async def list(self, identity: Identity, user: str, name: str) -> list[dict[str, Any]]:
        index = self._managed_stage(identity, user, name)
        rows = await self._db.read(publisher_rows.of_index, index.id)
        return [publisher_view(row) for row in rows]

    async def add(
        self, identity: Identity, user: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        index = self._managed_stage(identity, user, name)
        row = self._new_row(identity, index, body)
        created = await self._changes.write(_add, audit.actor(identity), index.fullname, row)
        return publisher_view(created)

    def _new_row(
        self, identity: Identity, index: IndexRecord, body: Mapping[str, Any]
    ) -> PublisherRow:
        unknown = sorted(set(body) - _KEYS)
        if unknown:
            raise BadRequest("unknown publisher keys: " + ", ".join(unknown))
        issuer = body.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") not in self.keys.issuers:
            allowed = ", ".join(sorted(self.keys.issuers)) or "none (set --oidc-issuers)"
            raise BadRequest(f"'issuer' must be an issuer this server trusts: {allowed}")
        audience = body.get("audience", self.audience)
        if not isinstance(audience, str) or not 0 < len(audience) <= 200:
            raise BadRequest("'audience' is a text of 1 to 200 characters")
        claims = body.get("claims")
        if not isinstance(claims, dict):
            raise BadRequest("'claims' is an object of the claims that must match")
        try:
            cleaned = PublisherClaims.create(claims)
        except PublisherError as exc:
            raise BadRequest(str(exc)) from None
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 200:
            raise BadRequest("'description' is a text of at most 200 characters")
        return PublisherRow(
            0,
            index.id,
            issuer.rstrip("/"),
            audience,
            cleaned.as_json(),
            description,
            time.time(),
            identity.user,
        )

    async def remove(self, identity: Identity, user: str, name: str, publisher_id: str) -> None:
        index = self._managed_stage(identity, user, name)
        if not publisher_id.isdigit() or len(publisher_id) > 18:
            raise NotFound(f"no publisher {publisher_id!r} of {index.fullname}")
        await self._changes.write(
            _remove, audit.actor(identity), index.id, index.fullname, int(publisher_id)
        )

    async def mint(self, token: str, index_name: str | None = None) -> dict[str, Any]:
        """Exchange an ID token for an upload token (``index_name``: which index, when the
        token's claims match publishers of several)."""
        if not self.keys.issuers:
            raise TokenRequestFailed(
                "not-enabled", "trusted publishing is not enabled on this server (--oidc-issuers)"
            )
        now = time.time()
        verified = await verify(token, self.keys, self.audience, now)
        rows = await self._db.read(publisher_rows.of_issuer, verified.issuer, self.audience)
        matched = [
            row for row in rows if PublisherClaims.stored(row.claims).matches(verified.claims)
        ]
        by_index = {row.index_id: row for row in matched}  # the first publisher per index
        indexes = {
            index.id: index
            for index in self._indexes.all()
            if index.id in by_index and index.type == "stage"
        }
        if index_name is not None:
            indexes = {i: x for i, x in indexes.items() if x.fullname == index_name}
        if not indexes:
            raise TokenRequestFailed(
                "invalid-publisher", "valid token, but no corresponding publisher"
            )
        if len(indexes) > 1:
            names = ", ".join(sorted(x.fullname for x in indexes.values()))
            raise TokenRequestFailed(
                "ambiguous-publisher",
                f"valid token matching publishers of several indexes ({names}); "
                "name one as 'index' in the request",
            )
        (index,) = indexes.values()
        publisher = by_index[index.id]
        record = TokenRecord(
            secrets.token_hex(8),
            index.user,
            f"{MINTED_PREFIX}{publisher.id} ({describe(PublisherClaims.stored(publisher.claims))})"[
                :200
            ],
            (index.fullname,),
            now,
            now + MINTED_LIFETIME,
            "upload",
        )
        use = hashlib.sha256(f"{verified.issuer}\0{verified.claims['jti']}".encode()).hexdigest()
        who = audit.Actor(None, client_address.get())  # CI, acting as the index's owner
        try:
            await self._changes.write(_mint, who, record, publisher, verified, use)
        except IntegrityError:  # another node stored the same jti between our read and insert
            raise _reused() from None
        owner = self._auth.user(index.user)
        if owner is None:
            raise TokenRequestFailed("invalid-publisher", "the index's owner no longer exists")
        minted = self._auth.tokens.issue_scoped(
            index.user, owner.token_binding, record.id, record.expires
        )
        return {"success": True, "token": minted, "expires": int(record.expires)}


def _reused() -> TokenRequestFailed:
    return TokenRequestFailed("invalid-reuse-token", "invalid token: already used")


def _add(tx: Transaction, who: audit.Actor, fullname: str, row: PublisherRow) -> PublisherRow:
    if len(publisher_rows.of_index(tx.conn, row.index_id)) >= MAX_PUBLISHERS:
        raise BadRequest(f"{fullname} has {MAX_PUBLISHERS} publishers; remove one first")
    publisher_id = publisher_rows.add(tx.conn, row)
    detail = {"id": publisher_id, "issuer": row.issuer, "audience": row.audience, **row.claims}
    audit.record(tx, who, "publisher-add", fullname, detail)
    return PublisherRow(
        publisher_id,
        row.index_id,
        row.issuer,
        row.audience,
        row.claims,
        row.description,
        row.created,
        row.created_by,
    )


def _remove(
    tx: Transaction, who: audit.Actor, index_id: int, fullname: str, publisher_id: int
) -> None:
    removed = publisher_rows.remove(tx.conn, index_id, publisher_id)
    if removed is None:
        raise NotFound(f"no publisher {publisher_id} of {fullname}")
    detail = {"id": publisher_id, "issuer": removed.issuer, **removed.claims}
    audit.record(tx, who, "publisher-remove", fullname, detail)


def _mint(
    tx: Transaction,
    who: audit.Actor,
    record: TokenRecord,
    publisher: PublisherRow,
    verified: VerifiedToken,
    use: str,
) -> None:
    """Claim the ID token's single use, store the scoped token, record ``publisher-mint``."""
    if not publisher_rows.claim_token_use(tx.conn, use, verified.expires, record.created):
        raise _reused()
    owner_id = accounts.user_id(tx.conn, record.user)
    if owner_id is None:
        raise TokenRequestFailed("invalid-publisher", "the index's owner no longer exists")
    publisher_rows.drop_expired_minted(tx.conn, MINTED_PREFIX, record.created)
    create_token(tx.conn, record, owner_id)
    tx.log(None, None, ChangeKind.TOKEN_CREATED)
    claims = {k: verified.claims[k] for k in _AUDITED_CLAIMS if k in verified.claims}
    detail = {
        "publisher": publisher.id,
        "issuer": verified.issuer,
        "token": record.id,
        "acts_as": record.user,
        "expires": record.expires,
        "claims": claims,
    }
    audit.record(tx, who, "publisher-mint", record.indexes[0], detail)
