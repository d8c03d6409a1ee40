"""Directory users signing in (services/ldap.py): the directory decides, and the server keeps
an account for each directory user it has seen.

The first successful sign-in creates the account (``auth_source='ldap'``, no local password),
so that a directory user may own indexes, hold tokens and appear in ACLs like any other; it is
created once, with its changelog row, so every worker and node knows it. Each check against the
directory (not those answered from the credential cache) is a ``login`` audit entry; a refusal
is an Unauthorized, which the caller counts and records as any failed sign-in.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from cheeseboard.core.changes import ChangeKind
from cheeseboard.services.auth import Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.ldap import Directory, DirectoryRefused
from cheeseboard.services.throttle import client_address
from cheeseboard.store import audit_rows, identity_rows

SOURCE = "ldap"


class DirectorySignIn:
    """Checks passwords of directory users against the directory."""

    def __init__(self, directory: Directory, changes: ChangeFeed) -> None:
        self.directory = directory
        self._changes = changes

    @property
    def cache_seconds(self) -> float:
        return self.directory.settings.cache_seconds

    async def check(self, user: str, password: str, has_account: bool) -> frozenset[str]:
        """The user's directory groups; Unauthorized if the directory refuses the password,
        DirectoryUnavailable (503) if it cannot be asked."""
        try:
            found = await self.directory.authenticate(user, password)
        except DirectoryRefused as exc:
            raise Unauthorized(str(exc)) from exc
        client = client_address.get()
        try:
            await self._changes.write(_signed_in, user, client, not has_account)
        except IntegrityError:  # another worker or node made the account meanwhile
            await self._changes.write(_signed_in, user, client, False)
        if not has_account:  # whoever made it, the account is loaded here before we answer
            await self._changes.catch_up()
        return found.groups


def _signed_in(tx: Transaction, user: str, client: str | None, create: bool) -> None:
    if create and identity_rows.create_external_user(tx.conn, user, SOURCE):
        tx.log(None, None, ChangeKind.USER_CREATED)
        entry = audit_rows.AuditEntry(None, "user-create", user, {"via": SOURCE}, client)
        audit_rows.append(tx.conn, entry)
    audit_rows.append(tx.conn, audit_rows.AuditEntry(user, "login", user, {"via": SOURCE}, client))
