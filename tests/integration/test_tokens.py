"""Scoped upload tokens: created by the owner, upload-only to named indexes, revocable.

Driven through the ``cheeseboard token`` command and used by real twine (``__token__``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import call, twine_upload
from tests.support.client_cli import Cli, fails
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
CI = ("ci", "ci-password")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("tokens"))
    with UpstreamServer(mode="html") as upstream:
        try:
            started = factory.start(upstream.simple_url)
            assert call(started.url, "PUT", "/ci", {"password": CI[1]}, auth=ROOT)[0] == 201
            for index in ("stable", "other"):
                status, body = call(
                    started.url, "PUT", f"/ci/{index}", {"bases": "root/pypi"}, auth=ROOT
                )
                assert status == 200, body
            yield started
        finally:
            factory.stop_all()


@pytest.fixture
def cli(server: CheeseboardServer, tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "client")
    cli.ok("use", f"{server.url}ci/stable")
    cli.ok("login", *CI[:1], "--password", CI[1])
    return cli


def _create(cli: Cli, *args: str) -> dict[str, object]:
    made = json.loads(cli.ok("--json", "token", "-c", *args))
    assert isinstance(made, dict)
    return made


def test_token_uploads_only_where_allowed(
    server: CheeseboardServer, cli: Cli, tmp_path: Path
) -> None:
    made = _create(cli, "-d", "release pipeline")
    assert made["indexes"] == ["ci/stable"]
    token = str(made["token"])
    wheel = build_wheel(tmp_path / "dist", "cbtokened", "1.0")

    result = twine_upload(f"{server.url}ci/stable/", "__token__", token, wheel.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert call(server.url, "GET", "/ci/stable/cbtokened/1.0")[0] == 200
    # The owner's name works as the user name too.
    other = build_wheel(tmp_path / "dist2", "cbtokened", "1.1")
    assert twine_upload(f"{server.url}ci/stable/", "ci", token, other.path).returncode == 0

    refused = twine_upload(f"{server.url}ci/other/", "__token__", token, wheel.path)
    assert refused.returncode != 0
    assert "403" in refused.stdout + refused.stderr
    assert call(server.url, "GET", "/ci/other/cbtokened/1.0")[0] == 404

    # Upload-only: no index changes, no deletes, no new tokens, no password change.
    scoped = ("ci", token)
    assert call(server.url, "PATCH", "/ci/stable", ["title=x"], auth=scoped)[0] == 403
    assert call(server.url, "DELETE", "/ci/stable/cbtokened/1.0", auth=scoped)[0] == 403
    assert (
        call(server.url, "POST", "/ci/+tokens", {"indexes": ["ci/stable"]}, auth=scoped)[0] == 403
    )
    assert call(server.url, "PATCH", "/ci", {"password": "taken"}, auth=scoped)[0] == 403
    # Reading with it is fine (devpi's /+api reports the login).
    status, body = call(server.url, "GET", "/+api", auth=scoped)
    assert status == 200
    assert body["result"]["authstatus"][:2] == ["ok", "ci"]


def test_list_and_revoke(server: CheeseboardServer, cli: Cli, tmp_path: Path) -> None:
    made = _create(cli, "--index", "ci/other", "--expires", "2h", "-d", "to revoke")
    listed = json.loads(cli.ok("--json", "token", "-l"))
    mine = [t for t in listed if t["id"] == made["id"]]
    assert mine and mine[0]["indexes"] == ["ci/other"]
    assert "token" not in mine[0]  # the secret is never listed
    assert 7100 < mine[0]["expires"] - mine[0]["created"] <= 7200
    assert "to revoke" in cli.ok("token", "-l")

    wheel = build_wheel(tmp_path / "dist", "cbrevoked", "1.0")
    cli.ok("token", "--delete", str(made["id"]))
    result = twine_upload(f"{server.url}ci/other/", "__token__", str(made["token"]), wheel.path)
    assert result.returncode != 0
    assert "401" in result.stdout + result.stderr
    fails(cli("token", "--delete", str(made["id"])), "not found")


def test_password_change_kills_tokens(server: CheeseboardServer, tmp_path: Path) -> None:
    assert call(server.url, "PUT", "/rotator", {"password": "rot-1"}, auth=ROOT)[0] == 201
    status, _ = call(server.url, "PUT", "/rotator/dev", {"bases": "root/pypi"}, auth=ROOT)
    assert status == 200
    status, made = call(
        server.url,
        "POST",
        "/rotator/+tokens",
        {"indexes": ["rotator/dev"]},
        auth=("rotator", "rot-1"),
    )
    assert status == 201, made
    token = made["result"]["token"]
    assert (
        call(server.url, "GET", "/+api", auth=("rotator", token))[1]["result"]["authstatus"][0]
        == "ok"
    )
    call(server.url, "PATCH", "/rotator", {"password": "rot-2"}, auth=("rotator", "rot-1"))
    wheel = build_wheel(tmp_path / "dist", "cbrotated", "1.0")
    result = twine_upload(f"{server.url}rotator/dev/", "__token__", token, wheel.path)
    assert "401" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "needs 'indexes'"),
        ({"indexes": ["ci/none"]}, "no index"),
        ({"indexes": ["ci/stable"], "expires_in": 5}, "between 60"),
        ({"indexes": ["ci/stable"], "expires_in": "soon"}, "seconds"),
        ({"indexes": ["ci/stable"], "colour": "red"}, "unknown token keys"),
        ({"indexes": ["ci/stable"], "scope": "all"}, "'scope' is 'upload'"),
    ],
)
def test_bad_token_requests(server: CheeseboardServer, body: dict[str, object], words: str) -> None:
    status, reply = call(server.url, "POST", "/ci/+tokens", body, auth=CI)
    assert status == 400
    assert words in reply["message"]


def test_only_owner_or_root(server: CheeseboardServer) -> None:
    assert call(server.url, "GET", "/ci/+tokens")[0] == 401
    assert call(server.url, "PUT", "/nosy", {"password": "nosy-pw"}, auth=ROOT)[0] == 201
    assert call(server.url, "GET", "/ci/+tokens", auth=("nosy", "nosy-pw"))[0] == 403
    assert call(server.url, "GET", "/ci/+tokens", auth=ROOT)[0] == 200
    assert call(server.url, "GET", "/ghost/+tokens", auth=ROOT)[0] == 404


def test_client_duration_and_usage_errors(cli: Cli) -> None:
    fails(cli("token", "-c", "--expires", "soon"), "not a duration")
    fails(cli("token", "-c", "--index", "ci/none"), "no index")
    result = cli("token")
    assert result.returncode == 2
    assert "pass -c, -l or --delete ID" in result.stderr
