"""Accounts and indexes under attack (issue 17, items 3, 4 and 10 and the low ones): who may set
a password hash and what a stored one may cost, what ``--restrict-modify`` and
``--open-registration`` grant (driven by the real devpi client too), list sizes, field types,
who sees emails, and that listing someone's index as a base can't make it undeletable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from cheeseboard.services.users import MAX_TIME_COST, hash_password
from tests.support.api import call
from tests.support.clients import installed, pip_install
from tests.support.devpi import DevpiClient
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret-1")
BOB = ("bob", "bob-secret-1")
MALLORY = ("mallory", "mallory-secret-1")
OPTIONS = "(see --restrict-modify / --open-registration)"


def _message(body: Any) -> str:
    return str(body.get("message", "")) if isinstance(body, dict) else str(body)


def _user(server: CheeseboardServer, name: str, password: str, **fields: str) -> None:
    status, body = call(server.url, "PUT", f"/{name}", {"password": password, **fields}, auth=ROOT)
    assert status == 201, body


def _index(server: CheeseboardServer, fullname: str, **config: Any) -> None:
    status, body = call(server.url, "PUT", f"/{fullname}", config, auth=ROOT)
    assert status == 200, body


def _login(server: CheeseboardServer, user: str, password: str) -> int:
    return call(server.url, "POST", "/+login", {"user": user, "password": password})[0]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    """An (empty) upstream for root/pypi: nothing here installs."""
    with UpstreamServer() as server:
        yield server


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Servers for this module, each in its own data directory, stopped at the end."""
    made = ServerFactory(tmp_path_factory.mktemp("account-security"))
    yield made
    made.stop_all()


@pytest.fixture(scope="module")
def default(factory: ServerFactory, upstream: UpstreamServer) -> CheeseboardServer:
    """A server with default options: alice (with alice/dev, email) and bob (bob/dev)."""
    server = factory.start(upstream.simple_url, name="default")
    _user(server, *ALICE, email="alice@example.org")
    _user(server, *BOB, email="bob@example.org")
    _index(server, "alice/dev", bases="root/pypi")
    _index(server, "bob/dev", bases="root/pypi")
    return server


@pytest.fixture(scope="module")
def restricted(factory: ServerFactory, upstream: UpstreamServer) -> CheeseboardServer:
    """``--restrict-modify root,:AUTHENTICATED:`` (a value the README offered): alice, mallory."""
    server = factory.start(
        upstream.simple_url, "--restrict-modify", "root,:AUTHENTICATED:", name="restricted"
    )
    _user(server, *ALICE)
    _user(server, *MALLORY)
    _index(server, "alice/dev", bases="root/pypi")
    return server


# --- item 3: user-chosen hash cost ---------------------------------------------------------


def test_users_cannot_choose_their_hash(default: CheeseboardServer) -> None:
    """``pwhash`` in PATCH /<self> is root's alone (it set every login's cost); password works."""
    cheap_but_chosen = hash_password(ALICE[1])
    status, body = call(default.url, "PATCH", "/alice", {"pwhash": cheap_but_chosen}, auth=ALICE)
    assert status == 403, body
    assert _message(body) == "setting pwhash is limited to root: send 'password' instead"
    status, body = call(default.url, "PATCH", "/alice", {"password": ALICE[1]}, auth=ALICE)
    assert status == 200, body


def test_root_cannot_store_a_hash_beyond_the_bounds(default: CheeseboardServer) -> None:
    """Root's PUT/PATCH with a hash past a bound is a 400 naming the bound; a sane one works."""
    hostile = PasswordHasher(time_cost=MAX_TIME_COST + 1, memory_cost=8, parallelism=1).hash("pw")
    status, body = call(default.url, "PUT", "/hashed", {"pwhash": hostile}, auth=ROOT)
    assert status == 400, body
    assert _message(body) == f"pwhash time cost t={MAX_TIME_COST + 1} exceeds the bound of 10"
    assert call(default.url, "GET", "/hashed")[0] == 404
    gigabyte = "$argon2id$v=19$m=1048576,t=4,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + "A" * 43
    status, body = call(default.url, "PATCH", "/bob", {"pwhash": gigabyte}, auth=ROOT)
    assert status == 400 and "memory cost m=1048576 exceeds the bound" in _message(body), body
    status, body = call(
        default.url, "PUT", "/hashed", {"pwhash": hash_password("chosen-by-root")}, auth=ROOT
    )
    assert status == 201, body
    assert _login(default, "hashed", "chosen-by-root") == 200


def test_a_stored_hash_beyond_the_bounds_is_never_run(
    factory: ServerFactory, upstream: UpstreamServer
) -> None:
    """A hash that got into the database (an old server, an import) is refused at login
    before argon2 runs, even with the right password, and the log says why."""
    server = factory.start(upstream.simple_url, name="stored-hash")
    _user(server, "carol", "carol-secret")
    server.stop()
    hostile = PasswordHasher(time_cost=MAX_TIME_COST + 1, memory_cost=8, parallelism=1)
    with sqlite3.connect(server.datadir / "cheeseboard.sqlite") as db:
        db.execute(
            "UPDATE users SET pwhash = ? WHERE name = 'carol'", (hostile.hash("carol-secret"),)
        )
    db.close()
    server.start()
    assert _login(server, "carol", "carol-secret") == 401
    status, _ = call(server.url, "PATCH", "/carol", {"title": "x"}, auth=("carol", "carol-secret"))
    assert status == 401
    assert "password check refused: pwhash time cost t=11 exceeds the bound of 10" in server.log()
    assert _login(server, *ROOT) == 200


# --- item 4: what --restrict-modify and --open-registration grant --------------------------


def test_default_refusals_name_the_options(default: CheeseboardServer) -> None:
    """Only root creates; each refusal is one sentence naming the options that would allow it."""
    for auth, status in ((None, 401), (ALICE, 403)):
        got, body = call(default.url, "PUT", "/newcomer", {"password": "pw"}, auth=auth)
        assert got == status and _message(body) == f"creating users is limited to root {OPTIONS}"
        got, body = call(default.url, "PUT", "/alice/other", {}, auth=auth)
        assert got == status and _message(body) == f"creating indexes is limited to root {OPTIONS}"
    got, body = call(default.url, "PATCH", "/bob/dev", ["title=mine"], auth=ALICE)
    assert got == 403 and _message(body) == (
        "changing or deleting indexes of bob is limited to bob and root "
        "(no option grants it to others)"
    )


def test_restrict_modify_grants_no_rights_over_others(restricted: CheeseboardServer) -> None:
    """With ``:AUTHENTICATED:`` mallory creates users and indexes, and can't take root's
    account (the review changed root's password), nor touch alice's account or index."""
    url = restricted.url
    status, body = call(url, "PATCH", "/root", {"password": "pwned"}, auth=MALLORY)
    assert status == 403, body
    assert _message(body) == (
        "changing or deleting user root is limited to root (no option grants it to others)"
    )
    assert _login(restricted, "root", "pwned") == 401
    assert _login(restricted, *ROOT) == 200
    for method, path, body_ in [
        ("PATCH", "/alice", {"password": "pwned"}),
        ("DELETE", "/alice", None),
        ("PATCH", "/alice/dev", ["acl_upload+=mallory"]),
        ("DELETE", "/alice/dev", None),
    ]:
        status, body = call(url, method, path, body_, auth=MALLORY)
        assert status == 403, (method, path, body)
    assert _login(restricted, *ALICE) == 200
    assert call(url, "GET", "/alice/dev")[1]["result"]["acl_upload"] == ["alice"]
    # What the option does grant: creating.
    assert call(url, "PUT", "/newbie", {"password": "newbie-pw"}, auth=MALLORY)[0] == 201
    assert call(url, "PUT", "/newbie/dev", {"bases": "root/pypi"}, auth=MALLORY)[0] == 200
    assert call(url, "PATCH", "/newbie/dev", ["title=x"], auth=MALLORY)[0] == 403
    status, body = call(url, "PUT", "/root/evil", {}, auth=MALLORY)
    assert status == 403 and "creating indexes of root is limited to root" in _message(body)
    status, body = call(
        url, "PUT", "/mallory/m", {"type": "mirror", "mirror_url": "http://10.0.0.1/"}, auth=MALLORY
    )
    assert status == 403 and "creating mirror indexes is limited to root" in _message(body)
    assert call(url, "PUT", "/newcomer", {"password": "pw"})[0] == 401  # anonymous: not in it


def test_only_root_points_a_mirror(restricted: CheeseboardServer, upstream: UpstreamServer) -> None:
    """The owner of a mirror root made may retitle it, but not re-point its mirror_url."""
    url = restricted.url
    _index(restricted, "alice/mirror", type="mirror", mirror_url=upstream.simple_url)
    status, body = call(
        url, "PATCH", "/alice/mirror", ["mirror_url=http://169.254.169.254/"], auth=ALICE
    )
    assert status == 403 and _message(body) == "changing mirror_url is limited to root", body
    status, body = call(
        url, "PATCH", "/alice/mirror", {"mirror_url": "http://127.0.0.1:1/"}, auth=ALICE
    )
    assert status == 403, body
    assert call(url, "PATCH", "/alice/mirror", ["title=Mine"], auth=ALICE)[0] == 200
    config = call(url, "GET", "/alice/mirror")[1]["result"]
    assert config["mirror_url"] == upstream.simple_url and config["title"] == "Mine"
    assert (
        call(url, "PATCH", "/alice/mirror", ["mirror_url=http://x.example/"], auth=ROOT)[0] == 200
    )


def test_open_registration_lets_devpi_provisioning_scripts_run(
    factory: ServerFactory, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """``--open-registration`` is devpi's default: the real client registers a user anonymously,
    logs in as it, creates its index, uploads with devpi and installs with pip (issue 22); it
    can't create indexes for others, nor mirrors."""
    server = factory.start(upstream.simple_url, "--open-registration", name="open")
    devpi = DevpiClient(tmp_path, server_log=server.log)
    devpi.use(server.url)
    out = devpi.ok("user", "-c", "newdev", "password=newdev-pw-1", "email=new@example.org")
    assert "user created: newdev" in out
    devpi.login("newdev", "newdev-pw-1")
    out = devpi.ok("index", "-c", "dev", "bases=root/pypi")
    assert "newdev/dev" in out and "bases=root/pypi" in out
    devpi.ok("use", "newdev/dev")
    config = call(server.url, "GET", "/newdev/dev")[1]["result"]
    assert config["bases"] == ["root/pypi"] and config["acl_upload"] == ["newdev"]
    # Then the rest of the classic sequence (issue 22): upload with the client, install with pip.
    wheel = build_wheel(tmp_path / "dists", "newdev-lib", "1.0")
    out = devpi.ok("upload", str(wheel.path))
    assert wheel.filename in out
    target = tmp_path / "installed"
    done = pip_install(server.url + "newdev/dev/+simple/", target, "newdev-lib")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "newdev_lib" in installed(target)
    out = devpi.fails("index", "-c", "root/dev")
    assert "403" in out and "creating indexes of root is limited to root" in out
    out = devpi.fails("index", "-c", "mirror", "type=mirror", "mirror_url=http://10.1.2.3/")
    assert "403" in out and "creating mirror indexes is limited to root" in out
    # Registering gives no rights over anyone else.
    status, body = call(
        server.url, "PATCH", "/root", {"password": "x"}, auth=("newdev", "newdev-pw-1")
    )
    assert status == 403, body
    status, body = call(server.url, "PUT", "/other/dev", {}, auth=("newdev", "newdev-pw-1"))
    assert status == 403, body  # refused before anything is looked up; for an existing one too:
    assert call(server.url, "PUT", "/other", {"password": "other-pw"})[0] == 201
    status, body = call(server.url, "PUT", "/other/dev", {}, auth=("newdev", "newdev-pw-1"))
    assert status == 403 and "users under their own name" in _message(body), body
    assert call(server.url, "PUT", "/other/dev", {})[0] == 401


# --- item 10: list sizes -------------------------------------------------------------------


def test_a_25k_name_list_edit_is_refused(default: CheeseboardServer) -> None:
    """The review's 25,000-name ``acl_upload`` edit is a 400 naming the bound, and the index is
    unchanged; 1,000 names (the bound) are accepted."""
    names = ",".join(f"user{i}" for i in range(25_000))
    for item in (f"acl_upload+={names}", f"acl_upload-={names}"):
        status, body = call(default.url, "PATCH", "/alice/dev", [item], auth=ALICE)
        assert status == 400, body
        assert _message(body) == "The 'acl_upload' setting can hold at most 1000 entries, not 25000"
    assert call(default.url, "GET", "/alice/dev")[1]["result"]["acl_upload"] == ["alice"]
    thousand = ",".join(f"user{i}" for i in range(999))
    status, body = call(default.url, "PATCH", "/alice/dev", [f"acl_upload+={thousand}"], auth=ALICE)
    assert status == 200 and len(body["result"]["acl_upload"]) == 1000, body
    status, body = call(default.url, "PATCH", "/alice/dev", [f"acl_upload-={thousand}"], auth=ALICE)
    assert status == 200 and body["result"]["acl_upload"] == ["alice"], body


# --- low items -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "field", "kind"),
    [
        ("PUT", {"password": "pw", "email": ["x"]}, "email", "a list"),
        ("PUT", {"password": "pw", "title": {}}, "title", "an object"),
        ("PUT", {"password": ["pw"]}, "password", None),
        ("PATCH", {"description": [1, 2]}, "description", "a list"),
        ("PATCH", {"title": {}}, "title", "an object"),
        ("PATCH", {"email": 5}, "email", "a number"),
    ],
)
def test_user_fields_must_be_text(
    default: CheeseboardServer, method: str, body: dict[str, Any], field: str, kind: str | None
) -> None:
    """A list or object as a user field is a 400 naming the field (it was a 500)."""
    path = "/typed" if method == "PUT" else "/bob"
    status, answer = call(default.url, method, path, body, auth=ROOT)
    assert status == 400, answer
    expected = f"user field '{field}' must be a string"
    assert _message(answer) == (f"{expected}, not {kind}" if kind else expected)
    assert call(default.url, "GET", "/typed")[0] == 404


def test_emails_show_to_their_user_and_root_only(default: CheeseboardServer) -> None:
    """GET / and GET /<user> hide emails from anonymous callers and other users."""
    for auth, sees in [
        (None, set()),
        (("alice", "wrong password"), set()),
        (BOB, {"bob"}),
        (ALICE, {"alice"}),
        (ROOT, {"alice", "bob"}),
    ]:
        status, body = call(default.url, "GET", "/", auth=auth)
        assert status == 200, body
        users = body["result"]
        assert {"alice", "bob", "root"} <= set(users)
        assert {name for name, config in users.items() if "email" in config} == sees, auth
        status, body = call(default.url, "GET", "/alice", auth=auth)
        assert status == 200 and ("email" in body["result"]) == ("alice" in sees), auth
    assert call(default.url, "GET", "/alice", auth=ALICE)[1]["result"]["email"] == (
        "alice@example.org"
    )


def test_listing_an_index_as_a_base_cannot_make_it_undeletable(
    factory: ServerFactory, upstream: UpstreamServer
) -> None:
    """Bob lists alice/dev as a base; alice (or root) deletes it with ?force, and bob's bases
    lose it in the same transaction; without ?force the answer names the dependents."""
    server = factory.start(upstream.simple_url, name="bases")
    _user(server, *ALICE)
    _user(server, *BOB)
    for fullname in ("alice/dev", "alice/old", "bob/dev"):
        _index(server, fullname, bases="root/pypi")
    assert call(server.url, "PATCH", "/bob/dev", ["bases+=alice/dev,alice/old"], auth=BOB)[0] == 200
    status, body = call(server.url, "DELETE", "/alice/dev", auth=ALICE)
    assert status == 409, body
    assert _message(body) == (
        "index alice/dev is a base of bob/dev: "
        "delete with ?force to remove it from the bases of the indexes using it"
    )
    assert call(server.url, "DELETE", "/alice/dev?force", auth=BOB)[0] == 403
    status, body = call(server.url, "DELETE", "/alice/dev?force", auth=ALICE)
    assert status == 201, body
    assert call(server.url, "GET", "/bob/dev")[1]["result"]["bases"] == ["root/pypi", "alice/old"]
    # Root, too, and deleting the whole user.
    status, body = call(server.url, "DELETE", "/alice", auth=ROOT)
    assert status == 409 and "alice/old is a base of bob/dev" in _message(body), body
    status, body = call(server.url, "DELETE", "/alice?force", auth=ROOT)
    assert status == 200, body
    assert call(server.url, "GET", "/bob/dev")[1]["result"]["bases"] == ["root/pypi"]
    assert call(server.url, "GET", "/alice")[0] == 404


def test_users_delete_their_own_account(default: CheeseboardServer) -> None:
    """Deleting an account is its user's or root's right: bob may not delete alice."""
    assert call(default.url, "PUT", "/leaving", {"password": "leaving-pw"}, auth=ROOT)[0] == 201
    assert call(default.url, "DELETE", "/leaving", auth=BOB)[0] == 403
    assert call(default.url, "DELETE", "/leaving", auth=("leaving", "leaving-pw"))[0] == 200
    assert call(default.url, "GET", "/leaving")[0] == 404
