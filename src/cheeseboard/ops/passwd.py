"""Setting a user's password from outside the server (``cheeseboard-server passwd``, issue 23):
the way back in when root's password, printed once at the first start, is lost.

It does what a password change through the API does (services/accounts.py), in one transaction:
the new argon2 hash (which ends every token and session signed over the old one: tokens bind
to the account and its hash, store/records.py), a ``USER_MODIFIED`` change, and a
``password-change`` audit entry. Running servers reload their users from the changelog; the
serial file wakes this node's at once and PostgreSQL's notification the other nodes', as the
offline advisories import does (ops/advisories.py).
"""

from __future__ import annotations

from pathlib import Path

from cheeseboard.core.changes import ChangeKind
from cheeseboard.services.users import hash_password
from cheeseboard.store import accounts, audit_rows, changelog_rows, pg_changes
from cheeseboard.store.audit_rows import AuditEntry
from cheeseboard.store.serial import publish

ACTOR = "server-cli"
"""The audit log's actor for changes made with ``cheeseboard-server`` on the server's host."""


class PasswordError(Exception):
    """Raised when the password cannot be set; the message says why."""


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be set, else None: the API's rule (services/accounts.py sets
    a password only from a non-empty ``password``)."""
    if not password:
        return "the password must not be empty"
    return None


def set_password(db_url: str, user: str, password: str, serial_path: Path | None) -> int:
    """Store ``password`` for ``user`` in the database at ``db_url``; returns the serial of the
    change. Raises PasswordError for an unknown user or a refused password."""
    from cheeseboard.store.db import engine_for

    problem = password_problem(password)
    if problem is not None:
        raise PasswordError(problem)
    pwhash = hash_password(password)  # about 0.1 s of CPU: before the write lock is taken
    engine = engine_for(db_url, write=True)
    try:
        with engine.begin() as conn:
            if not accounts.update_user(conn, user, pwhash=pwhash):
                raise PasswordError(f"no user {user!r}")
            serial = changelog_rows.log_change(conn, None, None, ChangeKind.USER_MODIFIED)
            audit_rows.append(conn, AuditEntry(ACTOR, "password-change", user))
            pg_changes.notify(conn, serial)
    finally:
        engine.dispose()
    if serial_path is not None:
        publish(serial_path, serial)
    return serial
