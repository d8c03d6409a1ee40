"""Real installers read a private index (``acl_read``) with credentials, and fail without them.

Every installer here runs from the test virtualenv against a real server, with its home, config
and cache in ``tmp_path``; each test first shows the same install failing without credentials
(the server logs a 401 for the private index), then succeeding with them. The private index
``alice/private`` (``acl_read`` = alice; bases root/pypi) holds ``cbsecret``, which needs
``lib-c`` from the mirror: installing it reads both.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from tests.support.api import call, upload_dist
from tests.support.client_cli import Cli
from tests.support.clients import UV, installed, pip_install
from tests.support.packages import build_wheel, installer_env
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-s3cret-pw")
BOB = ("bob", "bob-pw")
BIN = Path(sys.executable).parent
EXPECTED = {"cbsecret", "lib_c"}
REALM = 'Basic realm="cheeseboard"'

# A keyring backend kept in a JSON file, loaded by keyring through PYTHON_KEYRING_BACKEND from
# PYTHONPATH: no package is installed anywhere. get_credential answers without a user name, as
# pip's import provider asks (keyring's default answers None then).
KEYRING_BACKEND = """
import json
import os

from keyring.backend import KeyringBackend
from keyring.credentials import SimpleCredential


class FileKeyring(KeyringBackend):
    priority = 1

    def _entries(self):
        with open(os.environ["CB_TEST_KEYRING"], encoding="utf-8") as handle:
            return json.load(handle)

    def get_password(self, service, username):
        entry = self._entries().get(service)
        return entry[1] if entry and entry[0] == username else None

    def get_credential(self, service, username):
        entry = self._entries().get(service)
        if entry and username in (None, entry[0]):
            return SimpleCredential(entry[0], entry[1])
        return None

    def set_password(self, service, username, password):
        raise NotImplementedError("read-only test keyring")

    def delete_password(self, service, username):
        raise NotImplementedError("read-only test keyring")
"""


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module (tests/conftest.py); users and indexes reset after each test."""
    return shared_mirror_server


@dataclass(frozen=True)
class Private:
    """The private index: its server, simple URL and host (``127.0.0.1:PORT``)."""

    server: CheeseboardServer
    url: str
    netloc: str

    def with_credentials(self, user: str, password: str) -> str:
        parts = urlsplit(self.url)
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return parts._replace(netloc=f"{auth}@{parts.netloc}").geturl()


@pytest.fixture
def private(mirror_server: CheeseboardServer, tmp_path: Path) -> Private:
    """Users alice and bob; ``alice/private`` readable by alice only, holding ``cbsecret``."""
    server = mirror_server
    for user, password in (ALICE, BOB):
        status, body = call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)
        assert status == 201, body
    status, body = call(
        server.url,
        "PUT",
        "/alice/private",
        {"bases": "root/pypi", "acl_read": ["alice"]},
        auth=ROOT,
    )
    assert status == 200, body
    assert body["result"]["acl_read"] == ["alice"], body
    wheel = build_wheel(tmp_path / "dist", "cbsecret", "1.0", requires_dist=["lib-c"])
    status, text = upload_dist(server.url, "alice/private", wheel, ALICE)
    assert status == 200, text
    url = f"{server.url}alice/private/+simple/"
    return Private(server, url, urlsplit(server.url).netloc)


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str | None]:
    """GET ``url``: its status and WWW-Authenticate header."""
    headers = {}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.headers.get("WWW-Authenticate")
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.headers.get("WWW-Authenticate")


def _refused_reads(server: CheeseboardServer, path: str, status: int = 401) -> int:
    """How many GETs under ``path`` the server answered with ``status`` (its access log, flushed
    every 200 ms)."""
    line = re.compile(rf'method=GET path="{re.escape(path)}[^"]*" status={status}\b')
    time.sleep(0.4)
    return len(line.findall(server.log()))


def _home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir()
    return home


def _env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """No user config, netrc, keyring or credentials from outside: everything under ``home``."""
    env = {
        k: v
        for k, v in installer_env().items()
        if not k.startswith(("POETRY_", "PDM_", "XDG_", "NETRC", "PYTHON_KEYRING", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update(extra or {})
    return env


def _run(command: list[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    """Run ``command``; returns its output, and whether it succeeded as the first line."""
    result = subprocess.run(
        command, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=300
    )
    return f"{'ok' if result.returncode == 0 else 'failed'}\n{result.stdout}\n{result.stderr}"


def _pip(index_url: str, target: Path, env: Mapping[str, str], *extra: str) -> str:
    """``pip install --target`` of cbsecret; ``--isolated`` (no pip config or PIP_* variables)
    does not stop pip reading a netrc file or a keyring."""
    result = pip_install(index_url, target, "cbsecret", extra=extra, env=env)
    return f"{'ok' if result.returncode == 0 else 'failed'}\n{result.stdout}\n{result.stderr}"


def _uv(target: Path, env: Mapping[str, str], *index: str) -> str:
    """``uv pip install --target`` of cbsecret, no cache, the given index options."""
    return _run(
        [
            UV,
            "pip",
            "install",
            "--no-cache",
            "--python",
            sys.executable,
            "--target",
            str(target),
            *index,
            "cbsecret",
        ],
        env,
    )


def _fails_unauthorized(private: Private, output: str, target: Path, before: int) -> None:
    """The installer failed, installed nothing, and the server refused it with 401."""
    assert output.startswith("failed"), output
    assert installed(target) == set(), output
    assert _refused_reads(private.server, "/alice/private/") > before, output


def _succeeds(output: str, target: Path) -> None:
    assert output.startswith("ok"), output
    assert installed(target) == EXPECTED, output


def _netrc(directory: Path, host: str, user: str, password: str) -> Path:
    path = directory / ".netrc"
    path.write_text(f"machine {host}\nlogin {user}\npassword {password}\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_refusals_look_like_a_missing_index(private: Private) -> None:
    """Anonymous: 401 with the Basic challenge; bob: the 404 of a missing index; alice: 200."""
    assert _get(private.url + "cbsecret/") == (401, REALM)
    assert _get(private.url + "cbsecret/", BOB)[0] == 404
    assert _get(private.server.url + "alice/missing/+simple/cbsecret/", BOB)[0] == 404
    assert _get(private.url + "cbsecret/", ALICE)[0] == 200
    assert _get(private.url + "cbsecret/", ("alice", "wrong"))[0] == 401


def test_pip_with_credentials_in_the_index_url(private: Private, tmp_path: Path) -> None:
    env = _env(_home(tmp_path, "home"))
    before = _refused_reads(private.server, "/alice/private/")
    _fails_unauthorized(
        private, _pip(private.url, tmp_path / "anon", env), tmp_path / "anon", before
    )
    bob = _pip(private.with_credentials(*BOB), tmp_path / "bob", env)
    assert bob.startswith("failed") and installed(tmp_path / "bob") == set(), bob
    _succeeds(_pip(private.with_credentials(*ALICE), tmp_path / "t", env), tmp_path / "t")


@pytest.mark.parametrize("where", ["home", "NETRC"])
def test_pip_with_netrc(private: Private, tmp_path: Path, where: str) -> None:
    """``~/.netrc`` (HOME in tmp_path) or the file ``$NETRC`` names: pip sends it up front."""
    home = _home(tmp_path, "home")
    before = _refused_reads(private.server, "/alice/private/")
    _fails_unauthorized(
        private, _pip(private.url, tmp_path / "anon", _env(home)), tmp_path / "anon", before
    )
    host = urlsplit(private.url).hostname or ""
    if where == "home":
        _netrc(home, host, *ALICE)
        env = _env(home)
    else:
        elsewhere = _home(tmp_path, "elsewhere")
        env = _env(home, {"NETRC": str(_netrc(elsewhere, host, *ALICE))})
    _succeeds(_pip(private.url, tmp_path / "t", env), tmp_path / "t")


def _keyring_env(tmp_path: Path, entries: dict[str, list[str]]) -> dict[str, str]:
    """The file-backed keyring (KEYRING_BACKEND) with ``entries``: service -> [user, password]."""
    module_dir = _home(tmp_path, "keyring-backend")
    (module_dir / "cb_file_keyring.py").write_text(KEYRING_BACKEND, encoding="utf-8")
    store = module_dir / "keyring.json"
    store.write_text(json.dumps(entries), encoding="utf-8")
    return _env(
        _home(tmp_path, "home"),
        {
            "PYTHONPATH": str(module_dir),
            "PYTHON_KEYRING_BACKEND": "cb_file_keyring.FileKeyring",
            "CB_TEST_KEYRING": str(store),
        },
    )


def test_pip_with_keyring(private: Private, tmp_path: Path) -> None:
    """``--keyring-provider import``: after the 401, pip asks the keyring (here a file-backed
    backend the test writes; keyring itself is in the test virtualenv, as twine needs it) for the
    index URL's credentials, and retries. With the keyring disabled the same install fails."""
    env = _keyring_env(tmp_path, {private.netloc: list(ALICE)})
    before = _refused_reads(private.server, "/alice/private/")
    disabled = _pip(private.url, tmp_path / "anon", env, "--keyring-provider", "disabled")
    _fails_unauthorized(private, disabled, tmp_path / "anon", before)
    imported = _pip(private.url, tmp_path / "t", env, "--keyring-provider", "import")
    _succeeds(imported, tmp_path / "t")


def test_uv_with_credentials_in_the_index_url(private: Private, tmp_path: Path) -> None:
    env = _env(_home(tmp_path, "home"))
    before = _refused_reads(private.server, "/alice/private/")
    anonymous = _uv(tmp_path / "anon", env, "--default-index", private.url)
    _fails_unauthorized(private, anonymous, tmp_path / "anon", before)
    assert "401" in anonymous, anonymous  # uv names the status it got
    with_url = _uv(tmp_path / "t", env, "--default-index", private.with_credentials(*ALICE))
    _succeeds(with_url, tmp_path / "t")


def test_uv_with_index_credentials_from_the_environment(private: Private, tmp_path: Path) -> None:
    """A named index (``--default-index cb=URL``) takes ``UV_INDEX_CB_USERNAME``/``_PASSWORD``."""
    home = _home(tmp_path, "home")
    before = _refused_reads(private.server, "/alice/private/")
    named = ("--default-index", f"cb={private.url}")
    _fails_unauthorized(
        private, _uv(tmp_path / "anon", _env(home), *named), tmp_path / "anon", before
    )
    env = _env(home, {"UV_INDEX_CB_USERNAME": ALICE[0], "UV_INDEX_CB_PASSWORD": ALICE[1]})
    _succeeds(_uv(tmp_path / "t", env, *named), tmp_path / "t")


def test_uv_with_netrc(private: Private, tmp_path: Path) -> None:
    home = _home(tmp_path, "home")
    before = _refused_reads(private.server, "/alice/private/")
    index = ("--default-index", private.url)
    _fails_unauthorized(
        private, _uv(tmp_path / "anon", _env(home), *index), tmp_path / "anon", before
    )
    _netrc(home, urlsplit(private.url).hostname or "", *ALICE)
    _succeeds(_uv(tmp_path / "t", _env(home), *index), tmp_path / "t")


def test_uv_with_keyring_subprocess(private: Private, tmp_path: Path) -> None:
    """``--keyring-provider subprocess`` runs ``keyring get URL USER`` (the keyring CLI of the
    test virtualenv, on PATH, with the file backend): the user name comes from the index URL."""
    url = private.with_credentials(ALICE[0], "").replace(":@", "@")
    assert url.startswith("http://alice@"), url
    env = _keyring_env(tmp_path, {private.netloc: list(ALICE)})
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    before = _refused_reads(private.server, "/alice/private/")
    anonymous = _uv(tmp_path / "anon", env, "--default-index", url)
    _fails_unauthorized(private, anonymous, tmp_path / "anon", before)
    with_keyring = _uv(
        tmp_path / "t", env, "--default-index", url, "--keyring-provider", "subprocess"
    )
    _succeeds(with_keyring, tmp_path / "t")


def _consumer(directory: Path, tool_section: str) -> Path:
    """A project that depends on cbsecret only, with ``tool_section`` (its index) appended."""
    directory.mkdir()
    (directory / "pyproject.toml").write_text(
        "[project]\n"
        'name = "consumer"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        'dependencies = ["cbsecret"]\n\n' + tool_section,
        encoding="utf-8",
    )
    return directory


def _new_venv(path: Path) -> Path:
    """A fresh virtualenv (stdlib venv, no pip) for poetry and pdm to install into: never the
    shared test virtualenv. Returns its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _site_packages(venv_python: Path) -> Path:
    found = list((venv_python.parent.parent / "lib").glob("python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def _tool_env(home: Path, venv: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """poetry and pdm: config, cache and data under ``home``, no keyring, the venv active."""
    return _env(
        home,
        {
            "POETRY_CONFIG_DIR": str(home / "poetry-config"),
            "POETRY_CACHE_DIR": str(home / "poetry-cache"),
            "POETRY_DATA_DIR": str(home / "poetry-data"),
            "POETRY_KEYRING_ENABLED": "false",
            "POETRY_VIRTUALENVS_CREATE": "false",
            "POETRY_INSTALLER_NO_BINARY": ":none:",
            "PDM_CHECK_UPDATE": "false",
            "PDM_CACHE_DIR": str(home / "pdm-cache"),
            "PDM_CONFIG_FILE": str(home / "pdm-config.toml"),
            "VIRTUAL_ENV": str(venv.parent.parent),
            **extra,
        },
    )


def test_poetry_source_with_credentials(private: Private, tmp_path: Path) -> None:
    """A primary poetry source (PyPI then unused) with ``POETRY_HTTP_BASIC_CB_*``: ``poetry
    lock`` resolves from the private index and ``poetry install`` installs into a fresh venv."""
    home = _home(tmp_path, "home")
    venv = _new_venv(tmp_path / "venv")
    project = _consumer(
        tmp_path / "project",
        "[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "cb"\nurl = "{private.url}"\npriority = "primary"\n',
    )
    poetry = [str(BIN / "poetry"), "--no-interaction", "--no-ansi"]
    before = _refused_reads(private.server, "/alice/private/")
    anonymous = _run([*poetry, "lock"], _tool_env(home, venv, {}), project)
    assert anonymous.startswith("failed"), anonymous
    assert not (project / "poetry.lock").exists()
    assert _refused_reads(private.server, "/alice/private/") > before
    env = _tool_env(
        home,
        venv,
        {"POETRY_HTTP_BASIC_CB_USERNAME": ALICE[0], "POETRY_HTTP_BASIC_CB_PASSWORD": ALICE[1]},
    )
    locked = _run([*poetry, "lock"], env, project)
    assert locked.startswith("ok"), locked
    lock = (project / "poetry.lock").read_text(encoding="utf-8")
    assert 'name = "cbsecret"' in lock and 'name = "lib-c"' in lock, lock
    done = _run([*poetry, "install", "--no-root"], env, project)
    assert done.startswith("ok"), done
    assert installed(_site_packages(venv)) == EXPECTED, done


def test_pdm_source_with_credentials(private: Private, tmp_path: Path) -> None:
    """A pdm source named pypi (replacing PyPI) whose URL takes its credentials from the
    environment (``${CB_USER}``/``${CB_PASSWORD}``, expanded by pdm): ``pdm lock`` and ``pdm
    sync`` into a fresh venv."""
    home = _home(tmp_path, "home")
    venv = _new_venv(tmp_path / "venv")
    parts = urlsplit(private.url)
    templated = parts._replace(netloc=f"${{CB_USER}}:${{CB_PASSWORD}}@{parts.netloc}").geturl()
    project = _consumer(
        tmp_path / "project",
        "[tool.pdm]\ndistribution = false\n\n"
        f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{templated}"\n',
    )
    pdm = [str(BIN / "pdm")]
    base = {"PDM_PYTHON": str(venv), "PDM_USE_VENV": "true", "PDM_IGNORE_SAVED_PYTHON": "1"}
    before = _refused_reads(private.server, "/alice/private/")
    anonymous_env = _tool_env(home, venv, {**base, "CB_USER": "", "CB_PASSWORD": ""})
    anonymous = _run([*pdm, "lock"], anonymous_env, project)
    assert anonymous.startswith("failed"), anonymous
    assert not (project / "pdm.lock").exists()
    assert _refused_reads(private.server, "/alice/private/") > before
    env = _tool_env(home, venv, {**base, "CB_USER": ALICE[0], "CB_PASSWORD": ALICE[1]})
    locked = _run([*pdm, "lock"], env, project)
    assert locked.startswith("ok"), locked
    lock = (project / "pdm.lock").read_text(encoding="utf-8")
    assert 'name = "cbsecret"' in lock and 'name = "lib-c"' in lock, lock
    assert ALICE[1] not in lock  # the lock keeps the URL's template, not the password
    done = _run([*pdm, "sync", "--no-self"], env, project)
    assert done.startswith("ok"), done
    assert installed(_site_packages(venv)) == EXPECTED, done


def test_read_requires_auth_mirror_install(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """``--read-requires-auth``: even root/pypi needs sign-in; pip through it with root's
    credentials installs the tree, without them gets 401 and installs nothing."""
    server = server_factory.start(html_upstream.simple_url, "--read-requires-auth")
    assert _get(server.index_url + "app/") == (401, REALM)
    env = _env(_home(tmp_path, "home"))
    anonymous = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--no-input",
            "--retries",
            "0",
            "--target",
            str(tmp_path / "anon"),
            "--index-url",
            server.index_url,
            "app",
        ],
        env,
    )
    assert anonymous.startswith("failed"), anonymous
    assert installed(tmp_path / "anon") == set()
    assert _refused_reads(server, "/root/pypi/+simple/app/") >= 1
    parts = urlsplit(server.index_url)
    with_root = parts._replace(netloc=f"root:{ROOT_PASSWORD}@{parts.netloc}").geturl()
    done = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--no-input",
            "--retries",
            "0",
            "--target",
            str(tmp_path / "t"),
            "--index-url",
            with_root,
            "app",
        ],
        env,
    )
    assert done.startswith("ok"), done
    assert installed(tmp_path / "t") == {"app", "lib_a", "lib_b", "lib_c"}


def test_client_install_passes_credentials_without_showing_them(
    private: Private, tmp_path: Path
) -> None:
    """``cheeseboard install`` as alice installs from her private index with pip and uv; her
    token and password appear nowhere in its output, also when the installer fails (a missing
    project, a wrong password). Signed out, the same install fails with the 401."""
    cli = Cli(tmp_path / "client")
    cli.ok("use", private.server.url)
    # The index comes from the environment (``use`` of a private index needs a signed-in
    # reader: test_client_use_checks_a_private_index_as_the_signed_in_user).
    here = {"CHEESEBOARD_INDEX": "alice/private"}

    def install(*args: str, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
        result = cli("install", *args, env={**here, **(env or {})})
        return result.returncode == 0, result.stdout + result.stderr

    before = _refused_reads(private.server, "/alice/private/")
    ok, output = install("--target", str(tmp_path / "anon"), "--no-cache-dir", "cbsecret")
    assert not ok, output
    _fails_unauthorized(private, "failed" + output, tmp_path / "anon", before)
    cli.ok("login", ALICE[0], "--password", ALICE[1])
    token = json.loads((tmp_path / "client" / "client.json").read_text())["token"]
    assert token
    secrets = (ALICE[1], token, base64.b64encode(f"alice:{token}".encode()).decode())
    for installer in ([], ["--uv"]):
        target = tmp_path / f"t{len(installer)}"
        cache = "--no-cache" if installer else "--no-cache-dir"
        ok, output = install(*installer, "--target", str(target), cache, "cbsecret")
        assert ok, output
        assert installed(target) == EXPECTED, output
        assert not any(secret in output for secret in secrets), output
        assert f"--index-url {private.url}" in output  # the command is shown, as it runs
        ok, output = install(*installer, "-v", "--target", str(target), cache, "cb-absent")
        assert not ok and "cb-absent" in output, output
        assert not any(secret in output for secret in secrets), output
    # A password from the environment (never stored): neither it nor a wrong one is shown.
    for password in (ALICE[1], "wrong-Pa55word-xyz"):
        env = {"CHEESEBOARD_USER": "alice", "CHEESEBOARD_PASSWORD": password}
        ok, output = install("-v", "--target", str(tmp_path / "x"), "cbsecret", env=env)
        assert ok == (password == ALICE[1]), output
        assert password not in output, output


def test_client_use_checks_a_private_index_as_the_signed_in_user(
    private: Private, tmp_path: Path
) -> None:
    """``cheeseboard use USER/INDEX`` on the same server checks the index with the stored
    credentials: signed out a private index is refused (401), signed in as a reader it is used."""
    cli = Cli(tmp_path / "client")
    cli.ok("use", private.server.url)
    refused = cli("use", "alice/private")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "401" in refused.stderr or "sign in" in refused.stderr, refused.stderr
    cli.ok("login", ALICE[0], "--password", ALICE[1])
    assert "using" in cli.ok("use", "alice/private")
    config = json.loads((tmp_path / "client" / "client.json").read_text())
    assert config["index"] == "alice/private" and config["user"] == "alice"
