"""The ``cheeseboard`` console script against a real server, run as a subprocess.

Each test has its own client directory (``CHEESEBOARD_CLIENTDIR``); the module shares one
server whose root/pypi mirrors an empty local upstream.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from cheeseboard.client import commands
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from tests.support.api import call
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory, free_port
from tests.support.upstream import UpstreamServer

SCRIPT = Path(sys.executable).with_name("cheeseboard")
ROOT = ("root", ROOT_PASSWORD)


@dataclass
class Cli:
    """Runs the script with one client directory and a clean environment."""

    clientdir: Path

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CHEESEBOARD_", "DEVPI_"))}
        base["CHEESEBOARD_CLIENTDIR"] = str(self.clientdir)
        base["COLUMNS"] = "200"
        base.update(env or {})
        return subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=base,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout


def _fails(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    base = tmp_path_factory.mktemp("client-cli")
    with UpstreamServer(mode="html") as upstream:
        factory = ServerFactory(base)
        try:
            yield factory.start(upstream.simple_url)
        finally:
            factory.stop_all()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "client")


def _ensure_stage(server: CheeseboardServer, user: str, password: str, index: str) -> None:
    """A user with a non-volatile stage, made through the HTTP API (not under test)."""
    if call(server.url, "GET", f"/{user}")[0] == 404:
        status, body = call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)
        assert status == 201, body
    if call(server.url, "GET", f"/{user}/{index}")[0] == 404:
        config = {"bases": "root/pypi", "volatile": "False"}
        status, body = call(server.url, "PUT", f"/{user}/{index}", config, auth=ROOT)
        assert status == 200, body


def test_script_is_installed() -> None:
    assert SCRIPT.exists()


def test_workflow(server: CheeseboardServer, cli: Cli, tmp_path: Path) -> None:
    cli.ok("use", server.url)
    cli.ok("login", "root", "--password", ROOT_PASSWORD)
    state = cli.clientdir / "client.json"
    assert state.stat().st_mode & 0o777 == 0o600
    assert json.loads(state.read_text())["user"] == "root"
    assert "local created" in cli.ok("user", "-c", "local", "password=local-secret", "email=l@x")
    assert "local" in cli.ok("user", "-l")
    cli.ok("index", "-c", "local/stable", "bases=root/pypi", "volatile=False")
    listed = json.loads(cli.ok("--json", "index", "-l", "local"))
    assert listed == [
        {"index": "local/stable", "type": "stage", "bases": "root/pypi", "volatile": "False"}
    ]
    cli.ok("use", f"{server.url}local/stable")
    cli.ok("login", "local", "--password", "local-secret")
    cli.ok("index", "stable", "title=Stable", "mirror_whitelist+=six")
    status, body = call(server.url, "GET", "/local/stable")
    assert body["result"]["title"] == "Stable"
    assert body["result"]["mirror_whitelist"] == ["six"]

    wheel = build_wheel(tmp_path / "dist", "cbpkg", "1.0")
    assert "uploaded" in cli.ok("upload", str(wheel.path.parent))
    status, body = call(server.url, "GET", "/local/stable/cbpkg/1.0")
    assert status == 200
    assert body["result"]["+links"][0]["hashes"]["sha256"] == wheel.sha256

    assert "cbpkg" in cli.ok("list")
    assert wheel.filename in cli.ok("list", "cbpkg")
    assert json.loads(cli.ok("--json", "list")) == [{"project": "cbpkg"}]

    _fails(cli("remove", "cbpkg==1.0"), "non-volatile", "-f")
    assert call(server.url, "GET", "/local/stable/cbpkg/1.0")[0] == 200
    cli.ok("remove", "cbpkg==1.0", "-f")
    assert call(server.url, "GET", "/local/stable/cbpkg/1.0")[0] == 404

    cli.ok("logoff")
    assert json.loads(state.read_text())["user"] is None


def test_upload_needs_permission(server: CheeseboardServer, cli: Cli, tmp_path: Path) -> None:
    _ensure_stage(server, "other", "other-pw", "stable")
    wheel = build_wheel(tmp_path / "dist", "cbother", "1.0")
    cli.ok("use", f"{server.url}other/stable")
    _fails(cli("upload", str(wheel.path)), "password", "login")  # anonymous: 401


def test_upload_in_process_with_progress(server: CheeseboardServer, tmp_path: Path) -> None:
    """The plain command functions run without argv; a terminal console shows progress."""
    _ensure_stage(server, "inproc", "inproc-pw", "stable")
    env = {"CHEESEBOARD_CLIENTDIR": str(tmp_path / "c")}
    config = ClientConfig.load(env, interactive=False)
    buffer = io.StringIO()
    out = Output(console=Console(file=buffer, force_terminal=True, width=100, highlight=False))
    assert out.interactive
    commands.use(config, out, f"{server.url}inproc/stable")
    config.user, config.password = "inproc", "inproc-pw"
    wheel = build_wheel(tmp_path / "dist", "cbinproc", "2.0", payload_size=2_000_000)
    commands.upload(config, out, [wheel.path])
    assert "uploaded 1 file(s) to inproc/stable" in buffer.getvalue()
    assert "\x1b[2Kcbinproc-2.0" in buffer.getvalue()  # the progress bar
    status, body = call(server.url, "GET", "/inproc/stable/cbinproc/2.0")
    assert status == 200
    assert body["result"]["+links"][0]["hashes"]["sha256"] == wheel.sha256


def test_wrong_password(server: CheeseboardServer, cli: Cli) -> None:
    cli.ok("use", server.url)
    _fails(cli("login", "root", "--password", "nope"), "password")


def test_unreachable(cli: Cli) -> None:
    _fails(cli("use", f"http://127.0.0.1:{free_port()}/"), "unreachable")


@pytest.mark.parametrize("prefix", ["CHEESEBOARD", "DEVPI"])
def test_environment_login(server: CheeseboardServer, cli: Cli, prefix: str) -> None:
    _ensure_stage(server, "envuser", "env-pw", "stable")
    env = {
        f"{prefix}_URL": f"{server.url}envuser/stable",
        f"{prefix}_USER": "envuser",
        f"{prefix}_PASSWORD": "env-pw",
    }
    result = cli("--json", "list", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert not (cli.clientdir / "client.json").exists()


def test_cheeseboard_names_win(server: CheeseboardServer, cli: Cli) -> None:
    _ensure_stage(server, "envuser", "env-pw", "stable")
    env = {
        "CHEESEBOARD_URL": f"{server.url}envuser/stable",
        "DEVPI_URL": "http://127.0.0.1:1/",
        "CHEESEBOARD_USER": "envuser",
        "CHEESEBOARD_PASSWORD": "env-pw",
    }
    assert cli("list", env=env).returncode == 0


def test_user_without_password(server: CheeseboardServer, cli: Cli) -> None:
    env = {"CHEESEBOARD_URL": f"{server.url}envuser/stable", "CHEESEBOARD_USER": "envuser"}
    _fails(cli("list", env=env), "no password", "CHEESEBOARD_PASSWORD")
