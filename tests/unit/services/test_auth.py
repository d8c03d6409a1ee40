"""The verified-credential cache of AuthService, over a real (SQLite) store."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from cheeseboard.core.tokens import TokenSigner
from cheeseboard.services.auth import AuthService, Unauthorized
from cheeseboard.services.throttle import LoginThrottle, TooManyAttempts, client_address
from cheeseboard.services.users import hash_password
from cheeseboard.store import accounts
from cheeseboard.store.db import Database, migrate


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'auth.sqlite'}"
    migrate(url)
    database = Database(url)
    await database.write(accounts.create_user, "alice", hash_password("alice-password"))
    yield database
    await database.close()


def _devpi_auth(user: str, secret: str) -> Headers:
    return Headers({"x-devpi-auth": base64.b64encode(f"{user}:{secret}".encode()).decode()})


async def test_a_cached_token_stops_working_when_it_expires(db: Database) -> None:
    """The cache keeps a token's expiry: an expired token is refused although it was cached."""
    auth = AuthService(db, TokenSigner(b"k" * 32, lifetime=2))
    await auth.load()
    record = auth.user("alice")
    assert record is not None
    token = auth.issue_token(record)
    headers = _devpi_auth("alice", token)
    assert (await auth.identify(headers)).user == "alice"
    assert (await auth.identify(headers)).user == "alice"  # from the cache
    expires = auth.check_token(token, "alice").expires
    assert expires is not None
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthorized, match="token expired"):
        await auth.identify(headers)


async def test_concurrent_requests_with_the_same_credentials_share_one_check(
    db: Database,
) -> None:
    """A client's parallel requests with one password cost one check and one attempt."""
    auth = AuthService(db, TokenSigner(b"k" * 32), LoginThrottle(limit=2, window=60))
    await auth.load()
    wrong = _basic("alice", "guess-1")
    outcomes = await asyncio.gather(
        *(auth.identify(wrong) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(outcome, Unauthorized) for outcome in outcomes), outcomes
    with pytest.raises(Unauthorized):  # the burst counted once: a second guess is checked
        await auth.identify(_basic("alice", "guess-2"))
    with pytest.raises(TooManyAttempts):
        await auth.identify(_basic("alice", "guess-3"))
    right = _basic("alice", "alice-password")
    with pytest.raises(TooManyAttempts):  # blocked from here, right password or not ...
        await auth.identify(right)
    client_address.set("10.0.0.2")  # ... but not from the owner's own address
    found = await asyncio.gather(*(auth.identify(right) for _ in range(20)))
    assert {identity.user for identity in found} == {"alice"}


def _basic(user: str, password: str) -> Headers:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Headers({"authorization": f"Basic {encoded}"})


async def test_the_hot_paths_identity_is_remembered_until_it_expires_or_accounts_change(
    db: Database,
) -> None:
    """``identify_known`` gives the hot path one object per credentials as sent (its read
    decisions are keyed by it), forgets it when a login token expires and when the accounts
    change, and never shares it between different header values."""
    auth = AuthService(db, TokenSigner(b"k" * 32, lifetime=2))
    await auth.load()
    record = auth.user("alice")
    assert record is not None
    password = _basic("alice", "alice-password")
    assert auth.identify_known(password, None) is None  # not checked yet: the app checks it
    assert (await auth.identify(password)).user == "alice"
    first = auth.identify_known(password, None)
    assert first is not None and first.user == "alice"
    assert auth.identify_known(password, None) is first
    # The same credentials sent differently are their own entry, with an equal identity.
    spaced = Headers({"authorization": password["authorization"] + " "})
    assert auth.identify_known(spaced, None) == first
    assert auth.identify_known(spaced, None) is not first
    await db.write(accounts.update_user, "alice", pwhash=hash_password("new-password"))
    await auth.load()  # what a logged change of the accounts does on every worker
    assert auth.identify_known(password, None) is None
    with pytest.raises(Unauthorized):
        await auth.identify(password)

    token = auth.issue_token(auth.user("alice") or record)
    by_token = _devpi_auth("alice", token)
    assert (await auth.identify(by_token)).user == "alice"
    remembered = auth.identify_known(by_token, None)
    assert remembered is not None and auth.identify_known(by_token, None) is remembered
    expires = auth.check_token(token, "alice").expires
    assert expires is not None
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    assert auth.identify_known(by_token, None) is None  # expired: the app refuses it


@pytest.mark.parametrize(
    "header",
    [
        {"authorization": "Basic \u00e9\u00e9\u00e9\u00e9"},
        {"authorization": "Basic bG9jYWw6eA"},  # no padding
        {"x-devpi-auth": "\u00e9t\u00e9"},
        {"authorization": "Basic " + base64.b64encode(b"alice:\xff").decode()},
    ],
)
async def test_malformed_credentials_are_unauthorized_not_errors(
    db: Database, header: dict[str, str]
) -> None:
    auth = AuthService(db, TokenSigner(b"k" * 32))
    await auth.load()
    with pytest.raises(Unauthorized, match="malformed credentials"):
        await auth.identify(Headers(header))
    assert auth.identify_known(Headers(header), None) is None
