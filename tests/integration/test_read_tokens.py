"""Read-only scoped tokens against a real server: CI installs from a private index with pip and uv
(the token in the index URL), the token cannot upload, and a token for another index reads only
what an anonymous caller may.

alice/private reads for alice only (``acl_read``), over root/pypi (public); alice/public is
another of alice's indexes, readable by anyone.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.api import basic, call, status_of, twine_upload
from tests.support.clients import installed, pip_install, uv_install
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-password")


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module (tests/conftest.py); users and indexes reset after each test."""
    return shared_mirror_server


@dataclass
class Private:
    server: CheeseboardServer
    wheel: Dist  # secretpkg 1.0 on alice/private, needs lib-c from root/pypi

    def index_url(self, index: str, token: str | None = None) -> str:
        netloc = f"127.0.0.1:{self.server.port}"
        if token is not None:
            netloc = f"__token__:{urllib.parse.quote(token, safe='')}@{netloc}"
        return f"http://{netloc}/{index}/+simple/"

    def token(self, index: str, scope: str) -> str:
        body = {"indexes": [index], "scope": scope, "description": f"{scope} {index}"}
        status, made = call(self.server.url, "POST", "/alice/+tokens", body, auth=ALICE)
        assert status == 201, made
        assert made["result"]["scope"] == scope
        return str(made["result"]["token"])


def _get(url: str, token: str | None) -> int:
    headers = {"Authorization": basic("__token__", token)} if token else {}
    request = urllib.request.Request(url, headers=headers)
    return status_of(request)


@pytest.fixture
def private(mirror_server: CheeseboardServer, tmp_path: Path) -> Private:
    url = mirror_server.url
    assert call(url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    for index in ("private", "public"):
        status, body = call(url, "PUT", f"/alice/{index}", {"bases": "root/pypi"}, auth=ROOT)
        assert status == 200, body
    status, body = call(url, "PATCH", "/alice/private", ["acl_read=alice"], auth=ALICE)
    assert status == 200, body
    assert body["result"]["acl_read"] == ["alice"]
    wheel = build_wheel(tmp_path / "dist", "secretpkg", "1.0", requires_dist=["lib-c"])
    uploaded = twine_upload(f"{url}alice/private/", *ALICE, wheel.path)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    return Private(mirror_server, wheel)


def test_pip_and_uv_install_from_a_private_index_with_a_read_token(
    private: Private, tmp_path: Path
) -> None:
    # Without credentials the index is not there for pip.
    refused = pip_install(private.index_url("alice/private"), tmp_path / "anon", "secretpkg")
    assert refused.returncode != 0
    assert installed(tmp_path / "anon") == set()

    token = private.token("alice/private", "read")
    index_url = private.index_url("alice/private", token)
    pip = pip_install(index_url, tmp_path / "pip", "secretpkg")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert installed(tmp_path / "pip") == {"secretpkg", "lib_c"}
    uv = uv_install(index_url, tmp_path / "uv", "secretpkg")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert installed(tmp_path / "uv") == {"secretpkg", "lib_c"}


def test_a_read_token_cannot_upload(private: Private, tmp_path: Path) -> None:
    token = private.token("alice/private", "read")
    newer = build_wheel(tmp_path / "newer", "secretpkg", "2.0")
    result = twine_upload(f"{private.server.url}alice/private/", "__token__", token, newer.path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "403" in output, output
    status, _ = call(private.server.url, "GET", "/alice/private/secretpkg/2.0", auth=ALICE)
    assert status == 404
    # Nor push, nor manage: the token only reads.
    status, body = call(
        private.server.url,
        "POST",
        "/alice/private/",
        {"name": "secretpkg", "version": "1.0", "targetindex": "alice/public"},
        auth=("__token__", token),
    )
    assert status == 403 and "read-only" in body["message"], body
    status, _ = call(
        private.server.url, "PATCH", "/alice/private", ["title=x"], auth=("__token__", token)
    )
    assert status == 403


@pytest.mark.parametrize("scope", ["read", "upload"])
def test_a_token_for_another_index_reads_only_what_anyone_may(
    private: Private, tmp_path: Path, scope: str
) -> None:
    """A token of alice's for alice/public grants nothing on alice/private: refused there as an
    anonymous caller is (twice: the second answer comes from the hot path's memory), while
    public indexes stay readable with it."""
    token = private.token("alice/public", scope)
    base = private.server.url
    page = f"{base}alice/private/+simple/secretpkg/"
    own = private.token("alice/private", "read")
    assert _get(page, own) == 200
    for _ in range(2):
        assert _get(page, token) == 401
        assert _get(page, None) == 401
        assert _get(f"{base}alice/private/+simple/", token) == 401
        assert _get(f"{base}alice/public/+simple/lib-c/", token) == 200
        assert _get(f"{base}root/pypi/+simple/lib-c/", token) == 200
    status, _ = call(base, "GET", "/alice/private/secretpkg/1.0", auth=("__token__", token))
    assert status == 401
    pip = pip_install(private.index_url("alice/private", token), tmp_path / "pip", "secretpkg")
    assert pip.returncode != 0
    assert installed(tmp_path / "pip") == set()
