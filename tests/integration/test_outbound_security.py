"""Outbound requests and what anonymous callers can make the server do (issue 17 items 1, 6 and
the low ones on mirrors): pushes need a permitted identity and pass the address policy, errors
never echo the target, mirror links to other private hosts are not fetched, random names leave
no rows, forced refreshes are coalesced, absurd upstream sizes do not break a project."""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.support.api import call, reset_accounts, upload_dist
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory, free_port
from tests.support.upstream import JSON_CT, Fault, UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")
SECRET = "internal-secret-4f1c9e"


class _Target(ThreadingHTTPServer):
    """A tiny HTTP server on 127.0.0.1 standing for an internal service: records every request
    and answers ``status`` with a body holding a secret."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.seen: list[tuple[str, str, str]] = []  # method, path, Authorization
        super().__init__(("127.0.0.1", 0), _TargetHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"


class _TargetHandler(BaseHTTPRequestHandler):
    server: _Target

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
        body = f"<html>{SECRET}: db password hunter2</html>".encode()
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def module_target() -> Iterator[_Target]:
    """An internal HTTP service answering 500 with a secret in its body, for the module."""
    server = _Target(500)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def target(module_target: _Target) -> _Target:
    """The module's internal service, with no request seen yet in this test."""
    module_target.seen.clear()
    return module_target


@pytest.fixture(scope="module")
def closed_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound for the whole module (so nothing else
    takes it), never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture(scope="module")
def upstream(dists: dict[str, list[Dist]]) -> Iterator[UpstreamServer]:
    """One HTML upstream for the module, holding ``dists``; tests that fault or count pages
    publish their own project names."""
    with UpstreamServer(mode="html") as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        yield upstream


@dataclass
class Servers:
    plain: CheeseboardServer  # no --push-allow
    allowing: CheeseboardServer  # --push-allow for the module's target and closed port


@pytest.fixture(scope="module")
def module_servers(
    upstream: UpstreamServer,
    module_target: _Target,
    closed_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Servers]:
    factory = ServerFactory(tmp_path_factory.mktemp("outbound"))
    try:
        yield Servers(
            plain=factory.start(upstream.simple_url, name="plain"),
            allowing=factory.start(
                upstream.simple_url,
                "--push-allow",
                f"{module_target.url},{closed_url}",
                name="allowing",
            ),
        )
    finally:
        factory.stop_all()


@pytest.fixture
def servers(module_servers: Servers) -> Iterator[Servers]:
    """The module's two servers; every user and index but root's is deleted after each test."""
    yield module_servers
    for server in (module_servers.plain, module_servers.allowing):
        reset_accounts(server.url, ROOT)


def _setup(server: CheeseboardServer, tmp_path: Path) -> Dist:
    """alice/dev with p 1.0 uploaded, alice/prod, alice/withpypi (bases root/pypi), user bob."""
    for user, password in (ALICE, BOB):
        assert call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)[0] == 201
    for index, config in (
        ("alice/dev", {}),
        ("alice/prod", {}),
        ("alice/withpypi", {"bases": ["root/pypi"]}),
    ):
        assert call(server.url, "PUT", f"/{index}", config, auth=ROOT)[0] == 200, index
    wheel = build_wheel(tmp_path / "dist", "p", "1.0")
    assert upload_dist(server.url, "alice/dev", wheel, ALICE)[0] == 200
    return wheel


def _push(server: CheeseboardServer, posturl: str, auth: tuple[str, str] | None) -> Any:
    request = {
        "name": "p",
        "version": "1.0",
        "posturl": posturl,
        "username": "victim",
        "password": "their-password",
    }
    return call(server.url, "POST", "/alice/dev/", request, auth=auth)


# -- item 1: who may push, and where -------------------------------------------------------


def test_anonymous_and_foreign_pushes_are_refused_before_any_request(
    servers: Servers, target: _Target, tmp_path: Path
) -> None:
    """No credentials: 401, another user: 403, for external and internal pushes; nothing sent."""
    server = servers.allowing
    _setup(server, tmp_path)
    assert _push(server, target.url, None)[0] == 401
    assert _push(server, target.url, BOB)[0] == 403
    internal = {"name": "p", "version": "1.0", "targetindex": "alice/prod"}
    assert call(server.url, "POST", "/alice/dev/", internal)[0] == 401
    assert call(server.url, "PUSH", "/alice/dev/", internal, auth=BOB)[0] == 403
    assert target.seen == []
    assert call(server.url, "GET", "/alice/prod/p/1.0")[0] == 404


def test_push_to_loopback_needs_push_allow(
    servers: Servers, target: _Target, tmp_path: Path
) -> None:
    """The owner's push to a loopback target (literal or a name resolving there) is refused by
    policy, naming --push-allow; a target answering 500 with a secret gives 502 without it."""
    server = servers.plain
    _setup(server, tmp_path)
    port = target.server_address[1]
    for posturl in (target.url, f"http://localhost:{port}/", f"http://[::ffff:127.0.0.1]:{port}/"):
        status, body = _push(server, posturl, ALICE)
        assert status == 403, (posturl, body)
        assert "--push-allow" in body["message"], body
    assert target.seen == []

    # The same on a server started with --push-allow for the target.
    server = servers.allowing
    _setup(server, tmp_path)
    status, body = _push(server, target.url, ALICE)
    assert status == 502, body
    assert "answered 500" in body["message"], body
    assert SECRET not in json.dumps(body) and "hunter2" not in json.dumps(body)
    assert [seen[0] for seen in target.seen] == ["POST"]  # allowed: it was really asked
    # A prefix allows that prefix only: the same host on another port stays refused.
    other = f"http://127.0.0.1:{free_port()}/"
    assert _push(server, other, ALICE)[0] == 403


def test_push_to_a_closed_port_is_a_clean_502(
    servers: Servers, closed_url: str, tmp_path: Path
) -> None:
    """A closed (allowed) port: 502 "connection refused", no 500, no traceback in the log."""
    server = servers.allowing
    logged = len(server.log())
    _setup(server, tmp_path)
    status, body = _push(server, closed_url, ALICE)
    assert status == 502, body
    assert "connection refused" in body["message"], body
    assert "Traceback" not in server.log()[logged:]


def test_scoped_token_pushes_only_between_indexes_it_covers(
    servers: Servers, target: _Target, tmp_path: Path
) -> None:
    """An upload-only token covering the source alone may not push; covering both it may;
    it never pushes to an external URL."""
    server = servers.allowing
    _setup(server, tmp_path)

    def token(indexes: list[str]) -> tuple[str, str]:
        status, made = call(server.url, "POST", "/alice/+tokens", {"indexes": indexes}, auth=ALICE)
        assert status == 201, made
        return ("__token__", made["result"]["token"])

    internal = {"name": "p", "version": "1.0", "targetindex": "alice/prod"}
    source_only = token(["alice/dev"])
    assert call(server.url, "POST", "/alice/dev/", internal, auth=source_only)[0] == 403
    assert _push(server, target.url, source_only)[0] == 403
    assert target.seen == []
    both = token(["alice/dev", "alice/prod"])
    status, body = call(server.url, "POST", "/alice/dev/", internal, auth=both)
    assert status == 200, body
    assert call(server.url, "GET", "/alice/prod/p/1.0")[0] == 200


# -- item 6 (part): an internal push goes through the dependency-confusion guard -------------


def test_internal_push_applies_the_upstream_name_guard(servers: Servers, tmp_path: Path) -> None:
    """Pushing a name the base mirror serves (lib-a) into a stage over root/pypi is refused,
    by password and by an upload token covering both indexes; a private name passes."""
    server = servers.plain
    _setup(server, tmp_path)
    shadow = build_sdist(tmp_path / "shadow", "lib-a", "9.0")
    assert upload_dist(server.url, "alice/dev", shadow, ALICE)[0] == 200
    request = {"name": "lib-a", "version": "9.0", "targetindex": "alice/withpypi"}
    status, body = call(server.url, "POST", "/alice/dev/", request, auth=ALICE)
    assert status == 403 and "root/pypi" in body["message"], body
    status, made = call(
        server.url,
        "POST",
        "/alice/+tokens",
        {"indexes": ["alice/dev", "alice/withpypi"]},
        auth=ALICE,
    )
    assert status == 201, made
    scoped = ("__token__", made["result"]["token"])
    assert call(server.url, "POST", "/alice/dev/", request, auth=scoped)[0] == 403
    status, page = _get(f"{server.url}alice/withpypi/+simple/lib-a/")
    assert status == 200 and shadow.filename.encode() not in page
    private = {"name": "p", "version": "1.0", "targetindex": "alice/withpypi"}
    assert call(server.url, "POST", "/alice/dev/", private, auth=ALICE)[0] == 200


# -- mirror links to other private hosts ---------------------------------------------------


def _file_url(server: CheeseboardServer, project: str, href: str) -> str:
    return urljoin(f"{server.url}root/pypi/+simple/{project}/", href)


def _json_page(server: CheeseboardServer, project: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{server.url}root/pypi/+simple/{project}/", headers={"Accept": JSON_CT}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _html_listing(*hrefs: str) -> Fault:
    links = "".join(
        f'<a href="{href}">{href.rsplit("/", 1)[-1].split("#")[0]}</a>' for href in hrefs
    )
    body = f"<!DOCTYPE html><html><body>{links}</body></html>".encode()
    return Fault("body", body=body, content_type="text/html")


def test_mirror_does_not_fetch_files_from_other_private_hosts(
    servers: Servers, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """A page whose file links point at another 127.0.0.1 port, 10.x or 169.254.x: the page is
    served, the files are refused with 502 (naming the policy) and the other host is never asked."""
    server = servers.plain
    logged = len(server.log())
    project = "private-links"
    wheel = build_wheel(tmp_path, project, "1.0")
    sdist = build_sdist(tmp_path, project, "1.0")
    with UpstreamServer(mode="html") as internal:
        internal.add(wheel)
        internal.add(sdist)
        upstream.set_fault(
            f"simple/{project}",
            _html_listing(
                f"{internal.url}files/{wheel.filename}#sha256={wheel.sha256}",
                f"http://10.255.255.1/files/{sdist.filename}#sha256={sdist.sha256}",
            ),
        )
        try:
            status, page = _json_page(server, project)
        finally:
            upstream.set_fault(f"simple/{project}", None)
        assert status == 200, page
        urls = {f["filename"]: f["url"] for f in page["files"]}
        assert set(urls) == {wheel.filename, sdist.filename}
        for filename in (wheel.filename, sdist.filename):
            started = time.monotonic()
            status, body = _get(_file_url(server, project, urls[filename]))
            assert status == 502, (filename, body)
            assert b"private address" in body, body
            assert time.monotonic() - started < 3  # refused, not a connect timeout
        status, body = _get(_file_url(server, project, urls[wheel.filename]) + ".metadata")
        assert status in (404, 502), body
        assert internal.requests == []
        # Nothing was stored: asking again is refused again, and still nothing reached it.
        assert _get(_file_url(server, project, urls[wheel.filename]))[0] == 502
        assert internal.requests == []
        assert "Traceback" not in server.log()[logged:]


def test_mirror_does_not_follow_redirects_to_other_private_hosts(
    servers: Servers, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """Upstream redirecting a file or a page to another loopback port: refused (502), not
    followed (redirects within the mirror's origin: test_upstream_fault_matrix)."""
    server = servers.plain
    wheel = build_wheel(tmp_path, "redirected-file", "1.0")
    upstream.add(wheel)
    with UpstreamServer(mode="html") as internal:
        internal.add(wheel)
        status, page = _json_page(server, "redirected-file")
        assert status == 200, page
        path = next(f["url"] for f in page["files"] if f["filename"] == wheel.filename)
        faults = {
            wheel.filename: Fault("redirect", location=f"{internal.url}files/{wheel.filename}"),
            "simple/redirected-page": Fault(
                "redirect", location=f"{internal.url}simple/redirected-page/"
            ),
        }
        try:
            upstream.set_fault(wheel.filename, faults[wheel.filename])
            status, body = _get(_file_url(server, "redirected-file", path))
            assert status == 502, body
            upstream.set_fault("simple/redirected-page", faults["simple/redirected-page"])
            status, body = _get(f"{server.url}root/pypi/+simple/redirected-page/")
            assert status == 502, body
            assert internal.requests == []
        finally:
            for fault_target in faults:
                upstream.set_fault(fault_target, None)


# -- random names, forced refreshes, absurd sizes --------------------------------------------


def _rows(server: CheeseboardServer) -> tuple[int, int]:
    with sqlite3.connect(server.datadir / "cheeseboard.sqlite") as conn:
        projects = conn.execute("select count(*) from projects").fetchone()[0]
        changes = conn.execute("select count(*) from changelog").fetchone()[0]
    return int(projects), int(changes)


def test_random_names_leave_no_rows(
    servers: Servers, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """300 names upstream does not have: each 404, no project or changelog row added, and the
    not-found is remembered (a repeat does not ask upstream again)."""
    server = servers.plain
    real = build_wheel(tmp_path, "rows-real-name", "1.0")
    upstream.add(real)
    before = _rows(server)
    for number in range(300):
        status, _ = _get(f"{server.url}root/pypi/+simple/no-such-name-{number}/")
        assert status == 404
    assert _rows(server) == before
    asked = upstream.count("/simple/no-such-name-7/")
    assert _get(f"{server.url}root/pypi/+simple/no-such-name-7/")[0] == 404
    assert upstream.count("/simple/no-such-name-7/") == asked == 1
    # A real name still gets its row.
    assert _get(f"{server.url}root/pypi/+simple/rows-real-name/")[0] == 200
    assert _rows(server)[0] == before[0] + 1


def test_forced_refreshes_are_coalesced(
    servers: Servers, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """20 anonymous refreshes in a row fetch the page once; 10 concurrent ones once too."""
    server = servers.plain
    names = ("refresh-serial", "refresh-concurrent")  # fresh pages: no refresh in the last 10 s
    for name in names:
        upstream.add(build_wheel(tmp_path, name, "1.0"))
        assert _get(f"{server.url}root/pypi/+simple/{name}/")[0] == 200
    asked = {name: upstream.count(f"/simple/{name}/") for name in names}

    def refresh(project: str) -> int:
        """devpi's refresh button, anonymously; the status of the POST itself (302)."""
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request("POST", f"/root/pypi/+simple/{project}/refresh")
            return connection.getresponse().status
        finally:
            connection.close()

    for _ in range(20):
        assert refresh("refresh-serial") == 302
    assert upstream.count("/simple/refresh-serial/") == asked["refresh-serial"] + 1
    with ThreadPoolExecutor(10) as pool:
        assert set(pool.map(refresh, ["refresh-concurrent"] * 10)) == {302}
    assert upstream.count("/simple/refresh-concurrent/") == asked["refresh-concurrent"] + 1


def test_absurd_upstream_size_does_not_break_the_project(
    server_factory: ServerFactory, json_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    """A PEP 691 page with size 2**63 is served (size unknown), not a 500, and keeps working."""
    sdist = dists["lib-c"][1]
    page = {
        "meta": {"api-version": "1.1"},
        "name": "lib-c",
        "files": [
            {
                "filename": sdist.filename,
                "url": f"/files/{sdist.filename}",
                "hashes": {"sha256": sdist.sha256},
                "size": 2**63,
            }
        ],
    }
    json_upstream.set_fault(
        "simple/lib-c", Fault("body", body=json.dumps(page).encode(), content_type=JSON_CT)
    )
    server = server_factory.start(json_upstream.simple_url)
    for _ in range(2):
        status, body = _json_page(server, "lib-c")
        assert status == 200, body
        (entry,) = body["files"]
        assert entry.get("size") in (None, sdist.path.stat().st_size)
    status, data = _get(_file_url(server, "lib-c", entry["url"]))
    assert status == 200 and len(data) == sdist.path.stat().st_size
    assert "Traceback" not in server.log()
