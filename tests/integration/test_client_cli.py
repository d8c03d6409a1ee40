"""The ``cheeseboard`` console script against a real server, run as a subprocess.

Each test has its own client directory (``CHEESEBOARD_CLIENTDIR``); the module shares one
server whose root/pypi mirrors an empty local upstream.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from cheeseboard.client import commands, publish
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from tests.support.api import call
from tests.support.client_cli import SCRIPT, Cli, fails
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory, free_port
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(mode="html") as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer
) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("client-cli"))
    port = free_port()
    try:
        # test_push_and_getjson pushes to this very server (loopback): allow it explicitly.
        yield factory.start(
            upstream.simple_url, "--push-allow", f"http://127.0.0.1:{port}/", port=port
        )
    finally:
        factory.stop_all()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "client")


def _ensure_stage(
    server: CheeseboardServer, user: str, password: str, index: str, bases: str = "root/pypi"
) -> None:
    """A user with a non-volatile stage, made by root through the HTTP API (not under test).

    Only root creates indexes on a default server (``restrict-modify``).
    """
    if call(server.url, "GET", f"/{user}")[0] == 404:
        status, body = call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)
        assert status == 201, body
    if call(server.url, "GET", f"/{user}/{index}")[0] == 404:
        config = {"bases": bases, "volatile": "False"}
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

    fails(cli("remove", "cbpkg==1.0"), "non-volatile", "-f")
    assert call(server.url, "GET", "/local/stable/cbpkg/1.0")[0] == 200
    cli.ok("remove", "cbpkg==1.0", "-f")
    assert call(server.url, "GET", "/local/stable/cbpkg/1.0")[0] == 404

    cli.ok("logoff")
    assert json.loads(state.read_text())["user"] is None


def test_upload_needs_permission(server: CheeseboardServer, cli: Cli, tmp_path: Path) -> None:
    _ensure_stage(server, "other", "other-pw", "stable")
    wheel = build_wheel(tmp_path / "dist", "cbother", "1.0")
    cli.ok("use", f"{server.url}other/stable")
    fails(cli("upload", str(wheel.path)), "password", "login")  # anonymous: 401


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
    publish.upload(config, out, [wheel.path])
    assert "uploaded 1 file(s) to inproc/stable" in buffer.getvalue()
    assert "\x1b[2Kcbinproc-2.0" in buffer.getvalue()  # the progress bar
    status, body = call(server.url, "GET", "/inproc/stable/cbinproc/2.0")
    assert status == 200
    assert body["result"]["+links"][0]["hashes"]["sha256"] == wheel.sha256


def test_wrong_password(server: CheeseboardServer, cli: Cli) -> None:
    cli.ok("use", server.url)
    fails(cli("login", "root", "--password", "nope"), "password")


def test_unreachable(cli: Cli) -> None:
    fails(cli("use", f"http://127.0.0.1:{free_port()}/"), "unreachable")


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
    fails(cli("list", env=env), "no password", "CHEESEBOARD_PASSWORD")


def _logged_in(server: CheeseboardServer, cli: Cli, user: str, password: str, index: str) -> None:
    _ensure_stage(server, user, password, index)
    cli.ok("use", f"{server.url}{user}/{index}")
    cli.ok("login", user, "--password", password)


def test_use_shows_and_lists(server: CheeseboardServer, cli: Cli) -> None:
    fails(cli("use"), "no server", "cheeseboard use URL")
    _logged_in(server, cli, "shower", "shower-pw", "stable")
    shown = cli.ok("use")
    assert f"{server.url}shower/stable" in shown
    assert "shower" in shown
    assert json.loads(cli.ok("--json", "use"))["index"] == "shower/stable"
    listed = cli.ok("use", "-l")
    assert "root/pypi" in listed
    assert "shower/stable" in listed


def test_user_modify_and_delete(server: CheeseboardServer, cli: Cli) -> None:
    cli.ok("use", server.url)
    cli.ok("login", "root", "--password", ROOT_PASSWORD)
    cli.ok("user", "-c", "shortlived", "password=short-pw")
    cli.ok("user", "-m", "shortlived", "email=s@example.org", "title=Short")
    body = call(server.url, "GET", "/shortlived", auth=ROOT)[1]
    assert body["result"]["email"] == "s@example.org"
    fails(cli("user", "--delete", "shortlived"), "not confirmed", "-y")
    assert call(server.url, "GET", "/shortlived")[0] == 200
    cli.ok("user", "--delete", "shortlived", "-y")
    assert call(server.url, "GET", "/shortlived")[0] == 404
    fails(cli("user", "-m", "shortlived", "email=x@y"), "not found")


def test_passwd_keeps_the_login(server: CheeseboardServer, cli: Cli) -> None:
    _logged_in(server, cli, "changer", "changer-pw", "stable")
    fails(cli("passwd"), "no terminal", "--password-stdin")
    cli.ok("passwd", "--password-stdin", stdin="changer-new\n")
    # The old token died with the old password; the client stored the fresh one.
    cli.ok("index", "stable", "title=Still logged in")
    assert call(server.url, "GET", "/changer", auth=("changer", "changer-new"))[0] == 200
    fails(cli("login", "changer", "--password", "changer-pw"), "password")
    cli.ok("login", "changer", "--password", "changer-new")


def test_index_delete(server: CheeseboardServer, cli: Cli) -> None:
    _logged_in(server, cli, "deleter", "deleter-pw", "stable")
    _ensure_stage(server, "deleter", "deleter-pw", "scratch")
    fails(cli("index", "--delete", "scratch"), "not confirmed", "-y")
    assert call(server.url, "GET", "/deleter/scratch")[0] == 200
    fails(cli("index", "--delete", "-y", "scratch"), "non-volatile", "volatile=True")
    cli.ok("index", "scratch", "volatile=True")
    cli.ok("index", "--delete", "-y", "scratch")
    assert call(server.url, "GET", "/deleter/scratch")[0] == 404
    fails(cli("index", "--delete", "-y", "scratch"), "not found")


def test_push_and_getjson(server: CheeseboardServer, cli: Cli, tmp_path: Path) -> None:
    _logged_in(server, cli, "pusher", "pusher-pw", "stable")
    _ensure_stage(server, "pusher", "pusher-pw", "dev", bases="pusher/stable")
    fails(cli("index", "-c", "more"), "no permission", "limited to root", "--restrict-modify")
    cli.ok("use", "pusher/dev")
    wheel = build_wheel(tmp_path / "dist", "cbpushed", "1.0")
    cli.ok("upload", str(wheel.path))
    out = cli.ok("push", "cbpushed==1.0", "pusher/stable")
    assert "pushed cbpushed==1.0 from pusher/dev to pusher/stable" in out
    status, body = call(server.url, "GET", "/pusher/stable/cbpushed/1.0")
    assert status == 200, body
    fails(cli("push", "cbpushed", "pusher/stable"), "NAME==VERSION")
    fails(cli("push", "cbpushed==9.9", "pusher/stable"), "not found")

    # pypi:REPOSITORY reads .pypirc and has the server upload over the legacy API.
    _ensure_stage(server, "extern", "extern-pw", "stable")
    pypirc = tmp_path / "pypirc"
    pypirc.write_text(
        f"[mine]\nrepository = {server.url}extern/stable/\nusername = extern\n"
        "password = extern-pw\n"
    )
    cli.ok("push", "cbpushed==1.0", "pypi:mine", "--pypirc", str(pypirc))
    assert call(server.url, "GET", "/extern/stable/cbpushed/1.0")[0] == 200
    fails(cli("push", "cbpushed==1.0", "pypi:absent", "--pypirc", str(pypirc)), "[absent]")

    config = json.loads(cli.ok("getjson"))
    assert config["result"]["bases"] == ["pusher/stable"]
    versions = json.loads(cli.ok("getjson", "cbpushed"))
    assert set(versions["result"]) == {"1.0"}
    assert json.loads(cli.ok("getjson", "/pusher"))["result"]["username"] == "pusher"
    fails(cli("getjson", "/nobody/here"), "not found")


def test_refresh(
    server: CheeseboardServer, upstream: UpstreamServer, cli: Cli, tmp_path: Path
) -> None:
    """A cached mirror page shows a new upstream release only after ``refresh``."""
    upstream.add(build_wheel(tmp_path / "up", "cbfresh", "1.0"))
    cli.ok("use", f"{server.url}root/pypi")

    def versions() -> set[str]:
        fmt = "?format=application/vnd.pypi.simple.v1%2Bjson"
        page = call(server.url, "GET", f"/root/pypi/+simple/cbfresh/{fmt}")[1]
        return set(page["versions"])

    assert versions() == {"1.0"}
    upstream.add(build_wheel(tmp_path / "up", "cbfresh", "2.0"))
    assert versions() == {"1.0"}  # still the cached page
    assert "refreshed 1 project(s) on root/pypi" in cli.ok("refresh", "cbfresh")
    assert versions() == {"1.0", "2.0"}
    fails(cli("refresh", "cb-never-was"), "not found")


def test_install_with_pip_and_uv(server: CheeseboardServer, cli: Cli, tmp_path: Path) -> None:
    _logged_in(server, cli, "installer", "installer-pw", "stable")
    wheel = build_wheel(tmp_path / "dist", "cbinstalled", "1.0")
    cli.ok("upload", str(wheel.path))
    pip_target, uv_target = tmp_path / "pip-target", tmp_path / "uv-target"
    out = cli.ok("install", "--target", str(pip_target), "--no-cache-dir", "cbinstalled")
    assert f"--index-url {server.url}installer/stable/+simple/" in out
    assert list(pip_target.glob("cbinstalled-1.0.dist-info"))
    cli.ok("install", "--uv", "--target", str(uv_target), "--no-cache", "cbinstalled")
    assert list(uv_target.glob("cbinstalled-1.0.dist-info"))
    result = cli("install", "--target", str(tmp_path / "t3"), "--no-cache-dir", "cb-not-there")
    fails(result, "exited with status 1")
    fails(cli("install"), "nothing to install")


def test_upload_builds_the_project_and_docs(
    server: CheeseboardServer, cli: Cli, tmp_path: Path
) -> None:
    _logged_in(server, cli, "builder", "builder-pw", "stable")
    project = tmp_path / "proj"
    (project / "src" / "cbbuilt").mkdir(parents=True)
    (project / "src" / "cbbuilt" / "__init__.py").write_text("VALUE = 1\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "cbbuilt"\nversion = "0.3"\nrequires-python = ">=3.11"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/cbbuilt"]\n'
    )
    built = Cli(cli.clientdir, cwd=project)
    out = built.ok("upload", "--no-isolation")
    assert "uploaded 2 file(s) to builder/stable" in out
    files = {row["file"] for row in json.loads(cli.ok("--json", "list", "cbbuilt"))}
    assert files == {"cbbuilt-0.3-py3-none-any.whl", "cbbuilt-0.3.tar.gz"}

    docs = tmp_path / "cbbuilt-0.3.doc.zip"
    with zipfile.ZipFile(docs, "w") as archive:
        archive.writestr("index.html", "<h1>cbbuilt docs</h1>")
    cli.ok("upload", str(docs))
    status, body = call(server.url, "GET", "/builder/stable/cbbuilt/0.3")
    assert status == 200, body
    assert any(link["rel"] == "doczip" for link in body["result"]["+links"]), body

    fails(Cli(cli.clientdir, cwd=tmp_path)("upload"), "not a Python project")
    (project / "src" / "cbbuilt" / "__init__.py").unlink()
    (project / "pyproject.toml").write_text("[project]\nname = 'broken'\nversion = \n")
    fails(built("upload", "--no-isolation"), "building", "failed")
