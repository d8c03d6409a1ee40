"""The ``cheeseboard`` client against a real devpi-server 6.x (people migrate gradually).

The server is the pip package ``devpi-server``, initialised by its own ``devpi-init`` and
started on 127.0.0.1; its root/pypi mirrors a local test upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.client_cli import Cli, fails
from tests.support.devpi_server import DEVPI_ROOT_PASSWORD, DevpiServer
from tests.support.packages import build_sdist, build_wheel
from tests.support.upstream import UpstreamServer


@pytest.fixture(scope="module")
def devpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevpiServer]:
    base = tmp_path_factory.mktemp("devpi-server")
    with UpstreamServer(mode="html") as upstream, DevpiServer(base, upstream.simple_url) as server:
        yield server


def test_seed_workflow_on_devpi_server(devpi: DevpiServer, tmp_path: Path) -> None:
    """use, login, user -c, index -c with bases, upload, list, push, remove, index --delete."""
    cli = Cli(tmp_path / "client")
    assert "using" in cli.ok("use", devpi.url)
    cli.ok("login", "root", "--password", DEVPI_ROOT_PASSWORD)
    cli.ok("user", "-c", "alice", "password=alice-secret", "email=alice@example.org")
    assert "alice" in cli.ok("user", "-l")
    cli.ok("login", "alice", "--password", "alice-secret")
    cli.ok("index", "-c", "dev", "bases=root/pypi")
    cli.ok("index", "-c", "alice/stable", "bases=root/pypi", "volatile=False")
    listed = {row["index"]: row for row in json.loads(cli.ok("--json", "index", "-l", "alice"))}
    assert listed["alice/dev"]["bases"] == "root/pypi"
    assert listed["alice/stable"]["volatile"] == "False"

    cli.ok("use", "alice/dev")
    wheel = build_wheel(tmp_path / "dist", "migrating", "1.0")
    sdist = build_sdist(tmp_path / "dist", "migrating", "1.0")
    assert "uploaded 2 file(s) to alice/dev" in cli.ok("upload", str(tmp_path / "dist"))
    assert json.loads(cli.ok("--json", "list")) == [{"project": "migrating"}]
    files = {row["file"] for row in json.loads(cli.ok("--json", "list", "migrating"))}
    assert files == {wheel.filename, sdist.filename}

    cli.ok("push", "migrating==1.0", "alice/stable")
    pushed = json.loads(cli.ok("--json", "getjson", "/alice/stable/migrating"))
    assert set(pushed["result"]) == {"1.0"}

    cli.ok("index", "dev", "title=Development")
    assert json.loads(cli.ok("--json", "getjson"))["result"]["title"] == "Development"

    cli.ok("remove", "migrating==1.0")
    assert json.loads(cli.ok("--json", "list")) == []
    cli.ok("use", "alice/stable")
    fails(cli("remove", "migrating==1.0"), "non-volatile")
    cli.ok("index", "--delete", "-y", "alice/dev")
    assert "alice/dev" not in cli.ok("index", "-l", "alice")


def test_wrong_password_on_devpi_server(devpi: DevpiServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "client")
    cli.ok("use", devpi.url)
    fails(cli("login", "root", "--password", "wrong"), "password")


def test_environment_login_on_devpi_server(devpi: DevpiServer, tmp_path: Path) -> None:
    """The docker-devpi client variables work against devpi itself."""
    cli = Cli(tmp_path / "client")
    env = {"DEVPI_URL": devpi.url, "DEVPI_USER": "root", "DEVPI_PASSWORD": DEVPI_ROOT_PASSWORD}
    assert "root" in cli.ok("user", "-l", env=env)
    cli.ok("index", "-c", "root/envmade", "bases=root/pypi", env=env)
    # devpi treats wrong credentials as anonymous: creating root's index is then refused.
    wrong = {**env, "DEVPI_PASSWORD": "wrong"}
    result = cli("index", "-c", "root/envmade2", env=wrong)
    assert result.returncode == 1
    assert "password" in result.stderr or "permission" in result.stderr, result.stderr


def test_token_says_devpi_has_none(devpi: DevpiServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "client")
    cli.ok("use", f"{devpi.url}root/pypi")
    cli.ok("login", "root", "--password", DEVPI_ROOT_PASSWORD)
    fails(cli("token", "-c"), "does not offer scoped tokens")
