"""Private stage indexes: the seed workflow, non-volatile rules and dependency confusion."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import call, twine_upload
from tests.support.clients import installed, pip_install, uv_install
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module (tests/conftest.py); users and indexes reset after each test."""
    return shared_mirror_server


def _setup_local_stable(server: CheeseboardServer, volatile: str = "False") -> None:
    """The seed: user ``local`` and index ``local/stable`` with bases=root/pypi, created by root."""
    status, body = call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)
    assert status == 201, body
    status, body = call(
        server.url,
        "PUT",
        "/local/stable",
        {"bases": "root/pypi", "volatile": volatile},
        auth=ROOT,
    )
    assert status == 200, body
    assert body["result"]["bases"] == ["root/pypi"]
    assert body["result"]["acl_upload"] == ["local"]


def _page(server: CheeseboardServer, index: str, project: str, as_json: bool = False) -> Any:
    headers = {"Accept": JSON} if as_json else {}
    request = urllib.request.Request(f"{server.url}{index}/+simple/{project}/", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read().decode()
    return json.loads(body) if as_json else body


def test_seed_workflow_twine_pip_uv(mirror_server: CheeseboardServer, tmp_path: Path) -> None:
    """Create local/stable, twine-upload a private wheel, install it with its public dependency."""
    _setup_local_stable(mirror_server)
    wheel = build_wheel(tmp_path / "dist", "private_package", "0.1.0", requires_dist=["lib-c"])
    sdist = build_sdist(tmp_path / "dist", "private_package", "0.1.0", requires_dist=["lib-c"])
    result = twine_upload(f"{mirror_server.url}local/stable/", *LOCAL, wheel.path, sdist.path)
    assert result.returncode == 0, result.stdout + result.stderr
    index_url = f"{mirror_server.url}local/stable/+simple/"
    pip = pip_install(index_url, tmp_path / "pip", "private_package")
    assert pip.returncode == 0, pip.stderr
    assert installed(tmp_path / "pip") == {"private_package", "lib_c"}
    uv = uv_install(index_url, tmp_path / "uv", "private_package")
    assert uv.returncode == 0, uv.stderr
    assert installed(tmp_path / "uv") == {"private_package", "lib_c"}
    page = _page(mirror_server, "local/stable", "private-package", as_json=True)
    files = {f["filename"]: f for f in page["files"]}
    assert files[wheel.filename]["hashes"]["sha256"] == wheel.sha256
    assert (
        files[wheel.filename]["core-metadata"]["sha256"]
        == hashlib.sha256(wheel.metadata).hexdigest()
    )
    assert files[wheel.filename]["size"] == wheel.size
    metadata_url = urllib.parse.urljoin(
        f"{mirror_server.url}local/stable/+simple/private-package/",
        files[wheel.filename]["url"].split("#")[0] + ".metadata",
    )
    with urllib.request.urlopen(metadata_url, timeout=30) as response:
        assert response.read() == wheel.metadata  # PEP 658, straight after the upload


def test_non_volatile_rules(mirror_server: CheeseboardServer, tmp_path: Path) -> None:
    """Same bytes again: 200; other bytes: 409 'File already exists'; index delete refused."""
    _setup_local_stable(mirror_server)
    first = build_wheel(tmp_path / "a", "private_package", "0.1.0")
    changed = build_wheel(tmp_path / "b", "private_package", "0.1.0", summary="changed")
    assert first.filename == changed.filename and first.sha256 != changed.sha256
    url = f"{mirror_server.url}local/stable/"
    assert twine_upload(url, *LOCAL, first.path).returncode == 0
    again = twine_upload(url, *LOCAL, first.path)
    assert again.returncode == 0, again.stdout + again.stderr
    conflict = twine_upload(url, *LOCAL, changed.path)
    assert conflict.returncode != 0
    assert "409" in conflict.stdout + conflict.stderr
    assert twine_upload(url, *LOCAL, changed.path, skip_existing=True).returncode == 0
    page = _page(mirror_server, "local/stable", "private-package", as_json=True)
    assert [f["hashes"]["sha256"] for f in page["files"]] == [first.sha256]
    status, body = call(mirror_server.url, "DELETE", "/local/stable", auth=ROOT)
    assert status == 403, body
    assert call(mirror_server.url, "GET", "/local/stable")[0] == 200


def test_dependency_confusion_guard(
    server_factory: ServerFactory, tmp_path: Path, dists: dict[str, list[Dist]]
) -> None:
    """A private name hides upstream files unless whitelisted; a child index hides them again."""
    public = build_wheel(tmp_path / "public", "foo", "1.0")
    with UpstreamServer() as upstream:
        upstream.add(public)
        server = server_factory.start(upstream.simple_url)
        _setup_local_stable(server, volatile="True")
        private = build_wheel(tmp_path / "private", "foo", "9.0")
        url = f"{server.url}local/stable/"
        refused = twine_upload(url, *LOCAL, private.path)
        assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
        status, body = call(
            server.url, "PATCH", "/local/stable", ["allow_upstream_names=True"], auth=LOCAL
        )
        assert status == 200, body
        assert twine_upload(url, *LOCAL, private.path).returncode == 0

        def filenames(index: str) -> tuple[set[str], set[str]]:
            html = _page(server, index, "foo")
            as_json = {f["filename"] for f in _page(server, index, "foo", True)["files"]}
            in_html = {name for name in (public.filename, private.filename) if name in html}
            return in_html, as_json

        assert filenames("local/stable") == ({private.filename}, {private.filename})
        status, body = call(
            server.url, "PATCH", "/local/stable", ["mirror_whitelist+=foo"], auth=LOCAL
        )
        assert status == 200, body
        both = {private.filename, public.filename}
        assert filenames("local/stable") == (both, both)
        status, body = call(
            server.url, "PUT", "/local/child", {"bases": ["local/stable"]}, auth=ROOT
        )
        assert status == 200, body
        assert filenames("local/child") == ({private.filename}, {private.filename})
        status, body = call(
            server.url,
            "PATCH",
            "/local/child",
            ["mirror_whitelist_inheritance=union"],
            auth=ROOT,
        )
        assert status == 200, body
        assert filenames("local/child") == (both, both)


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (None, 401),
        (("local", "wrong"), 401),
        (("other", "other-secret"), 403),
        (LOCAL, 200),
    ],
)
def test_upload_permissions(
    mirror_server: CheeseboardServer, tmp_path: Path, who: tuple[str, str] | None, expected: int
) -> None:
    """Only acl_upload may upload: anonymous and wrong passwords get 401, others 403."""
    _setup_local_stable(mirror_server)
    assert (
        call(mirror_server.url, "PUT", "/other", {"password": "other-secret"}, auth=ROOT)[0] == 201
    )
    wheel = build_wheel(tmp_path, "private_package", "0.1.0")
    user, password = who if who else ("", "")
    result = twine_upload(f"{mirror_server.url}local/stable/", user, password, wheel.path)
    output = result.stdout + result.stderr
    if expected == 200:
        assert result.returncode == 0, output
    else:
        assert result.returncode != 0 and str(expected) in output, output
        with pytest.raises(urllib.error.HTTPError) as error:
            _page(mirror_server, "local/stable", "private-package")
        error.value.close()
        assert error.value.code == 404


def test_second_mirror_index_with_its_own_upstream(
    mirror_server: CheeseboardServer, tmp_path: Path
) -> None:
    """A mirror index created through the API serves its own upstream; stages can inherit it."""
    extra = build_wheel(tmp_path, "only-elsewhere", "3.0")
    with UpstreamServer(mode="json") as other:
        other.add(extra)
        status, body = call(
            mirror_server.url,
            "PUT",
            "/root/other",
            {"type": "mirror", "mirror_url": other.simple_url},
            auth=ROOT,
        )
        assert status == 200, body
        assert body["result"]["mirror_url"] == other.simple_url
        page = _page(mirror_server, "root/other", "only-elsewhere", as_json=True)
        assert [f["filename"] for f in page["files"]] == [extra.filename]
        status, body = call(
            mirror_server.url,
            "PUT",
            "/root/both",
            {"bases": ["root/pypi", "root/other"]},
            auth=ROOT,
        )
        assert status == 200, body
        result = pip_install(
            f"{mirror_server.url}root/both/+simple/", tmp_path / "t", "only-elsewhere", "lib-c"
        )
        assert result.returncode == 0, result.stderr
        assert installed(tmp_path / "t") == {"only_elsewhere", "lib_c"}
