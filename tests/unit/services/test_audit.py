"""The audit log as the services write it (issue 21): each change to users, indexes, tokens and
releases, and each counted failed sign-in, leaves one entry with its actor, target and detail,
in the change's own transaction; only root reads the log."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from cheeseboard.core.tokens import TokenSigner
from cheeseboard.services import audit
from cheeseboard.services.auth import ANONYMOUS, AuthService, Forbidden, Unauthorized
from cheeseboard.services.container import AppServices
from cheeseboard.services.throttle import LoginThrottle, TooManyAttempts, client_address
from cheeseboard.services.users import hash_password
from cheeseboard.store import accounts, audit_rows
from cheeseboard.store.audit_rows import AuditRow
from cheeseboard.store.db import Database, migrate
from tests.support.packages import build_wheel
from tests.unit.services.support import ALICE, CHEAP_HASH, ROOT, stage, upload


async def _log(app: AppServices, action: str | None = None) -> list[AuditRow]:
    """The entries, oldest first."""
    rows = await audit.read_log(app.db, ROOT, action=action, limit=1000)
    return rows[::-1]


async def test_users_are_recorded_without_passwords(services: AppServices) -> None:
    """user-create, user-modify (the fields that changed), password-change, user-delete."""
    client_address.set("192.0.2.7")
    await services.accounts.create_user(ROOT, "carol", {"pwhash": CHEAP_HASH, "email": "c@x"})
    await services.accounts.modify_user(ROOT, "carol", {"email": "c@y", "title": None})
    await services.accounts.modify_user(ROOT, "carol", {"password": "new-secret-1"})
    await services.accounts.delete_user(ROOT, "carol")
    rows = [r for r in await _log(services) if r.target == "carol"]
    assert [(r.actor, r.action) for r in rows] == [
        ("root", "user-create"),
        ("root", "user-modify"),
        ("root", "password-change"),
        ("root", "user-delete"),
    ]
    assert rows[0].detail == {"fields": ["email"]}
    assert rows[1].detail == {"fields": ["email"]}  # title was None before: not a change
    assert all(r.client == "192.0.2.7" for r in rows)
    text = repr([r.to_json() for r in rows])
    assert "new-secret-1" not in text and "argon2" not in text and "c@y" not in text


async def test_indexes_are_recorded_with_the_changed_keys(services: AppServices) -> None:
    """index-create, index-modify with old and new values (long ones summarised), and
    index-delete; the actor is the acting user."""
    dev = await stage(services)
    await services.accounts.patch_index(ALICE, "alice", "dev", {"title": "Dev", "volatile": True})
    many = [f"pkg{i}" for i in range(100)]
    await services.accounts.patch_index(ALICE, "alice", "dev", {"mirror_whitelist": many})
    await services.accounts.delete_index(ALICE, "alice", "dev")
    rows = [r for r in await _log(services) if r.target == dev.fullname]
    assert [(r.actor, r.action) for r in rows] == [
        ("root", "index-create"),
        ("alice", "index-modify"),
        ("alice", "index-modify"),
        ("alice", "index-delete"),
    ]
    assert rows[0].detail["config"]["type"] == "stage"  # type: ignore[index]
    assert rows[1].detail == {"changed": {"title": {"old": None, "new": "Dev"}}}
    changed = rows[2].detail["changed"]
    assert changed == {"mirror_whitelist": {"old": [], "new": "(100 entries)"}}
    assert rows[3].detail == {"force": False}


async def test_a_forced_delete_records_the_dependents_it_changes(services: AppServices) -> None:
    """Deleting a base with force records the dependents' changed bases too."""
    await stage(services, "base")
    await stage(services, "top", bases="alice/base")
    await services.accounts.delete_index(ROOT, "alice", "base", force=True)
    (change,) = [r for r in await _log(services, "index-modify") if r.target == "alice/top"]
    assert change.detail["changed"] == {"bases": {"old": ["alice/base"], "new": []}}


async def test_tokens_are_recorded(services: AppServices) -> None:
    """token-create (id, scope, indexes; never the token), token-delete, token-revoke."""
    await stage(services)
    created = await services.tokens.create(ALICE, "alice", {"indexes": ["alice/dev"]})
    await services.tokens.revoke(ALICE, "alice", created["id"])
    login = await services.auth.login("alice", "alice-password")
    await services.tokens.revoke_login(login)
    rows = [r for r in await _log(services) if r.action.startswith("token-")]
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("alice", "token-create", "alice"),
        ("alice", "token-delete", "alice"),
        ("alice", "token-revoke", "alice"),
    ]
    assert rows[0].detail["id"] == created["id"] and rows[0].detail["scope"] == "upload"
    assert created["token"] not in repr([r.to_json() for r in rows])


async def test_yanks_and_removals_are_recorded(services: AppServices, tmp_path: Path) -> None:
    """yank (with its reason), unyank, and remove of a file, a version and a project."""
    dev = await stage(services)
    for version in ("1.0", "2.0", "3.0"):
        await upload(services, dev, build_wheel(tmp_path, "pkg", version))
    await services.releases.yank(ALICE, dev, "pkg", "1.0", "broken")
    await services.releases.yank(ALICE, dev, "pkg", "1.0", None)
    files = await services.releases.project_versions(dev, "pkg", "3.0")
    assert files.selected.version == "3.0"
    await services.releases.delete_version(ALICE, dev, "pkg", "2.0", force=False)
    await services.releases.delete_project(ROOT, dev, "pkg", force=False)
    rows = [r for r in await _log(services) if r.action in ("yank", "unyank", "remove")]
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("alice", "yank", "alice/dev/pkg==1.0"),
        ("alice", "unyank", "alice/dev/pkg==1.0"),
        ("alice", "remove", "alice/dev/pkg==2.0"),
        ("root", "remove", "alice/dev/pkg"),
    ]
    assert rows[0].detail == {"reason": "broken", "files": 1}
    assert rows[2].detail == {"releases": 1, "files": 1, "force": False}
    assert rows[3].detail == {"releases": 2, "files": 2, "force": False}


async def test_a_refused_change_records_nothing(services: AppServices) -> None:
    """Refusals change nothing, in the log neither; only root reads it."""
    await stage(services)
    before = await _log(services)
    with pytest.raises(Unauthorized):
        await services.accounts.patch_index(ANONYMOUS, "alice", "dev", {"title": "x"})
    assert await _log(services) == before
    with pytest.raises(Forbidden):
        await audit.read_log(services.db, ALICE)
    with pytest.raises(Unauthorized):
        await audit.read_log(services.db, ANONYMOUS)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'auth.sqlite'}"
    migrate(url)
    database = Database(url)
    pwhash = hash_password("alice-password")
    await database.write(lambda conn: accounts.create_user(conn, "alice", pwhash))
    yield database
    await database.close()


def _basic(user: str, password: str) -> Headers:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Headers({"authorization": f"Basic {encoded}"})


async def test_failed_sign_ins_are_recorded_as_the_throttle_counts_them(db: Database) -> None:
    """login-failed with the name tried and the address, never the secret; attempts the
    throttle refuses, and a burst sharing one check, add no entries."""
    auth = AuthService(db, TokenSigner(b"k" * 32), LoginThrottle(limit=2, window=60))
    await auth.load()
    client_address.set("198.51.100.4")
    burst = await asyncio.gather(
        *(auth.identify(_basic("alice", "guess-1")) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(outcome, Unauthorized) for outcome in burst)
    with pytest.raises(Unauthorized):
        await auth.login("alice", "guess-2")
    for _ in range(50):
        with pytest.raises(TooManyAttempts):
            await auth.login("alice", "guess-n")
    rows = await db.read(audit_rows.read)
    assert [(r.actor, r.action, r.target, r.client) for r in rows] == [
        (None, "login-failed", "alice", "198.51.100.4"),
    ] * 2
    assert [r.detail for r in rows] == [{"via": "login"}, {"via": "credentials"}]
    assert "guess" not in repr([r.to_json() for r in rows])
