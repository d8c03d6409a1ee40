"""The management API: users and indexes, permissions (401 vs 403) and validation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.api import call, twine_upload
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
OTHER = ("other", "other-secret")
WHO = {
    "anonymous": None,
    "wrong password": ("local", "nope"),
    "other user": OTHER,
    "owner": LOCAL,
    "root": ROOT,
}


def _populate(server: CheeseboardServer) -> CheeseboardServer:
    for user, password in (LOCAL, OTHER):
        assert call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)[0] == 201
    status, body = call(server.url, "PUT", "/local/stable", {"bases": "root/pypi"}, auth=ROOT)
    assert status == 200, body
    return server


@pytest.fixture(scope="module")
def module_server(
    dists: dict[str, list[Dist]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CheeseboardServer]:
    """One server for the tests that change users and indexes; root/pypi mirrors an HTML upstream.

    The login throttle counts per user, across tests: the tests here send local's wrong password
    7 times in all, under the default limit of 10.
    """
    with UpstreamServer(mode="html") as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        factory = ServerFactory(tmp_path_factory.mktemp("accounts-mutable"))
        try:
            yield factory.start(upstream.simple_url)
        finally:
            factory.stop_all()


@pytest.fixture
def server(module_server: CheeseboardServer) -> Iterator[CheeseboardServer]:
    """root/pypi plus users local and other, and local/stable (volatile) owned by local.

    Created for each test and deleted after it (with every index and file they own), so each
    test starts from the same state on the module's server.
    """
    yield _populate(module_server)
    for user in ("local", "other", "newbie"):
        status, body = call(module_server.url, "DELETE", f"/{user}", auth=ROOT)
        assert status in (200, 404), (user, status, body)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    """The same, shared by tests that change nothing (requests that must be refused)."""
    with UpstreamServer() as upstream:
        factory = ServerFactory(tmp_path_factory.mktemp("accounts"))
        try:
            yield _populate(factory.start(upstream.simple_url))
        finally:
            factory.stop_all()


Action = Callable[[CheeseboardServer, tuple[str, str] | None], int]
# action -> (how to do it, how to see that nothing changed, expected status per principal)
ACTIONS: dict[str, tuple[Action, Callable[[CheeseboardServer], bool], dict[str, int]]] = {
    "create user": (
        lambda s, a: call(s.url, "PUT", "/newbie", {"password": "pw"}, auth=a)[0],
        lambda s: call(s.url, "GET", "/newbie")[0] == 404,
        {"anonymous": 401, "wrong password": 401, "other user": 403, "owner": 403, "root": 201},
    ),
    "create index": (
        lambda s, a: call(s.url, "PUT", "/local/dev", {}, auth=a)[0],
        lambda s: call(s.url, "GET", "/local/dev")[0] == 404,
        {"anonymous": 401, "wrong password": 401, "other user": 403, "owner": 403, "root": 200},
    ),
    "modify index": (
        lambda s, a: call(s.url, "PATCH", "/local/stable", ["title=Changed"], auth=a)[0],
        lambda s: "title" not in call(s.url, "GET", "/local/stable")[1]["result"],
        {"anonymous": 401, "wrong password": 401, "other user": 403, "owner": 200, "root": 200},
    ),
    "delete index": (
        lambda s, a: call(s.url, "DELETE", "/local/stable", auth=a)[0],
        lambda s: call(s.url, "GET", "/local/stable")[0] == 200,
        {"anonymous": 401, "wrong password": 401, "other user": 403, "owner": 201, "root": 201},
    ),
    "modify user": (
        lambda s, a: call(s.url, "PATCH", "/local", {"email": "x@example.org"}, auth=a)[0],
        # emails show to the user and root only
        lambda s: "email" not in call(s.url, "GET", "/local", auth=ROOT)[1]["result"],
        {"anonymous": 401, "wrong password": 401, "other user": 403, "owner": 200, "root": 200},
    ),
    "delete user": (  # users delete their own account (as in devpi), others only as root
        lambda s, a: call(s.url, "DELETE", "/local", auth=a)[0],
        lambda s: call(s.url, "GET", "/local")[0] == 200,
        {"anonymous": 401, "wrong password": 401, "other user": 403, "owner": 200, "root": 200},
    ),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_permission_matrix(server: CheeseboardServer, action: str) -> None:
    """Each principal gets the documented status, and a refusal changes nothing."""
    do, unchanged, expected = ACTIONS[action]
    for who in ("anonymous", "wrong password", "other user", "owner", "root"):
        status = do(server, WHO[who])
        assert status == expected[who], f"{action} as {who}: {status}"
        if status >= 400:
            assert unchanged(server), f"{action} as {who} changed something"
        else:
            return  # the first success changed the state the next principals would act on


def test_users_and_indexes_in_devpi_shape(server: CheeseboardServer) -> None:
    """GET / lists users with their indexes; index config has devpi's keys and defaults."""
    status, body = call(server.url, "GET", "/")
    assert status == 200 and body["type"] == "list:userconfig"
    assert set(body["result"]) == {"root", "local", "other"}
    assert body["result"]["root"]["indexes"]["pypi"]["type"] == "mirror"
    status, body = call(server.url, "GET", "/local/stable")
    assert status == 200 and body["type"] == "indexconfig"
    config = body["result"]
    assert config["type"] == "stage" and config["volatile"] is True
    assert config["acl_upload"] == ["local"] and config["mirror_whitelist"] == []
    assert config["mirror_whitelist_inheritance"] == "intersection"
    assert config["projects"] == []
    assert "projects" not in call(server.url, "GET", "/local/stable?no_projects=")[1]["result"]


def _message(body: Any) -> str:
    return str(body.get("message", "")) if isinstance(body, dict) else str(body)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("PUT", "/local/stable", {}, 409, "exists"),
        ("PUT", "/local", {"password": "x"}, 409, "already exists"),
        ("PUT", "/nopw", {"email": "a@b"}, 400, "password needs to be set"),
        ("PUT", "/bad%20user", {"password": "x"}, 400, "characters"),
        ("PUT", "/local/x", {"bases": "nobody/nothing"}, 400, "does not exist"),
        ("PUT", "/local/x", {"bogus": 1}, 400, "unexpected keyword"),
        ("PUT", "/local/x", {"type": "weird"}, 400, "weird"),
        ("PUT", "/nobody/x", {}, 404, "no user"),
        ("PATCH", "/local/stable", ["volatile=maybe"], 400, "volatile"),
        ("PATCH", "/local/stable", "not a patch", 400, "PATCH body"),
        ("DELETE", "/root", None, 403, "root"),
    ],
)
def test_bad_requests_are_refused_clearly(
    shared_server: CheeseboardServer, method: str, path: str, body: Any, status: int, text: str
) -> None:
    """Each bad request gets its status and a message that says what is wrong."""
    got, answer = call(shared_server.url, method, path, body, auth=ROOT)
    assert got == status, answer
    assert text in _message(answer), answer


def test_index_in_use_as_base_needs_force_to_delete(server: CheeseboardServer) -> None:
    """Deleting an index another index inherits from is refused unless ``?force``, which drops
    it from the dependents' bases (tests/integration/test_account_security.py has the rest)."""
    assert call(server.url, "PUT", "/local/child", {"bases": "local/stable"}, auth=ROOT)[0] == 200
    status, body = call(server.url, "DELETE", "/local/stable", auth=ROOT)
    assert status == 409 and "base of local/child" in _message(body)
    assert call(server.url, "DELETE", "/local/stable?force", auth=ROOT)[0] == 201
    assert call(server.url, "GET", "/local/child")[1]["result"]["bases"] == []


def test_login_token_works_until_password_changes(server: CheeseboardServer, tmp_path: Any) -> None:
    """POST /+login gives a token usable as password (API and twine); a new password kills it."""
    status, body = call(server.url, "POST", "/+login", {"user": "local", "password": LOCAL[1]})
    assert status == 200 and body["type"] == "proxyauth", body
    token = body["result"]["password"]
    assert body["result"]["expiration"] == 36000
    assert call(server.url, "PATCH", "/local/stable", ["title=T"], auth=("local", token))[0] == 200
    wheel = build_wheel(tmp_path, "tokened", "1.0")
    assert (
        call(server.url, "PATCH", "/local/stable", ["allow_upstream_names=True"], auth=ROOT)[0]
        == 200
    )
    upload = twine_upload(f"{server.url}local/stable/", "local", token, wheel.path)
    assert upload.returncode == 0, upload.stdout
    bad = call(server.url, "POST", "/+login", {"user": "local", "password": "wrong"})
    assert bad[0] == 401 and "could not be authenticated" in bad[1]["message"]
    assert call(server.url, "PATCH", "/local", {"password": "new-secret"}, auth=LOCAL)[0] == 200
    status, body = call(server.url, "PATCH", "/local/stable", ["title=U"], auth=("local", token))
    assert status == 401 and "password changed" in body["message"]
    assert (
        call(server.url, "PATCH", "/local/stable", ["title=U"], auth=("local", "new-secret"))[0]
        == 200
    )
