"""Local groups (issue 24): ``:group:NAME`` in ``acl_upload``, ``acl_read`` and
``--restrict-modify`` names the group's members, root manages groups through ``/+groups`` and
``cheeseboard group``, every change is in the audit log and a dump carries groups over.

One server for the module, with two workers (a membership change must reach both at once) and
``--restrict-modify root,:group:admins``. Uploads go through real ``twine``, installs through
real ``pip``.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import basic, call, status_of, twine_upload
from tests.support.client_cli import Cli
from tests.support.clients import installed, pip_install
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory, free_port
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
PASSWORD = "group-test-pw-1"


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    base = tmp_path_factory.mktemp("groups")
    built = ServerFactory(base)
    try:
        yield built
    finally:
        built.stop_all()


@pytest.fixture(scope="module")
def server(factory: ServerFactory) -> Iterator[CheeseboardServer]:
    with UpstreamServer(mode="html") as upstream:
        yield factory.start(
            upstream.simple_url, "--workers", "2", "--restrict-modify", "root,:group:admins"
        )


def _user(server: CheeseboardServer, name: str) -> tuple[str, str]:
    status, body = call(server.url, "PUT", f"/{name}", {"password": PASSWORD}, auth=ROOT)
    assert status == 201, body
    return name, PASSWORD


def _group(server: CheeseboardServer, name: str, *members: str) -> dict[str, Any]:
    status, body = call(server.url, "PUT", f"/+groups/{name}", {}, auth=ROOT)
    assert status == 201, body
    status, body = call(server.url, "PATCH", f"/+groups/{name}", {"add": list(members)}, auth=ROOT)
    assert status == 200, body
    result: dict[str, Any] = body["result"]
    return result


def _page(server: CheeseboardServer, path: str, auth: tuple[str, str]) -> int:
    """The status of a simple page as an installer asks for it (the hot path)."""
    request = urllib.request.Request(server.url.rstrip("/") + path)
    request.add_header("Authorization", basic(*auth))
    return status_of(request)


def _members(server: CheeseboardServer, group: str, **change: list[str]) -> None:
    status, body = call(server.url, "PATCH", f"/+groups/{group}", change, auth=ROOT)
    assert status == 200, body


def test_root_manages_groups_and_each_change_is_audited(server: CheeseboardServer) -> None:
    """Only root lists and changes groups; bad names, unknown users and unknown keys get a 400
    naming the problem; create, member changes and delete are audit entries."""
    alice = _user(server, "gr-alice")
    assert call(server.url, "GET", "/+groups")[0] == 401
    assert call(server.url, "GET", "/+groups", auth=alice)[0] == 403
    assert call(server.url, "PUT", "/+groups/x", {}, auth=alice)[0] == 403

    status, body = call(server.url, "PUT", "/+groups/qa", {"description": "Testers"}, auth=ROOT)
    assert status == 201, body
    assert body["result"] == {"name": "qa", "description": "Testers", "members": []}
    status, body = call(server.url, "PUT", "/+groups/-bad", {}, auth=ROOT)
    assert status == 400 and "group name" in body["message"], body
    status, body = call(server.url, "PUT", "/+groups/" + "g" * 65, {}, auth=ROOT)
    assert status == 400, body
    status, body = call(server.url, "PATCH", "/+groups/qa", {"add": ["nobody-here"]}, auth=ROOT)
    assert status == 400 and body["message"] == "no such user: nobody-here", body
    status, body = call(server.url, "PATCH", "/+groups/qa", {"add": "gr-alice"}, auth=ROOT)
    assert status == 400 and "list of user names" in body["message"], body
    status, body = call(server.url, "PATCH", "/+groups/qa", {"members": []}, auth=ROOT)
    assert status == 400 and "unknown keys" in body["message"], body
    status, body = call(server.url, "PATCH", "/+groups/nope", {"add": ["gr-alice"]}, auth=ROOT)
    assert status == 404, body

    _members(server, "qa", add=["gr-alice"])
    status, body = call(server.url, "GET", "/+groups", auth=ROOT)
    assert status == 200 and body["result"]["qa"]["members"] == ["gr-alice"], body
    _members(server, "qa", remove=["gr-alice"])
    status, body = call(server.url, "DELETE", "/+groups/qa", auth=ROOT)
    assert status == 200, body
    assert call(server.url, "GET", "/+groups/qa", auth=ROOT)[0] == 404

    status, body = call(server.url, "GET", "/+audit?limit=100", auth=ROOT)
    assert status == 200, body
    found = [
        (e["actor"], e["action"], e["target"], e["detail"])
        for e in reversed(body["result"])
        if e["action"].startswith("group-")
    ]
    assert found == [
        ("root", "group-create", "qa", {}),
        ("root", "group-members", "qa", {"added": ["gr-alice"], "removed": []}),
        ("root", "group-members", "qa", {"added": [], "removed": ["gr-alice"]}),
        ("root", "group-delete", "qa", {"members": []}),
    ]


def test_group_members_upload_and_read_and_lose_access_at_once(
    server: CheeseboardServer, tmp_path: Path
) -> None:
    """``acl_upload=:group:devs`` and ``acl_read=:group:devs``: a member uploads with twine and
    installs with pip; an outsider is refused (403 upload, 404 read, as a private index); a
    removed member loses both at once on every worker."""
    owner = _user(server, "gr-owner")
    dev = _user(server, "gr-dev")
    outsider = _user(server, "gr-outsider")
    _group(server, "devs", "gr-dev")
    config = {"bases": "", "acl_upload": [":group:devs"], "acl_read": [":group:devs"]}
    status, body = call(server.url, "PUT", "/gr-owner/priv", config, auth=ROOT)
    assert status == 200, body
    url = f"{server.url}gr-owner/priv/"

    wheel = build_wheel(tmp_path, "cbgroupie", "1.0")
    refused = twine_upload(url, *outsider, wheel.path)
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    uploaded = twine_upload(url, *dev, wheel.path)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

    simple = f"http://gr-dev:{PASSWORD}@127.0.0.1:{server.port}/gr-owner/priv/+simple/"
    result = pip_install(simple, tmp_path / "member", "cbgroupie")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "member") == {"cbgroupie"}
    assert _page(server, "/gr-owner/priv/+simple/cbgroupie/", outsider) == 404
    assert call(server.url, "GET", "/gr-owner/priv", auth=owner)[0] == 200

    for _ in range(6):  # both workers answer a member
        assert _page(server, "/gr-owner/priv/+simple/cbgroupie/", dev) == 200
    _members(server, "devs", remove=["gr-dev"])
    for _ in range(10):  # and neither a removed one, from the first request on
        assert _page(server, "/gr-owner/priv/+simple/cbgroupie/", dev) == 404
    later = build_wheel(tmp_path, "cbgroupie", "1.1")
    refused = twine_upload(url, *dev, later.path)
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr


def test_restrict_modify_group_members_create_users_and_indexes(
    server: CheeseboardServer,
) -> None:
    """``--restrict-modify root,:group:admins``: a member creates users and their indexes (not
    root's); a non-member is refused with the option named."""
    admin = _user(server, "gr-admin")
    plain = _user(server, "gr-plain")
    _group(server, "admins", "gr-admin")
    status, body = call(server.url, "PUT", "/gr-new", {"password": PASSWORD}, auth=admin)
    assert status == 201, body
    status, body = call(server.url, "PUT", "/gr-new/dev", {"bases": ""}, auth=admin)
    assert status == 200, body
    assert call(server.url, "PUT", "/root/gr-x", {"bases": ""}, auth=admin)[0] == 403
    status, body = call(server.url, "PUT", "/gr-other", {"password": PASSWORD}, auth=plain)
    assert status == 403 and ":group:admins" in body["message"], body


def test_a_scoped_token_carries_the_groups_only_on_its_indexes(
    server: CheeseboardServer,
) -> None:
    """A token of a member, scoped to one index, reads another group-readable index as an
    anonymous caller would (refused); on its own index the group counts."""
    member = _user(server, "gr-tok")
    _group(server, "readers", "gr-tok")
    for name in ("one", "two"):
        config = {"bases": "", "acl_read": [":group:readers"], "acl_upload": [":group:readers"]}
        status, body = call(server.url, "PUT", f"/gr-owner2/{name}", config, auth=ROOT)
        if status == 404:
            _user(server, "gr-owner2")
            status, body = call(server.url, "PUT", f"/gr-owner2/{name}", config, auth=ROOT)
        assert status == 200, body
    request = {"indexes": ["gr-owner2/one"], "scope": "read"}
    status, body = call(server.url, "POST", "/gr-tok/+tokens", request, auth=member)
    assert status == 201, body
    token = body["result"]["token"]
    assert _page(server, "/gr-owner2/one/+simple/", ("gr-tok", token)) == 200
    assert _page(server, "/gr-owner2/two/+simple/", ("gr-tok", token)) == 401
    assert _page(server, "/gr-owner2/two/+simple/", member) == 200


def test_the_group_command(server: CheeseboardServer, tmp_path: Path) -> None:
    """``cheeseboard group``: create, add, show, list, remove, delete; refused for non-root."""
    _user(server, "gr-cli")
    cli = Cli(tmp_path / "client")
    env = {"CHEESEBOARD_URL": server.url, "CHEESEBOARD_USER": "root"}
    env["CHEESEBOARD_PASSWORD"] = ROOT_PASSWORD
    cli.ok("group", "ops", "-c", "--description", "Operators", env=env)
    assert "gr-cli" in cli.ok("group", "ops", "-a", "gr-cli", env=env)
    shown = cli.ok("group", "ops", env=env)
    assert "Operators" in shown and "gr-cli" in shown
    assert "ops" in cli.ok("group", "-l", env=env)
    assert "(none)" in cli.ok("group", "ops", "-r", "gr-cli", env=env)
    failed = cli("group", "ops", "-a", "nobody-at-all", env=env)
    assert failed.returncode != 0 and "no such user: nobody-at-all" in failed.stderr
    cli.ok("group", "ops", "--delete", "-y", env=env)
    assert call(server.url, "GET", "/+groups/ops", auth=ROOT)[0] == 404
    other = {**env, "CHEESEBOARD_USER": "gr-cli", "CHEESEBOARD_PASSWORD": PASSWORD}
    refused = cli("group", "-l", env=other)
    assert refused.returncode != 0 and "root" in refused.stderr


def test_a_dump_round_trip_keeps_groups(
    server: CheeseboardServer, factory: ServerFactory, tmp_path: Path
) -> None:
    """export, then import into a new data directory: groups, descriptions and members."""
    _user(server, "gr-dumped")
    status, body = call(server.url, "PUT", "/+groups/kept", {"description": "Kept"}, auth=ROOT)
    assert status == 201, body
    _members(server, "kept", add=["gr-dumped"])
    dump = tmp_path / "dump"
    exported = _server_cli("export", "--datadir", str(server.datadir), str(dump))
    assert exported.returncode == 0, exported.stderr
    target = tmp_path / "imported"
    imported = _server_cli("import", "--datadir", str(target), str(dump))
    assert imported.returncode == 0, imported.stderr
    copy = CheeseboardServer(target, free_port(), [])
    copy.start()
    try:
        status, body = call(copy.url, "GET", "/+groups/kept", auth=ROOT)
        assert status == 200, body
        assert body["result"] == {"name": "kept", "description": "Kept", "members": ["gr-dumped"]}
    finally:
        copy.stop()


def _server_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cheeseboard.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
