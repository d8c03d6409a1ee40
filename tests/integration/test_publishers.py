"""uv, poetry, pdm and hatch publish pre-built files to a stage index (legacy upload API).

Every tool runs from the test virtualenv with its config, cache and home in ``tmp_path``, so no
user configuration is read and nothing is fetched: the files are built by
``tests.support.packages`` and only published (no tool builds anything).

What each tool sends (captured from its multipart POSTs; all send HTTP Basic auth up front):

- uv 0.13: ``:action``, ``sha256_digest``, ``blake2_256_digest``, ``protocol_version``,
  ``metadata_version``, ``name`` (as in METADATA), ``version``, ``filetype``, ``pyversion``,
  ``summary``, ``requires_python`` (empty when unset), ``content``. Files in argument order.
- poetry 2.5: ``md5_digest``, ``sha256_digest``, ``blake2_256_digest``, ``filetype``,
  ``pyversion``, ``version``, ``name``, ``metadata_version``, ``summary``, ``:action``,
  ``protocol_version``, ``content``. The sdist goes first, then the wheel.
- pdm 2.29: ``name``, ``version``, ``filetype``, ``pyversion``, ``metadata_version``,
  ``summary`` plus empty ``home_page``, ``author(_email)``, ``maintainer(_email)``, ``license``,
  ``description(_content_type)``, ``keywords``, ``download_url``, ``comment``; then the three
  digests (md5, sha256, blake2_256), ``:action``, ``protocol_version``, ``content``. Wheels first.
- hatch 1.18: first ``GET <repo>/%2Bsimple/<name>/`` (``+`` percent-encoded, no Accept header,
  ``Cache-Control: no-cache``) and skips every filename the page already links; then per file
  ``description`` (empty), ``metadata_version``, ``name``, ``version``, ``summary``,
  ``filetype``, ``pyversion``, ``:action``, ``protocol_version``, md5/sha256/blake2_256,
  ``content``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.api import call
from tests.support.packages import Dist, build_sdist, build_wheel, installer_env, normalize
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
JSON = "application/vnd.pypi.simple.v1+json"
BIN = Path(sys.executable).parent
VERSION = "1.0"
UPLOAD_LINE = re.compile(r'method=POST path="/local/stable/" status=(\d+)')


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module (tests/conftest.py); users and indexes reset after each test."""
    return shared_mirror_server


@dataclass(frozen=True)
class Project:
    """A project directory: pyproject.toml, ``dist/`` and ``changed/`` (same names, new bytes)."""

    root: Path
    name: str
    first: list[Dist]
    changed: list[Dist]


def _project(tmp_path: Path, name: str) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    # poetry and pdm need a project; poetry finds ``<dist_name>-<version>*`` files by it.
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{VERSION}"\n', encoding="utf-8"
    )
    first = [build_wheel(root / "dist", name, VERSION), build_sdist(root / "dist", name, VERSION)]
    changed = [
        build_wheel(root / "changed", name, VERSION, summary="changed"),
        build_sdist(root / "changed", name, VERSION, summary="changed"),
    ]
    assert [d.filename for d in first] == [d.filename for d in changed]
    assert all(a.sha256 != b.sha256 for a, b in zip(first, changed, strict=True))
    return Project(root, name, first, changed)


def _env(home: Path, upload_url: str) -> dict[str, str]:
    """No user config, keyring, update check or virtualenv creation for any of the tools."""
    home.mkdir(exist_ok=True)
    (home / "hatch.toml").touch()  # hatch refuses a HATCH_CONFIG that does not exist
    env = {
        k: v
        for k, v in installer_env().items()
        if not k.startswith(("POETRY_", "PDM_", "HATCH_", "TWINE_", "XDG_"))
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "POETRY_CONFIG_DIR": str(home / "poetry-config"),
            "POETRY_CACHE_DIR": str(home / "poetry-cache"),
            "POETRY_DATA_DIR": str(home / "poetry-data"),
            "POETRY_KEYRING_ENABLED": "false",
            "POETRY_REPOSITORIES_CB_URL": upload_url,
            "PDM_CHECK_UPDATE": "false",
            "PDM_USE_VENV": "false",
            "PDM_PYTHON": sys.executable,
            "HATCH_CONFIG": str(home / "hatch.toml"),
            "HATCH_DATA_DIR": str(home / "hatch-data"),
            "HATCH_CACHE_DIR": str(home / "hatch-cache"),
        }
    )
    return env


def _uv(url: str, files: list[Path], skip_existing: bool) -> list[str]:
    """``uv publish`` has no --skip-existing; its --check-url skips files with the same hash."""
    check = ["--check-url", f"{url}+simple/"] if skip_existing else []
    return [
        str(BIN / "uv"),
        "publish",
        "--no-cache",
        "--trusted-publishing",
        "never",
        "--publish-url",
        url,
        *check,
        "--username",
        LOCAL[0],
        "--password",
        LOCAL[1],
        *map(str, files),
    ]


def _poetry(url: str, files: list[Path], skip_existing: bool) -> list[str]:
    """The repository ``cb`` comes from POETRY_REPOSITORIES_CB_URL (set to ``url``)."""
    return [
        str(BIN / "poetry"),
        "publish",
        "--no-interaction",
        "--repository",
        "cb",
        "--username",
        LOCAL[0],
        "--password",
        LOCAL[1],
        "--dist-dir",
        files[0].parent.name,
        *(["--skip-existing"] if skip_existing else []),
    ]


def _pdm(url: str, files: list[Path], skip_existing: bool) -> list[str]:
    return [
        str(BIN / "pdm"),
        "publish",
        "--no-build",
        "--repository",
        url,
        "--username",
        LOCAL[0],
        "--password",
        LOCAL[1],
        "--dest",
        files[0].parent.name,
        *(["--skip-existing"] if skip_existing else []),
    ]


def _hatch(url: str, files: list[Path], skip_existing: bool) -> list[str]:
    """hatch has no --skip-existing: it always skips the filenames ``+simple`` already lists."""
    return [
        str(BIN / "hatch"),
        "publish",
        "--no-prompt",
        "--repo",
        url,
        "--user",
        LOCAL[0],
        "--auth",
        LOCAL[1],
        *map(str, files),
    ]


Command = Callable[[str, list[Path], bool], list[str]]


@dataclass(frozen=True)
class Tool:
    """How one publisher is called and what it does when the files are already there."""

    command: Command
    # Upload statuses the server logs when the identical files are published again.
    again: list[int]
    # (exit 0?, upload statuses) for changed bytes under existing names, without skip-existing.
    changed: tuple[bool, list[int]]
    # The same with --skip-existing (uv: --check-url); None when the tool has no such option.
    changed_skip: tuple[bool, list[int]] | None


TOOLS = {
    # uv sends everything again (200, 200). Changed: the wheel gets 409, uv stops there (exit 2,
    # "409 Conflict. Server says: {"message":"File already exists: ..."}"). With --check-url it
    # reads +simple first, sees another sha256 and refuses without uploading.
    "uv": Tool(_uv, again=[200, 200], changed=(False, [409]), changed_skip=(False, [])),
    # poetry and pdm send again (200, 200); changed bytes: 409 on the first file and exit 1;
    # with --skip-existing both 409s are "File exists. Skipping" and the exit is 0.
    "poetry": Tool(
        _poetry, again=[200, 200], changed=(False, [409]), changed_skip=(True, [409, 409])
    ),
    "pdm": Tool(_pdm, again=[200, 200], changed=(False, [409]), changed_skip=(True, [409, 409])),
    # hatch's +simple pre-check finds both filenames: "already exists", nothing sent, exit 0,
    # for identical and changed bytes alike (it compares names only).
    "hatch": Tool(_hatch, again=[], changed=(True, []), changed_skip=None),
}


def _setup_local_stable(server: CheeseboardServer) -> str:
    """User ``local`` and non-volatile ``local/stable`` (bases root/pypi), created by root."""
    status, body = call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)
    assert status == 201, body
    status, body = call(
        server.url,
        "PUT",
        "/local/stable",
        {"bases": "root/pypi", "volatile": "False"},
        auth=ROOT,
    )
    assert status == 200, body
    assert body["result"]["volatile"] is False
    return f"{server.url}local/stable/"


def _files(server: CheeseboardServer, project: str) -> dict[str, str]:
    """``{filename: sha256}`` from the PEP 691 page of ``local/stable``."""
    request = urllib.request.Request(
        f"{server.url}local/stable/+simple/{normalize(project)}/", headers={"Accept": JSON}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        page = json.loads(response.read())
    return {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}


def _upload_statuses(server: CheeseboardServer, settle: float = 0.4) -> list[int]:
    """Statuses of all uploads so far, from the access log (flushed every 200 ms)."""
    time.sleep(settle)
    return [int(status) for status in UPLOAD_LINE.findall(server.log())]


@pytest.mark.parametrize("tool_name", list(TOOLS))
def test_publish_to_stage(mirror_server: CheeseboardServer, tmp_path: Path, tool_name: str) -> None:
    """The tool publishes a wheel and an sdist to local/stable and handles re-publishing."""
    tool = TOOLS[tool_name]
    url = _setup_local_stable(mirror_server)
    project = _project(tmp_path, f"Publish_By.{tool_name}")
    env = _env(tmp_path / "home", url)
    expected = {d.filename: d.sha256 for d in project.first}

    def publish(dists: list[Dist], skip_existing: bool = False) -> tuple[bool, str, list[int]]:
        before = len(_upload_statuses(mirror_server, settle=0))
        result = subprocess.run(
            tool.command(url, [d.path for d in dists], skip_existing),
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.returncode == 0, output, _upload_statuses(mirror_server)[before:]

    ok, output, sent = publish(project.first)
    assert ok, output
    assert sent == [200, 200], output
    assert _files(mirror_server, project.name) == expected

    ok, output, sent = publish(project.first)
    assert ok, output
    assert sent == tool.again, output
    if tool_name == "hatch":
        # Its pre-check asked for ``%2Bsimple``; the server decodes that to ``+simple``.
        page = f'method=GET path="/local/stable/+simple/{normalize(project.name)}/" status=200'
        assert page in mirror_server.log(), output

    ok, output, sent = publish(project.changed)
    assert (ok, sent) == tool.changed, output
    if sent:
        # uv and poetry print the server's body ("File already exists: ..."); pdm prints only
        # "Client error '409 Conflict'".
        assert "409" in output, output

    if tool.changed_skip is not None:
        ok, output, sent = publish(project.changed, skip_existing=True)
        assert (ok, sent) == tool.changed_skip, output

    assert _files(mirror_server, project.name) == expected
