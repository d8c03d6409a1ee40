"""Project and version JSON, yanking (PEP 592) and removal, on the pages at once."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import call, twine_upload
from tests.support.clients import pip_install
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
OTHER = ("other", "other-secret")
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module (tests/conftest.py); users and indexes reset after each test."""
    return shared_mirror_server


def _page(server: CheeseboardServer, index: str, as_json: bool) -> Any:
    headers = {"Accept": JSON} if as_json else {}
    request = urllib.request.Request(f"{server.url}{index}/+simple/priv/", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read().decode()
    return json.loads(body) if as_json else body


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


@pytest.fixture
def uploaded(mirror_server: CheeseboardServer, tmp_path: Path) -> dict[str, Dist]:
    """priv 1.0 and 2.0 on local/dev (volatile) and local/prod (non-volatile)."""
    for user, password in (LOCAL, OTHER):
        assert (
            call(mirror_server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)[0] == 201
        )
    for name, volatile in (("dev", True), ("prod", False)):
        body = {"volatile": volatile, "acl_upload": ["local", "other"]}
        assert call(mirror_server.url, "PUT", f"/local/{name}", body, auth=ROOT)[0] == 200
    wheels = {v: build_wheel(tmp_path / v, "priv", v) for v in ("1.0", "2.0")}
    for index in ("dev", "prod"):
        for wheel in wheels.values():
            result = twine_upload(f"{mirror_server.url}local/{index}/", *LOCAL, wheel.path)
            assert result.returncode == 0, result.stdout
    return wheels


def test_project_and_version_json(
    mirror_server: CheeseboardServer, uploaded: dict[str, Dist]
) -> None:
    """projectconfig lists both versions with +links; versiondata finds 1.0.0 as 1.0."""
    status, body = call(mirror_server.url, "GET", "/local/dev/priv")
    assert status == 200 and body["type"] == "projectconfig"
    assert set(body["result"]) == {"1.0", "2.0"}
    link = body["result"]["2.0"]["+links"][0]
    assert link["hashes"]["sha256"] == uploaded["2.0"].sha256
    assert link["log"][0]["who"] == "local"
    assert _status(link["href"]) == 200
    status, body = call(mirror_server.url, "GET", "/local/dev/priv/1.0.0")
    assert status == 200 and body["result"]["version"] == "1.0"
    assert call(mirror_server.url, "GET", "/local/dev/priv/3.0")[0] == 404
    assert call(mirror_server.url, "GET", "/local/dev/nothing")[0] == 404


def test_yank_and_unyank_show_at_once(
    mirror_server: CheeseboardServer, uploaded: dict[str, Dist], tmp_path: Path
) -> None:
    """A yanked release is marked in HTML and JSON, skipped by pip unless pinned; un-yank works."""
    wheel = uploaded["2.0"]
    status, body = call(
        mirror_server.url, "PATCH", "/local/dev/priv/2.0", {"yanked": "broken <build>"}, auth=LOCAL
    )
    assert status == 200, body
    assert 'data-yanked="broken &lt;build&gt;"' in _page(mirror_server, "local/dev", False)
    files = {f["filename"]: f for f in _page(mirror_server, "local/dev", True)["files"]}
    assert files[wheel.filename]["yanked"] == "broken <build>"
    assert "yanked" not in files[uploaded["1.0"].filename]
    index_url = f"{mirror_server.url}local/dev/+simple/"
    result = pip_install(index_url, tmp_path / "latest", "priv")
    assert result.returncode == 0 and (tmp_path / "latest" / "priv-1.0.dist-info").is_dir()
    pinned = pip_install(index_url, tmp_path / "pinned", "priv==2.0")
    assert pinned.returncode == 0 and (tmp_path / "pinned" / "priv-2.0.dist-info").is_dir()
    assert (
        call(mirror_server.url, "PATCH", "/local/dev/priv/2.0", {"yanked": False}, auth=LOCAL)[0]
        == 200
    )
    assert "data-yanked" not in _page(mirror_server, "local/dev", False)
    status, _ = call(mirror_server.url, "PATCH", "/local/dev/priv/2.0", {"yanked": True})
    assert status == 401


def test_remove_on_volatile_index(
    mirror_server: CheeseboardServer, uploaded: dict[str, Dist]
) -> None:
    """Uploaders remove versions and files; the page changes at once; strangers may not."""
    assert call(mirror_server.url, "PUT", "/stranger", {"password": "s"}, auth=ROOT)[0] == 201
    assert (
        call(mirror_server.url, "DELETE", "/local/dev/priv/2.0", auth=("stranger", "s"))[0] == 403
    )
    assert call(mirror_server.url, "DELETE", "/local/dev/priv/2.0")[0] == 401
    assert call(mirror_server.url, "DELETE", "/local/dev/priv/2.0", auth=OTHER)[0] == 200
    names = [f["filename"] for f in _page(mirror_server, "local/dev", True)["files"]]
    assert names == [uploaded["1.0"].filename]
    digest = uploaded["1.0"].sha256
    file_path = f"/local/dev/+f/{digest[:3]}/{digest[3:16]}/{uploaded['1.0'].filename}"
    assert call(mirror_server.url, "DELETE", file_path, auth=LOCAL)[0] == 200
    assert _status(f"{mirror_server.url}local/dev/+simple/priv/") == 404
    assert _status(mirror_server.url.rstrip("/") + file_path) == 404


def test_remove_on_non_volatile_needs_force_and_owner(
    mirror_server: CheeseboardServer, uploaded: dict[str, Dist]
) -> None:
    """Without force: 403; an uploader who is not the owner: 403 even with force; owner: 200."""
    status, body = call(mirror_server.url, "DELETE", "/local/prod/priv/1.0", auth=LOCAL)
    assert status == 403 and "force" in body["message"]
    assert call(mirror_server.url, "DELETE", "/local/prod/priv/1.0?force=", auth=OTHER)[0] == 403
    assert len(_page(mirror_server, "local/prod", True)["files"]) == 2
    assert call(mirror_server.url, "DELETE", "/local/prod/priv?force=", auth=LOCAL)[0] == 200
    assert _status(f"{mirror_server.url}local/prod/+simple/priv/") == 404


def test_project_json_follows_bases_unless_ignore_bases(
    mirror_server: CheeseboardServer, uploaded: dict[str, Dist]
) -> None:
    """A child index shows its bases' versions; ?ignore_bases shows only its own (none here)."""
    assert (
        call(mirror_server.url, "PUT", "/local/child", {"bases": "local/dev"}, auth=ROOT)[0] == 200
    )
    status, body = call(mirror_server.url, "GET", "/local/child/priv")
    assert status == 200 and set(body["result"]) == {"1.0", "2.0"}, body
    assert call(mirror_server.url, "GET", "/local/child/priv?ignore_bases=")[0] == 404
