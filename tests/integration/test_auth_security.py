"""Sign-in under attack (issue 17): a burst of concurrent guesses gets exactly the limit of
password checks and leaves the server responsive; signing out revokes the session's token
everywhere; a deleted and recreated user does not bring its old tokens back."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from importlib import resources
from pathlib import Path
from threading import Barrier
from typing import TypeVar

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from cheeseboard.services.users import hash_password
from cheeseboard.store.db import engine_url, migrate
from tests.integration.test_dump import cli
from tests.integration.test_web_pages import Browser
from tests.support.api import basic, call
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-long-secret-1")
GUESSES = 60
T = TypeVar("T")


def _request(
    url: str, method: str, path: str, headers: dict[str, str], body: object = None
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers = {**headers, "Content-Type": "application/json"}
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Accept": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _attempt(url: str, door: str, user: str, password: str, client: str | None = None) -> int:
    """One sign-in through ``door``: devpi's ``/+login`` or Basic auth on an API call."""
    headers = {"X-Forwarded-For": client} if client else {}
    if door == "login":
        body = {"user": user, "password": password}
        return _request(url, "POST", "/+login", headers, body)[0]
    headers["Authorization"] = basic(user, password)
    return _request(url, "GET", f"/{user}/+tokens", headers)[0]


def _timed(fn: Callable[..., T], *args: str) -> tuple[T, float]:
    """``fn(*args)`` and how long it took, in seconds."""
    started = time.monotonic()
    outcome = fn(*args)
    return outcome, time.monotonic() - started


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(mode="html") as started:
        yield started


@pytest.mark.parametrize("door", ["basic", "login"])
def test_a_burst_of_guesses_gets_exactly_the_limit_of_checks(
    server_factory: ServerFactory, upstream: UpstreamServer, door: str
) -> None:
    """60 concurrent wrong passwords with --login-attempts 3: three are checked (401), the rest
    and the right password sent during the burst get 429; the owner from another address and
    an anonymous caller are answered promptly meanwhile."""
    server = server_factory.start(
        upstream.simple_url, "--login-attempts", "3", "--trusted-proxies", "127.0.0.1"
    )
    assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    start = Barrier(GUESSES)

    def guess(number: int) -> int:
        start.wait(timeout=30)
        return _attempt(server.url, door, "alice", f"guess-{number}", "203.0.113.9")

    with ThreadPoolExecutor(GUESSES + 1) as pool:
        guesses = [pool.submit(guess, number) for number in range(GUESSES)]
        # Once one guess is refused, the limit is taken: the right password comes mid-burst.
        pending: set[Future[int]] = set(guesses)
        while pending:
            done, pending = wait(pending, timeout=30, return_when=FIRST_COMPLETED)
            if any(f.result() == 429 for f in done):
                break
        right = pool.submit(_attempt, server.url, door, *ALICE, "203.0.113.9")
        (anonymous, _), anonymous_s = _timed(call, server.url, "GET", "/+api")
        owner, owner_s = _timed(_attempt, server.url, door, *ALICE, "198.51.100.7")
        statuses = [f.result() for f in guesses]
    print(
        f"\n{door}: checked {statuses.count(401)}, refused {statuses.count(429)}, "
        f"right password mid-burst {right.result()}, anonymous /+api {anonymous_s:.3f} s, "
        f"owner from own address {owner} in {owner_s:.3f} s"
    )
    assert statuses.count(401) == 3, statuses
    assert statuses.count(429) == GUESSES - 3
    assert right.result() == 429
    assert anonymous == 200 and anonymous_s < 5
    assert owner == 200 and owner_s < 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("auth"))
    with UpstreamServer(mode="html") as upstream:
        try:
            yield factory.start(upstream.simple_url)
        finally:
            factory.stop_all()


def _devpi_auth(user: str, token: str) -> dict[str, str]:
    return {"X-Devpi-Auth": base64.b64encode(f"{user}:{token}".encode()).decode()}


def _as(token_headers: dict[str, str], url: str, user: str) -> int:
    return _request(url, "GET", f"/{user}/+tokens", token_headers)[0]


def test_signing_out_revokes_the_session_token(server: CheeseboardServer) -> None:
    """After sign-out the old cookie is a signed-out session, and its token is refused as
    X-Devpi-Auth and as Basic credentials (also by a worker that had cached it)."""
    status, _ = call(server.url, "PUT", "/carol", {"password": "carol-password"}, auth=ROOT)
    assert status == 201
    browser = Browser(server.url)
    assert browser.login("carol", "carol-password") == 303
    token = next(c.value for c in browser.jar if c.name == "cheeseboard_session")
    assert token
    cookie = {"Cookie": f"cheeseboard_session={token}"}
    replay = Browser(server.url)
    assert replay.request("GET", "/+web/login", headers=cookie)[0] == 303  # signed in
    assert _as(_devpi_auth("carol", token), server.url, "carol") == 200  # now cached
    assert _as({"Authorization": basic("carol", token)}, server.url, "carol") == 200

    _, _, page = browser.get("/")
    status, _, _ = browser.request("POST", "/+web/logout", {"csrf_token": browser.csrf(page)})
    assert status == 303
    status, _, page = replay.request("GET", "/+web/login", headers=cookie)
    assert status == 200 and 'name="password"' in page  # the login form: signed out
    assert _as(_devpi_auth("carol", token), server.url, "carol") == 401
    assert _as({"Authorization": basic("carol", token)}, server.url, "carol") == 401
    assert _as({"Authorization": basic("__token__", token)}, server.url, "carol") == 401
    # Signing in again works, with a new token.
    assert browser.login("carol", "carol-password") == 303
    again = next(c.value for c in browser.jar if c.name == "cheeseboard_session")
    assert again != token
    assert _as(_devpi_auth("carol", again), server.url, "carol") == 200


def test_a_recreated_user_does_not_revive_old_tokens(server: CheeseboardServer) -> None:
    """Deleting dave and creating him again with the very same password hash ends the old
    login and scoped tokens: tokens belong to the account, not to its name and hash."""
    pwhash = hash_password("dave-password")
    assert call(server.url, "PUT", "/dave", {"pwhash": pwhash}, auth=ROOT)[0] == 201
    assert call(server.url, "PUT", "/dave/dev", {"bases": []}, auth=ROOT)[0] == 200
    status, login = call(
        server.url, "POST", "/+login", {"user": "dave", "password": "dave-password"}
    )
    assert status == 200
    token = login["result"]["password"]
    status, made = call(
        server.url, "POST", "/dave/+tokens", {"indexes": ["dave/dev"]}, auth=("dave", token)
    )
    assert status == 201
    scoped = made["result"]["token"]
    assert _as(_devpi_auth("dave", token), server.url, "dave") == 200
    assert _as({"Authorization": basic("__token__", scoped)}, server.url, "dave") == 403

    assert call(server.url, "DELETE", "/dave", auth=ROOT)[0] == 200
    assert call(server.url, "PUT", "/dave", {"pwhash": pwhash}, auth=ROOT)[0] == 201
    assert _as(_devpi_auth("dave", token), server.url, "dave") == 401
    assert _as({"Authorization": basic("dave", token)}, server.url, "dave") == 401
    assert _as({"Authorization": basic("__token__", scoped)}, server.url, "dave") == 401
    # The new account signs in with the same password and gets tokens of its own.
    status, login = call(
        server.url, "POST", "/+login", {"user": "dave", "password": "dave-password"}
    )
    assert status == 200
    assert _as(_devpi_auth("dave", login["result"]["password"]), server.url, "dave") == 200


def test_a_dump_carries_no_account_identity(server: CheeseboardServer, tmp_path: Path) -> None:
    """Exported users have no ``uid``: an imported user is a new account for tokens."""
    status, _ = call(server.url, "PUT", "/erin", {"password": "erin-password"}, auth=ROOT)
    assert status == 201
    done = cli("export", "--datadir", str(server.datadir), str(tmp_path / "dump"))
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "dump" / "records.jsonl").read_text().splitlines()
    users = [record for record in map(json.loads, lines) if record["kind"] == "user"]
    assert "erin" in {user["name"] for user in users}
    assert all("uid" not in user for user in users)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migration_gives_existing_users_their_own_identity(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """0005 on a store with users: each gets a distinct uid; PostgreSQL enforces one."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    if dialect == "postgresql":
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(engine_url(url))
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("cheeseboard.store") / "migrations")
    )
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
            for name in ("root", "alice"):
                conn.execute(
                    text("INSERT INTO users (name, pwhash, created) VALUES (:n, 'h', 0)"),
                    {"n": name},
                )
        migrate(url)
        with engine.connect() as conn:
            uids = conn.execute(text("SELECT uid FROM users")).scalars().all()
            assert len(uids) == 2 and len(set(uids)) == 2 and all(len(u) == 32 for u in uids)
            assert conn.execute(text("SELECT count(*) FROM revoked_tokens")).scalar() == 0
            if dialect == "postgresql":
                with pytest.raises(IntegrityError):
                    conn.execute(
                        text("INSERT INTO users (name, pwhash, created) VALUES ('x', 'h', 0)")
                    )
    finally:
        engine.dispose()
