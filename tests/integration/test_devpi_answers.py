"""What devpi-client shows of the server's answers (issue 22): ``--version``, refusals, JSON
errors and a user deleted while signed in, run with the real ``devpi`` client and twine.

Granian (2.8) writes the canonical reason phrase whatever the app sends: its ASGI layer reads
only ``status`` and ``headers`` of ``http.response.start`` and never sets hyper's
``ReasonPhrase`` extension. So refusals keep ``409 Conflict`` on the status line and the message
in the body; the test of the status line locks that in (README, "devpi compatibility").
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cheeseboard import __version__
from tests.support.api import basic, call, twine_upload
from tests.support.devpi import DevpiClient
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
DORA = ("dora", "dora-pw-1")


@dataclass
class World:
    server: CheeseboardServer
    upstream: UpstreamServer
    first: Dist  # q-1.0, uploaded to dora/prod
    second: Dist  # another q-1.0 wheel (other bytes): refused with 409 there

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("devpi-answers")
    first = build_wheel(base / "first", "q", "1.0")
    second = build_wheel(base / "second", "q", "1.0", requires_python=">=3.8")
    gone = build_wheel(base / "public", "gone", "1.0")
    with UpstreamServer(mode="html") as upstream:
        upstream.add(gone)
        factory = ServerFactory(base)
        try:
            server = factory.start(upstream.simple_url)
            world = World(server, upstream, first, second)
            _put(world, "/dora", {"password": DORA[1]})
            _put(world, "/dora/prod", {"bases": "root/pypi", "volatile": False})
            result = twine_upload(f"{world.url}dora/prod/", *DORA, first.path)
            assert result.returncode == 0, result.stdout + result.stderr
            yield world
        finally:
            factory.stop_all()


@pytest.fixture
def devpi(world: World, tmp_path: Path) -> DevpiClient:
    return DevpiClient(tmp_path, server_log=world.server.log)


def _put(world: World, path: str, body: dict[str, object]) -> None:
    status, reply = call(world.url, "PUT", path, body, auth=ROOT)
    assert status in (200, 201), reply


def _request(
    world: World, method: str, path: str, accept: str | None, auth: tuple[str, str] | None = None
) -> tuple[int, str, str]:
    """(status, content type, body) of one request."""
    headers = {"Accept": accept} if accept is not None else {}
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    request = urllib.request.Request(world.url + path.lstrip("/"), method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


def test_version_names_the_server(devpi: DevpiClient, world: World) -> None:
    """``devpi --version`` while connected reads ``versioninfo`` as devpi's dict."""
    devpi.use(world.url)
    out = devpi.ok("--version")
    assert f"current devpi server: {world.url}" in out
    assert f"    cheeseboard {__version__}" in out.splitlines()
    status = call(world.url, "GET", "/+status")[1]["result"]
    assert status["versioninfo"] == {"cheeseboard": __version__}


def _status_line(world: World, request: bytes) -> bytes:
    host, port = urllib.parse.urlsplit(world.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.split(b"\r\n", 1)[0]


def test_refusals_keep_the_canonical_reason_phrase(world: World) -> None:
    """The status line is Granian's, whatever the message: the message is in the body only."""
    credentials = basic(*DORA).encode()
    request = (
        b"DELETE /dora HTTP/1.1\r\nHost: x\r\nAuthorization: " + credentials + b"\r\n"
        b"Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    assert _status_line(world, request) == b"HTTP/1.1 403 Forbidden"
    status, _, body = _request(world, "DELETE", "/dora", "application/json", auth=DORA)
    assert status == 403 and "non-volatile" in json.loads(body)["message"]


def test_what_devpi_and_twine_print_for_a_refused_upload(devpi: DevpiClient, world: World) -> None:
    """A conflicting re-upload: devpi upload and twine show the reason phrase ("Conflict"),
    not the message; twine --verbose prints the body, which has the message."""
    devpi.use(world.url + "dora/prod")
    devpi.login(*DORA)
    out = devpi.fails("upload", world.second.path)
    assert "409 FAIL file_upload of q-1.0-py3-none-any.whl" in out
    assert "\nConflict\n" in out
    result = twine_upload(f"{world.url}dora/prod/", *DORA, world.second.path)
    assert result.returncode == 1
    assert "HTTPError: 409 Conflict from" in result.stdout + result.stderr
    status, _, body = _request(world, "GET", "/dora/prod/q/1.0", "application/json")
    assert status == 200 and json.loads(body)["result"]["version"] == "1.0"  # unchanged


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dora/prod/q/1.0/+nothing/here/at/all"),  # no route matches
        ("DELETE", "/+api"),  # a route, not this method
        ("POST", "/+status"),
        ("GET", "/nobody"),
        ("GET", "/root/pypi/+f/000/0000000000000/missing-1.0.tar.gz"),
    ],
)
def test_errors_follow_the_accept_header(world: World, method: str, path: str) -> None:
    """JSON ``{"message": …}`` when the request prefers JSON, plain text otherwise."""
    status, content_type, body = _request(world, method, path, "application/json")
    assert status >= 400 and content_type == "application/json", (status, body)
    assert json.loads(body)["message"]
    for accept in (None, "*/*", "text/plain, application/json;q=0.5"):
        again, content_type, text = _request(world, method, path, accept)
        assert again == status and content_type.startswith("text/plain"), (accept, text)


def test_a_missing_upstream_file_answers_json(devpi: DevpiClient, world: World) -> None:
    """A file upstream lost since its page was read: devpi-client sees the message."""
    status, _, body = _request(
        world, "GET", "/root/pypi/+simple/gone/", "application/vnd.pypi.simple.v1+json"
    )
    assert status == 200, body
    url = json.loads(body)["files"][0]["url"]
    path = urllib.parse.urlsplit(urllib.parse.urljoin(world.url + "root/pypi/+simple/gone/", url))
    world.upstream.remove("gone-1.0-py3-none-any.whl")
    status, content_type, body = _request(world, "GET", path.path, "application/json")
    assert (status, content_type) == (404, "application/json"), body
    assert json.loads(body) == {"message": "upstream has no gone-1.0-py3-none-any.whl"}
    devpi.use(world.url)
    out = devpi.fails("getjson", path.path)
    assert "404 Not Found: upstream has no gone-1.0-py3-none-any.whl" in out


def test_a_deleted_user_is_missing_not_unauthorized(devpi: DevpiClient, world: World) -> None:
    """erin signs in, root deletes erin: erin's paths answer 404 for the missing user, as devpi
    does; erin's credentials authenticate nothing anywhere else."""
    erin = ("erin", "erin-pw-1")
    _put(world, "/erin", {"password": erin[1]})
    _put(world, "/erin/dev", {"bases": "root/pypi", "volatile": True})
    devpi.use(world.url + "erin/dev")
    devpi.login(*erin)
    assert call(world.url, "DELETE", "/erin/dev", auth=ROOT)[0] == 201
    assert call(world.url, "DELETE", "/erin", auth=ROOT)[0] == 200
    out = devpi.fails("user", "-m", "erin", "email=erin@example.com")
    assert "404 Not Found: no user 'erin'" in out, out
    out = devpi.fails("index", "-c", "erin/other")
    assert "404 Not Found: no user 'erin'" in out, out
    out = devpi.fails("getjson", "/erin")
    assert "404 Not Found: no user 'erin'" in out
    assert _request(world, "PATCH", "/dora", "application/json", auth=erin)[0] == 401
    assert _request(world, "PUT", "/erin", "application/json", auth=erin)[0] == 401
    out = devpi.fails("use", world.url + "erin/dev")
    assert "404 Not Found: no user 'erin'" in out
    devpi.use(world.url)  # /+api says "nouser": the client forgets the login
    assert not any(devpi.auth().get("auth", {}).values())
