"""devpi protocol pieces over plain HTTP: /+api, X-Devpi headers, /+status, doc zips, push."""

from __future__ import annotations

import io
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import basic, call, reset_accounts, twine_upload
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CheeseboardServer, CheeseboardServer]]:
    """One mirror server for the module and an external index it may push to: the target is on
    loopback, so pushes there need the operator's allowance (--push-allow ext/)."""
    with UpstreamServer(mode="html") as upstream:
        factory = ServerFactory(tmp_path_factory.mktemp("devpi-protocol"))
        try:
            other = factory.start(upstream.simple_url, name="external")
            server = factory.start(upstream.simple_url, "--push-allow", f"{other.url}ext/")
            yield server, other
        finally:
            factory.stop_all()


@pytest.fixture
def mirror_server(
    servers: tuple[CheeseboardServer, CheeseboardServer],
) -> Iterator[CheeseboardServer]:
    """The module's server; users and indexes on both servers are reset after each test."""
    yield servers[0]
    for server in servers:
        reset_accounts(server.url, ROOT)


@pytest.fixture
def external_server(servers: tuple[CheeseboardServer, CheeseboardServer]) -> CheeseboardServer:
    return servers[1]


@pytest.fixture
def released(mirror_server: CheeseboardServer, tmp_path: Path) -> Dist:
    """local/dev and local/prod (non-volatile) with p 1.0 uploaded to local/dev."""
    assert call(mirror_server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)[0] == 201
    assert call(mirror_server.url, "PUT", "/local/dev", {}, auth=ROOT)[0] == 200
    assert call(mirror_server.url, "PUT", "/local/prod", {"volatile": False}, auth=ROOT)[0] == 200
    wheel = build_wheel(tmp_path, "p", "1.0")
    assert twine_upload(f"{mirror_server.url}local/dev/", *LOCAL, wheel.path).returncode == 0
    return wheel


def _doc_upload(server: CheeseboardServer, index: str, name: str, version: str) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", "<h1>docs</h1>")
    boundary = "cbboundary"
    parts = [
        (":action", "doc_upload"),
        ("name", name),
        ("version", version),
    ]
    body = b""
    for key, value in parts:
        disposition = f'Content-Disposition: form-data; name="{key}"'
        body += f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode()
    body += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
            f'filename="{name}-{version}.doc.zip"\r\nContent-Type: application/zip\r\n\r\n'
        ).encode()
        + buffer.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server.url}{index}/",
        data=body,
        method="POST",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": basic(*LOCAL),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_api_headers_and_status(mirror_server: CheeseboardServer, released: Dist) -> None:
    """/+api gives devpi-client its URLs and features; every reply carries X-Devpi headers."""
    status, body = call(mirror_server.url, "GET", "/local/dev/+api")
    assert status == 200 and body["type"] == "apiconfig"
    result = body["result"]
    assert result["login"] == f"{mirror_server.url}+login"
    assert result["simpleindex"] == f"{mirror_server.url}local/dev/+simple/"
    assert result["pypisubmit"] == f"{mirror_server.url}local/dev/"
    assert "server-keyvalue-parsing" in result["features"]
    assert result["authstatus"] == ["noauth", "", []]
    assert "pypisubmit" not in call(mirror_server.url, "GET", "/root/pypi/+api")[1]["result"]
    assert call(mirror_server.url, "GET", "/local/nothing/+api")[0] == 404
    with urllib.request.urlopen(f"{mirror_server.url}+api", timeout=10) as response:
        assert response.headers["X-Devpi-Api-Version"] == "2"
        assert response.headers["X-Devpi-Uuid"]
        assert int(response.headers["X-Devpi-Serial"]) > 0
    status, body = call(mirror_server.url, "GET", "/+status")
    assert status == 200 and body["result"]["role"] == "MASTER"
    assert body["result"]["serial"] > 0


def test_doc_zip_is_stored_listed_and_served(
    mirror_server: CheeseboardServer, released: Dist
) -> None:
    """A doc zip shows in versiondata +links as doczip, downloads, and stays off simple pages."""
    assert _doc_upload(mirror_server, "local/dev", "p", "1.0") == 200
    status, body = call(mirror_server.url, "GET", "/local/dev/p/1.0")
    assert status == 200, body
    links = {link["rel"]: link for link in body["result"]["+links"]}
    assert set(links) == {"releasefile", "doczip"}
    with urllib.request.urlopen(links["doczip"]["href"], timeout=10) as response:
        assert zipfile.is_zipfile(io.BytesIO(response.read()))
    with urllib.request.urlopen(f"{mirror_server.url}local/dev/+simple/p/", timeout=10) as r:
        assert b".doc.zip" not in r.read()


@pytest.mark.parametrize("method", ["PUSH", "POST"])
def test_push_copies_release_atomically(
    mirror_server: CheeseboardServer, released: Dist, method: str
) -> None:
    """push copies files and doc zip to another index; a conflict on the target pushes nothing."""
    assert _doc_upload(mirror_server, "local/dev", "p", "1.0") == 200
    request = {"name": "p", "version": "1.0", "targetindex": "local/prod"}
    status, body = call(mirror_server.url, method, "/local/dev", request, auth=LOCAL)
    assert status == 200 and body["type"] == "actionlog", body
    actions = [entry[1] for entry in body["result"]]
    assert actions == ["register", "store_releasefile", "store_doczip"]
    status, body = call(mirror_server.url, "GET", "/local/prod/p/1.0")
    assert status == 200 and {link["rel"] for link in body["result"]["+links"]} == {
        "releasefile",
        "doczip",
    }
    assert call(mirror_server.url, method, "/local/dev", request, auth=LOCAL)[0] == 200
    assert call(mirror_server.url, method, "/local/dev", request)[0] == 401
    missing = {"name": "p", "version": "9.9", "targetindex": "local/prod"}
    assert call(mirror_server.url, method, "/local/dev", missing, auth=LOCAL)[0] == 404


def test_push_to_external_index(
    mirror_server: CheeseboardServer, external_server: CheeseboardServer, released: Dist
) -> None:
    """push with posturl uploads files and doc zip through another index's legacy upload API."""
    assert _doc_upload(mirror_server, "local/dev", "p", "1.0") == 200
    other = external_server  # allowed by the mirror server's --push-allow (``servers``)
    assert call(other.url, "PUT", "/ext", {"password": "ext-secret"}, auth=ROOT)[0] == 201
    assert call(other.url, "PUT", "/ext/rel", {}, auth=ROOT)[0] == 200
    request = {
        "name": "p",
        "version": "1.0",
        "posturl": f"{other.url}ext/rel/",
        "username": "ext",
        "password": "ext-secret",
    }
    status, body = call(mirror_server.url, "PUSH", "/local/dev", request, auth=LOCAL)
    assert status == 200, body
    assert [entry[:2] for entry in body["result"]] == [[200, "upload"], [200, "store_doczip"]]
    status, body = call(other.url, "GET", "/ext/rel/p/1.0")
    assert status == 200, body
    links = {link["rel"]: link for link in body["result"]["+links"]}
    assert links["releasefile"]["hashes"]["sha256"] == released.sha256
    assert "doczip" in links
    refused = {**request, "password": "wrong"}
    status, body = call(mirror_server.url, "PUSH", "/local/dev", refused, auth=LOCAL)
    assert status == 502 and "answered 401" in body["message"], body
