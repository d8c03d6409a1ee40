"""Documentation zips served at ``…/<project>/<version>/+doc/<path>`` by a real server.

Needs ``*docs.routes`` (cheeseboard.http.docs) registered in the app, before ``*releases.routes``.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import random
import struct
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cheeseboard.services.docs import DocService
from cheeseboard.store.accounts import load_indexes
from cheeseboard.store.db import Database
from tests.support.api import call, doc_zip, twine_upload
from tests.support.api import upload_docs as api_upload_docs
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
CSP = "sandbox allow-scripts allow-popups allow-forms"
DOCS = "/local/dev/p/1.0/+doc/"
Shared = tuple[CheeseboardServer, list[Path]]  # the module's server, the p 1.0 and 2.0 wheels

INDEX_HTML = (
    '<!doctype html><html><head><link rel="stylesheet" href="_static/style.css"></head>'
    '<body><h1>p docs 1.0</h1><a href="sub/">sub</a><script src="search.js"></script></body>'
    "</html>"
)
PAGES: dict[str, str | bytes] = {
    "index.html": INDEX_HTML,
    "sub/index.html": "<h1>sub index</h1>",
    "sub/page.html": "<h1>sub page</h1>",
    "_static/style.css": "body { color: #333 }",
    "search.js": "var found = 1;",
    "_sources/index.rst.txt": "p docs\n======\n",
}


def upload_docs(server: CheeseboardServer, version: str, archive: bytes) -> tuple[int, str]:
    """devpi's ``doc_upload`` of ``archive`` for p ``version`` on local/dev."""
    return api_upload_docs(server.url, "local/dev", "p", version, archive, LOCAL)


def fetch(
    server: CheeseboardServer, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as given (no normalising, no redirects)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(
            method, path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CheeseboardServer, list[Path]]]:
    """One server for the module, and the p 1.0 and 2.0 wheels, built once."""
    base = tmp_path_factory.mktemp("docs")
    wheels = [build_wheel(base / "dist", "p", version).path for version in ("1.0", "2.0")]
    with UpstreamServer() as upstream:
        factory = ServerFactory(base)
        try:
            yield factory.start(upstream.simple_url), wheels
        finally:
            factory.stop_all()


@pytest.fixture
def server(shared: Shared) -> Iterator[CheeseboardServer]:
    """local/dev with p 1.0 and 2.0 released; p 1.0 has docs (PAGES).

    The server is shared by the module; user local is created afresh for each test and deleted
    (with its index, releases and docs) after it, so every test starts from the same state.
    """
    server, wheels = shared
    assert call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)[0] == 201
    assert call(server.url, "PUT", "/local/dev", {}, auth=ROOT)[0] == 200
    for wheel in wheels:
        assert twine_upload(f"{server.url}local/dev/", *LOCAL, wheel).returncode == 0
    assert upload_docs(server, "1.0", doc_zip(PAGES))[0] == 200
    yield server
    status, body = call(server.url, "DELETE", "/local", auth=ROOT)
    assert status == 200, body


def test_pages_directories_and_content_types(server: CheeseboardServer) -> None:
    status, headers, body = fetch(server, DOCS)
    assert status == 200, body
    assert body.decode() == INDEX_HTML
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-length"] == str(len(INDEX_HTML))
    assert fetch(server, DOCS + "index.html")[2] == body
    assert fetch(server, DOCS + "sub/")[2] == b"<h1>sub index</h1>"
    assert fetch(server, DOCS + "sub/page.html")[2] == b"<h1>sub page</h1>"
    status, headers, body = fetch(server, DOCS + "_static/style.css")
    assert (status, body) == (200, b"body { color: #333 }")
    assert headers["content-type"] == "text/css; charset=utf-8"
    assert fetch(server, DOCS + "search.js")[1]["content-type"] == "text/javascript; charset=utf-8"
    assert fetch(server, DOCS + "_sources/index.rst.txt")[1]["content-type"] == (
        "text/plain; charset=utf-8"
    )
    # Relative links need directory URLs: +doc and +doc/sub redirect to their slash forms.
    status, headers, _ = fetch(server, "/local/dev/p/1.0/+doc")
    assert status in (301, 308) and headers["location"] == "+doc/"
    status, headers, _ = fetch(server, DOCS + "sub")
    assert status in (302, 307) and headers["location"] == "sub/"
    with urllib.request.urlopen(f"{server.url}local/dev/p/1.0/+doc/sub", timeout=10) as response:
        assert response.url.endswith("/+doc/sub/") and response.read() == b"<h1>sub index</h1>"
    # Non-normalized project names and versions find the same docs.
    assert fetch(server, "/local/dev/P/1.0.0/+doc/")[2] == INDEX_HTML.encode()


def test_security_and_cache_headers(server: CheeseboardServer) -> None:
    status, headers, _ = fetch(server, DOCS)
    assert status == 200
    assert headers["content-security-policy"] == CSP
    assert "allow-same-origin" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    _, links = call(server.url, "GET", "/local/dev/p/1.0")
    doczip = next(link for link in links["result"]["+links"] if link["rel"] == "doczip")
    assert headers["etag"] == f'"doc-{doczip["hashes"]["sha256"]}"'
    assert "max-age" in headers["cache-control"]
    etag = headers["etag"]
    for path in (DOCS, DOCS + "_static/style.css"):
        status, again, body = fetch(server, path, If_None_Match=etag)
        assert (status, body) == (304, b"")
        assert again["etag"] == etag
    assert fetch(server, DOCS, If_None_Match='"doc-other"')[0] == 200
    status, headers, body = fetch(server, DOCS, method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(INDEX_HTML))
    assert headers["content-security-policy"] == CSP


def test_latest_and_stable(server: CheeseboardServer, tmp_path: Path) -> None:
    assert fetch(server, "/local/dev/p/+latest/+doc/")[2] == INDEX_HTML.encode()
    assert upload_docs(server, "2.0", doc_zip({"index.html": "v2"}))[0] == 200
    # Docs attach to an existing release only (issue 17): 3.0rc1 needs a file first.
    assert upload_docs(server, "3.0rc1", doc_zip({"index.html": "v3rc1"}))[0] == 400
    rc = build_wheel(tmp_path, "p", "3.0rc1")
    assert twine_upload(f"{server.url}local/dev/", *LOCAL, rc.path).returncode == 0
    assert upload_docs(server, "3.0rc1", doc_zip({"index.html": "v3rc1"}))[0] == 200
    status, headers, body = fetch(server, "/local/dev/p/+latest/+doc/")
    assert (status, body) == (200, b"v3rc1")
    assert headers["cache-control"] == "no-cache"  # +latest moves with new uploads
    assert fetch(server, "/local/dev/p/+stable/+doc/index.html")[2] == b"v2"
    assert fetch(server, "/local/dev/p/2.0/+doc/")[2] == b"v2"
    assert fetch(server, DOCS)[2] == INDEX_HTML.encode()
    assert fetch(server, "/local/dev/p/+latest/+doc")[1]["location"] == "+doc/"


def test_doc_versions_helper(server: CheeseboardServer) -> None:
    """The web pages' helper lists the versions with docs (the server's own database)."""
    assert upload_docs(server, "2.0", doc_zip({"index.html": "v2"}))[0] == 200

    async def versions() -> tuple[set[str], set[str]]:
        db = Database(f"sqlite:///{server.datadir / 'cheeseboard.sqlite'}")
        try:
            index = next(
                i for i in await db.read(load_indexes) if (i.user, i.name) == ("local", "dev")
            )
            found = DocService(db)
            return await found.versions(index.id, "P"), await found.versions(index.id, "x")
        finally:
            await db.close()

    assert asyncio.run(versions()) == ({"1.0", "2.0"}, set())


TRAVERSALS = [
    "/local/dev/p/1.0/+doc/../../../../etc/passwd",
    "/local/dev/p/1.0/+doc/sub/../../secret",
    "/local/dev/p/1.0/+doc/%2e%2e/%2e%2e/secret",
    "/local/dev/p/1.0/+doc/%2E%2E%2F%2E%2E%2Fsecret",
    "/local/dev/p/1.0/+doc/..%2f..%2f..%2fsecret",
    "/local/dev/p/1.0/+doc/sub%2fpage.html",
    "/local/dev/p/1.0/+doc/..%5c..%5csecret",
    "/local/dev/p/1.0/+doc/sub\\page.html",
    "/local/dev/p/1.0/+doc/..\\..\\secret",
    "/local/dev/p/1.0/+doc//etc/passwd",
    "/local/dev/p/1.0/+doc/%2fetc%2fpasswd",
    "/local/dev/p/1.0/+doc/sub//page.html",
    "/local/dev/p/1.0/+doc/./index.html",
    "/local/dev/p/1.0/+doc/index.html%00.css",
    "/local/dev/p/1.0/+doc/%00",
    "/local/dev/p/1.0/+doc/..",
    "/local/dev/p/1.0/+doc/%2e%2e",
    "/local/dev/p/1.0/+doc/evil.html/..%2f..%2f..%2fsecret",
]


def test_traversal_is_refused(server: CheeseboardServer) -> None:
    secret = (server.datadir / "secret").read_bytes().strip()
    # A zip-slip member: stored, but no request can reach it.
    assert (
        upload_docs(
            server, "2.0", doc_zip({"index.html": "v2", "../evil.html": "ZIP-SLIP-MARKER"})
        )[0]
        == 200
    )
    for path in [
        *TRAVERSALS,
        "/local/dev/p/2.0/+doc/../evil.html",
        "/local/dev/p/2.0/+doc/evil.html",
    ]:
        status, _, body = fetch(server, path)
        assert 400 <= status < 500, (path, status, body[:200])
        assert secret not in body and b"root:" not in body and b"ZIP-SLIP" not in body, path
        assert b"p docs 1.0" not in body, path  # not even a page of the zip itself


def test_missing_pages_and_projects_without_docs(server: CheeseboardServer) -> None:
    status, _, body = fetch(server, DOCS + "nothing/here.html", Accept="application/json")
    assert status == 404 and b"nothing/here.html" in body
    status, _, body = fetch(server, DOCS + "nothing/")
    assert status == 404 and b"nothing/index.html" in body
    status, _, body = fetch(server, "/local/dev/p/2.0/+doc/")
    assert status == 404 and b"p 2.0 has no documentation on local/dev" in body
    status, _, body = fetch(server, "/local/dev/p/9.9/+doc/")
    assert status == 404 and b"no documentation" in body
    status, _, body = fetch(server, "/local/dev/other/1.0/+doc/")
    assert status == 404 and b"other has no documentation on local/dev" in body
    status, _, body = fetch(server, "/local/dev/p/+stable/+doc/")
    assert status == 200  # 1.0 is stable
    status, _, body = fetch(server, "/local/dev/p/+newest/+doc/")
    assert status == 404 and b"+latest or +stable" in body
    assert fetch(server, "/local/nope/p/1.0/+doc/")[0] == 404
    status, _, body = fetch(server, "/root/pypi/p/1.0/+doc/")
    assert status == 404 and b"mirror" in body


def _lying_zip() -> bytes:
    """A member that declares 100 bytes but inflates to 2 MB."""
    data = bytearray(doc_zip({"index.html": "ok", "liar.html": b"\0" * 2_000_000}))
    central = data.rfind(b"PK\x01\x02")
    assert data[central + 46 : central + 55] == b"liar.html"
    struct.pack_into("<L", data, central + 24, 100)
    return bytes(data)


def test_zip_bombs_are_refused(server: CheeseboardServer) -> None:
    archive = doc_zip(
        {
            "index.html": "ok",
            "bomb.html": b"\0" * 20_000_000,  # about 1000:1
            "huge.bin": b"\0" * (65 * 1024 * 1024),  # over the 64 MiB member limit
        }
    )
    assert len(archive) < 200_000
    assert upload_docs(server, "2.0", archive)[0] == 200
    status, _, body = fetch(server, "/local/dev/p/2.0/+doc/bomb.html")
    assert status == 413 and b"zip bomb" in body
    status, _, body = fetch(server, "/local/dev/p/2.0/+doc/huge.bin")
    assert status == 413 and b"huge.bin" in body and b"67108864" in body
    assert fetch(server, "/local/dev/p/2.0/+doc/")[2] == b"ok"
    assert upload_docs(server, "2.0", _lying_zip())[0] == 200
    status, _, body = fetch(server, "/local/dev/p/2.0/+doc/liar.html")
    assert status == 422 and b"liar.html" in body
    assert fetch(server, "/local/dev/p/2.0/+doc/")[2] == b"ok"


def test_large_members_are_streamed(server: CheeseboardServer) -> None:
    payload = random.Random(7).randbytes(3 * 1024 * 1024)
    text = "".join(f"<p>line {n}</p>\n" for n in range(200_000)).encode()
    archive = doc_zip({"index.html": "ok", "data.bin": payload, "long.html": text})
    assert upload_docs(server, "2.0", archive)[0] == 200
    status, headers, body = fetch(server, "/local/dev/p/2.0/+doc/data.bin")
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-length"] == str(len(payload))
    assert fetch(server, "/local/dev/p/2.0/+doc/long.html")[2] == text
    stored = doc_zip({"index.html": "stored", "data.bin": payload}, zipfile.ZIP_STORED)
    assert upload_docs(server, "2.0", stored)[0] == 200
    assert fetch(server, "/local/dev/p/2.0/+doc/data.bin")[2] == payload
    assert fetch(server, "/local/dev/p/2.0/+doc/")[2] == b"stored"


def test_reupload_replaces_docs(server: CheeseboardServer) -> None:
    _, before, _ = fetch(server, DOCS)
    assert upload_docs(server, "1.0", doc_zip({"index.html": "new docs"}))[0] == 200
    status, after, body = fetch(server, DOCS, If_None_Match=before["etag"])
    assert (status, body) == (200, b"new docs")
    assert after["etag"] != before["etag"]
    assert fetch(server, DOCS + "sub/")[0] == 404  # the old zip's pages are gone
    assert fetch(server, DOCS, If_None_Match=after["etag"])[0] == 304
