"""``cheeseboard exempt``, ``block`` and ``unblock`` (issue 21) against a real server, run as a
subprocess; the server's state is checked through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import call
from tests.support.client_cli import Cli, fails
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory

ROOT = ("root", ROOT_PASSWORD)
CAROL = ("carol", "carol-secret")
DAVE = ("dave", "dave-secret")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("client-guard"))
    try:
        server = factory.start("http://127.0.0.1:9/simple/")
        for user, password in (CAROL, DAVE):
            status, body = call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)
            assert status == 201, body
        config = {"bases": [], "min_release_age": "7d"}
        status, body = call(server.url, "PUT", "/carol/dev", config, auth=ROOT)
        assert status == 200, body
        yield server
    finally:
        factory.stop_all()


def _cli(tmp_path: Path, server: CheeseboardServer, user: tuple[str, str]) -> Cli:
    cli = Cli(tmp_path / f"client-{user[0]}")
    cli.ok("use", f"{server.url}carol/dev")
    cli.ok("login", user[0], "--password", user[1])
    return cli


def _exemptions(server: CheeseboardServer) -> list[dict[str, str]]:
    status, body = call(server.url, "GET", "/carol/dev?no_projects=")
    assert status == 200, body
    listed: list[dict[str, str]] = body["result"].get("release_age_exempt", [])
    return listed


def test_exempt_add_list_and_remove(server: CheeseboardServer, tmp_path: Path) -> None:
    cli = _cli(tmp_path, server, CAROL)
    out = cli.ok("exempt", "Hot-Fix==1.0.1", "--reason", "CVE fix, reviewed", "--expires", "2d")
    assert "hot-fix==1.0.1 exempt from the cooldown of carol/dev" in out
    cli.ok("exempt", "carol/dev", "tooling", "--reason", "our own tool")
    stored = {item["entry"]: item for item in _exemptions(server)}
    assert set(stored) == {"hot-fix==1.0.1", "tooling"}
    assert stored["hot-fix==1.0.1"]["author"] == "carol"
    assert stored["hot-fix==1.0.1"]["reason"] == "CVE fix, reviewed"
    assert "expires" in stored["hot-fix==1.0.1"] and "expires" not in stored["tooling"]

    listed = json.loads(cli.ok("--json", "exempt", "-l"))
    assert [item["entry"] for item in listed] == ["hot-fix==1.0.1", "tooling"]
    table = cli.ok("exempt", "--list")
    assert "min_release_age 604800" in table and "CVE fix, reviewed" in table and "carol" in table

    cli.ok("exempt", "--remove", "hot-fix==1.0.1")
    assert [item["entry"] for item in _exemptions(server)] == ["tooling"]
    fails(cli("exempt", "--remove", "hot-fix==1.0.1"), "doesn't have value")
    fails(cli("exempt", "x", "--reason", "a; b"), "may not contain ';'")
    assert cli("exempt", "x").returncode == 2  # no --reason: a usage error

    # Root's exemption records root as its author; another user may not add one.
    root = _cli(tmp_path, server, ROOT)
    root.ok("exempt", "rooted", "--reason", "root says so")
    assert {i["entry"]: i["author"] for i in _exemptions(server)}["rooted"] == "root"
    root.ok("exempt", "--remove", "rooted")
    dave = _cli(tmp_path, server, DAVE)
    fails(dave("exempt", "sneaky", "--reason", "me"), "no permission")
    assert [item["entry"] for item in _exemptions(server)] == ["tooling"]


def _blocks(server: CheeseboardServer, path: str) -> list[dict[str, object]]:
    status, body = call(server.url, "GET", path, auth=ROOT)
    assert status == 200, body
    listed: list[dict[str, object]] = body["result"]
    return listed


def test_block_list_and_unblock(server: CheeseboardServer, tmp_path: Path) -> None:
    cli = _cli(tmp_path, server, CAROL)
    made = json.loads(cli.ok("--json", "block", "evil<2,>=1.0", "--reason", "typosquat"))
    first = made["result"]
    assert first["project"] == "evil" and first["specifier"] == "<2,>=1.0"
    assert "block" in cli.ok("block", "bad==1.0", "--reason", "malware")
    sha = "ab" * 32
    cli.ok("block", "--sha256", sha.upper(), "--reason", "known bad file")
    cli.ok("block", "--filename", "pkg-1.0-py3-none-any.whl", "--reason", "broken")
    blocks = _blocks(server, "/carol/dev/+blocks")
    assert [(b["project"], b["specifier"], b["filename"], b["sha256"]) for b in blocks] == [
        ("evil", "<2,>=1.0", None, None),
        ("bad", "==1.0", None, None),
        (None, None, None, sha),
        (None, None, "pkg-1.0-py3-none-any.whl", None),
    ]
    assert all(b["author"] == "carol" for b in blocks)
    listed = json.loads(cli.ok("--json", "block", "-l"))
    assert [b["id"] for b in listed] == [b["id"] for b in blocks]
    table = cli.ok("block", "--list")
    assert "typosquat" in table and "bad==1.0" in table

    cli.ok("unblock", str(first["id"]))
    assert first["id"] not in [b["id"] for b in _blocks(server, "/carol/dev/+blocks")]
    fails(cli("unblock", str(first["id"])), "no block")
    fails(cli("block", "x", "--reason", "r", "--server-wide"), "no permission")
    fails(cli("block", "--reason", "r"), "what to block")
    dave = _cli(tmp_path, server, DAVE)
    fails(dave("block", "x", "--reason", "r"), "no permission")
    fails(dave("unblock", str(blocks[1]["id"])), "no permission")

    root = _cli(tmp_path, server, ROOT)
    made = json.loads(root.ok("--json", "block", "worm", "--reason", "worm", "--server-wide"))
    wide = made["result"]
    assert wide["index"] is None and wide["author"] == "root"
    assert [b["id"] for b in _blocks(server, "/+blocks")] == [wide["id"]]
    assert "worm" in root.ok("block", "-l", "--server-wide")
    root.ok("unblock", str(wide["id"]), "--server-wide")
    assert _blocks(server, "/+blocks") == []
    # Root manages the owner's index too.
    root.ok("unblock", str(blocks[1]["id"]), "--index", "carol/dev")
    assert len(_blocks(server, "/carol/dev/+blocks")) == 2
