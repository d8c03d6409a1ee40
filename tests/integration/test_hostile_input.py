"""Hostile input against a real server: each gets a clean 4xx, and nothing is stored.

Path traversal in every path segment of every route family, hostile upload file names,
oversized headers, bodies and form fields, zip bombs and malformed archives, and a loop of
mutated multipart uploads. Requests go over raw sockets, so nothing on the client side
normalizes, re-encodes or refuses what is sent. After each refusal the test checks that no
blob, staged file or database row appeared, and that the server still answers.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import re
import socket
import sqlite3
import struct
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.api import call, doc_zip, upload_docs
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer
from tests.unit.fuzz.counting import add, show_counts
from tests.unit.fuzz.test_archives_fuzz import xz_asking_for_dictionary

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
MiB = 1024 * 1024
BOUNDARY = "hostile-input-7c2e"
GOOD = "good-pkg"  # a real release, so +f, +doc and version routes have something to find
PROJECT = "hostile-pkg"  # what every refused upload claims to be; never stored
FUZZED = "fuzzed-pkg"  # the mutated uploads' project: some mutations are still valid uploads
VERSION = "2.0"
WHEEL = f"hostile_pkg-{VERSION}-py3-none-any.whl"
SDIST = f"hostile_pkg-{VERSION}.tar.gz"
CANARY = "canary-0c5d1f0e-never-served"
BROWSER = "text/html,application/xhtml+xml"


# --- raw HTTP -------------------------------------------------------------------------------


@dataclass
class Reply:
    """A response as read off the socket; status None when the server sent none."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def _parse(raw: bytes, error: str | None) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0]) if raw else None
    if match is None:
        return Reply(None, body=raw, error=error or "no response")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return Reply(int(match.group(1)), headers, body, error)


def exchange(port: int, head: bytes, body: Iterable[bytes] = (), timeout: float = 30.0) -> Reply:
    """Send ``head`` then ``body`` (from a thread, so a server that answers early and stops
    reading can't block us), and read the whole answer (requests say Connection: close)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        try:
            sock.sendall(head)
            for chunk in body:
                sock.sendall(chunk)
        except OSError:
            pass  # refused mid-body: the answer is still read below

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    chunks: list[bytes] = []
    error = None
    try:
        while chunk := sock.recv(256 * 1024):
            chunks.append(chunk)
    except OSError as exc:  # reset after the answer, or a timeout
        error = repr(exc)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the sender if it is still blocked
        sock.close()
        sender.join(timeout=timeout)
    return _parse(b"".join(chunks), error)


def request(
    port: int,
    method: str,
    target: bytes | str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterable[bytes] = b"",
    length: int | None = None,
) -> Reply:
    """One request; ``target`` goes on the request line exactly as given (bytes or ASCII)."""
    raw_target = target if isinstance(target, bytes) else target.encode("ascii")
    all_headers = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    if isinstance(body, bytes):
        chunks: Iterable[bytes] = [body]
        length = len(body) if body or method in ("PUT", "POST", "PATCH") else length
    else:
        chunks = body
    if length is not None:
        all_headers["Content-Length"] = str(length)
    head = method.encode() + b" " + raw_target + b" HTTP/1.1\r\n"
    head += b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in all_headers.items()) + b"\r\n"
    return exchange(port, head, chunks)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def multipart(fields: dict[str, str | bytes], filename: bytes | None, content: bytes) -> bytes:
    out = b""
    for key, value in fields.items():
        data = value.encode() if isinstance(value, str) else value
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    if filename is not None:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; filename="'.encode()
            + filename
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            + content
            + b"\r\n"
        )
    return out + f"--{BOUNDARY}--\r\n".encode()


def upload_fields(
    content: bytes, filetype: str = "bdist_wheel", name: str = PROJECT, version: str = VERSION
) -> dict[str, str | bytes]:
    """The form twine sends for ``content``, digest included."""
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "filetype": filetype,
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }


# --- the server and what it has stored -------------------------------------------------------


@dataclass
class Target:
    """The module's server: user ``local``, volatile index local/stage with good-pkg 1.0 (a wheel
    and its docs), and the bytes that must never be served."""

    server: CheeseboardServer
    file_path: str  # /local/stage/+f/<h3>/<h13>/<good wheel>
    good_wheel: bytes
    secrets: list[bytes]  # bytes no response may ever contain

    @property
    def port(self) -> int:
        return self.server.port

    def upload(
        self, fields: dict[str, str | bytes], filename: bytes | None, content: bytes
    ) -> Reply:
        """A legacy-API upload to local/stage as ``local``."""
        body = multipart(fields, filename, content)
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        headers = {"Content-Type": content_type, "Authorization": basic(*LOCAL)}
        return request(self.port, "POST", "/local/stage/", headers, body)

    def alive(self) -> None:
        reply = request(self.port, "GET", "/+api", {"Accept": "application/json"})
        assert reply.status == 200, reply
        assert self.server.process is not None and self.server.process.poll() is None


@dataclass(frozen=True)
class Stored:
    """What the data directory holds: blob files, staged files and database rows."""

    blobs: frozenset[str]
    staged: frozenset[str]
    rows: tuple[tuple[str, int], ...]
    blob_rows: frozenset[str]


def stored(server: CheeseboardServer) -> Stored:
    blob_root = server.datadir / "blobs"
    blobs = frozenset(
        path.name for path in blob_root.rglob("*") if path.is_file() and ".tmp" not in path.parts
    )
    staged = frozenset(path.name for path in (blob_root / ".tmp").iterdir())
    db = sqlite3.connect(f"file:{server.datadir / 'cheeseboard.sqlite'}?mode=ro", uri=True)
    try:
        rows = tuple(
            (table, db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
            for table in ("users", "indexes", "projects", "releases", "files", "blobs")
        )
        blob_rows = frozenset(row[0] for row in db.execute("SELECT sha256 FROM blobs"))
    finally:
        db.close()
    return Stored(blobs, staged, rows, blob_rows)


def assert_nothing_stored(target: Target, before: Stored) -> None:
    after = stored(target.server)
    assert after.blobs == before.blobs, "a blob appeared"
    assert not after.staged, f"staged files left behind: {sorted(after.staged)}"
    assert after.rows == before.rows
    page = request(target.port, "GET", f"/local/stage/+simple/{PROJECT}/")
    assert page.status == 404, page
    project = request(target.port, "GET", f"/local/stage/{PROJECT}", {"Accept": "application/json"})
    assert project.status == 404, project


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Target]:
    show_counts(pytestconfig)
    base = tmp_path_factory.mktemp("hostile")
    (base / "canary.txt").write_text(CANARY)  # beside the data directory, never inside it
    with UpstreamServer() as upstream:
        factory = ServerFactory(base)
        try:
            server = factory.start(upstream.simple_url)
            assert call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)[0] == 201
            status, body = call(server.url, "PUT", "/local/stage", {"volatile": "True"}, auth=ROOT)
            assert status == 200, body
            good = build_wheel(base / "dist", GOOD, "1.0")
            content = good.path.read_bytes()
            fields = upload_fields(content, name=GOOD, version="1.0")
            reply = Target(server, "", b"", []).upload(fields, good.filename.encode(), content)
            assert reply.status == 200, reply
            docs = doc_zip({"index.html": "<p>docs</p>"})
            assert upload_docs(server.url, "local/stage", GOOD, "1.0", docs, LOCAL)[0] == 200
            secrets = [CANARY.encode(), (server.datadir / "secret").read_bytes().strip()]
            if Path("/etc/passwd").exists():
                secrets.append(b"root:x:0:0")
            file_path = f"/local/stage/+f/{good.sha256[:3]}/{good.sha256[3:16]}/{good.filename}"
            yield Target(server, file_path, content, secrets)
        finally:
            factory.stop_all()


# --- (a) path traversal ------------------------------------------------------------------------

SEGMENTS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    ".%2e",
    "%2e",
    "..%2f..%2f..%2fcanary.txt",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fcanary.txt",
    "..%5c..%5c..%5ccanary.txt",
    "%252e%252e%252fcanary.txt",  # double-encoded
    "a%2fb",
    "a%5cb",
    "%00",
    "good-pkg%00",
    "a%00.whl",
    "%c0%ae%c0%ae",  # overlong UTF-8 "."
    "%c0%af",  # overlong UTF-8 "/"
    "%ef%bc%8e%ef%bc%8e",  # fullwidth dots
    "%e2%80%a4%e2%80%a4",  # one-dot leaders
    "%e2%84%aa",  # Kelvin sign
    "%ff%fe",  # not UTF-8
    "....%2f%2f",
    "~root",
    "x" * 8000,  # overlong
]
RAW_SEGMENTS = [
    b"\xc0\xae\xc0\xae",
    b"..\x00",
    b"a b",
    b"a\tb",
    b"\xff",
    b"\xe2\x80\xa4\xe2\x80\xa4",
]
TEMPLATES = [
    "/{s}",
    "/{s}/",
    "/{s}/+api",
    "/{s}/+tokens",
    "/local/{s}",
    "/local/{s}/",
    "/local/{s}/+api",
    "/local/{s}/+simple/",
    "/local/{s}/+simple/good-pkg/",
    "/{s}/stage/+simple/",
    "/{s}/stage/good-pkg/1.0",
    "/local/stage/+simple/{s}/",
    "/local/stage/+simple/{s}",
    "/local/stage/{s}",
    "/local/stage/{s}/",
    "/local/stage/{s}/1.0",
    "/local/stage/good-pkg/{s}",
    "/local/stage/good-pkg/{s}/",
    "{file:h3}",
    "{file:h13}",
    "{file:name}",
    "{file:name}.metadata",
    "/local/stage/+e/{s}/good_pkg-1.0-py3-none-any.whl",
    "/local/stage/+e/x/{s}",
    "/local/stage/good-pkg/1.0/+doc/{s}",
    "/local/stage/good-pkg/1.0/+doc/{s}/index.html",
    "/local/stage/good-pkg/{s}/+doc/index.html",
    "/local/stage/{s}/1.0/+doc/index.html",
    "/local/stage/+pypi/{s}/json",
    "/local/stage/+pypi/good-pkg/{s}/json",
    "/root/pypi/+simple/{s}/",
    "/root/pypi/+f/{s}/abc/x.whl",
    "/+static/{s}",
    "/+web/{s}",
]


def _paths(target: Target, segment: str | bytes) -> Iterator[bytes]:
    """Every template with ``segment`` in its slot (raw bytes go on the request line as-is)."""
    seg = segment if isinstance(segment, bytes) else segment.encode()
    prefix, _, name = target.file_path.rpartition("/")
    _, _, h3, h13 = prefix.rsplit("/", 3)
    files = {
        "{file:h3}": f"{prefix.rsplit('/', 2)[0]}/{{s}}/{h13}/{name}",
        "{file:h13}": f"{prefix.rsplit('/', 1)[0]}/{{s}}/{name}",
        "{file:name}": f"{prefix}/{{s}}",
        "{file:name}.metadata": f"{prefix}/{{s}}.metadata",
    }
    assert h3 and h13
    for template in TEMPLATES:
        yield files.get(template, template).encode().replace(b"{s}", seg)


def _stays_here(location: str) -> bool:
    """A redirect target on this server without a segment a browser takes for '..' (WHATWG URL:
    '..', '.%2e', '%2E%2e', …; '\\' separates like '/')."""
    parts = urlsplit(location)
    segments = re.split(r"[/\\]", parts.path)
    return parts.netloc in ("", "127.0.0.1") and all(unquote(seg) != ".." for seg in segments)


def _check_refused(
    target: Target, method: str, path: bytes, reply: Reply, failures: list[str]
) -> None:
    """Record in ``failures`` unless ``reply`` refuses ``path`` cleanly."""
    if b"/+e/" in path and reply.status == 200 and reply.body == target.good_wheel:
        return  # devpi's +e/<where>/<filename> ignores <where>: the index's own file is right
    shown = f"{method} {path[:150]!r} -> {reply.status} {reply.text[:150]!r}"
    # Bytes no request-target may hold: the HTTP layer refuses those with a bare 400.
    protocol_level = any(byte > 0x7E or byte <= 0x20 for byte in path)
    if reply.status is None or not 400 <= reply.status < 500:
        location = reply.headers.get("location", "")
        if reply.status not in (301, 302, 303, 307, 308) or not _stays_here(location):
            failures.append(f"{shown} {location!r}")
    elif not reply.body and not protocol_level and reply.status not in (414, 431):
        failures.append(f"{shown}: no message")
    if any(secret in reply.body for secret in target.secrets):
        failures.append(f"{shown}: served a secret")


def test_path_traversal_in_every_segment(target: Target) -> None:
    """Each traversal spelling in each segment of each route family: 4xx (or a redirect that
    stays here), with a message, and never a byte of a file outside what the index serves."""
    failures: list[str] = []
    sent = 0
    for segment in [*SEGMENTS, *RAW_SEGMENTS]:
        for path in _paths(target, segment):
            for accept in ("application/json", BROWSER):
                headers = {"Accept": accept, "User-Agent": "Mozilla/5.0 (hostile)"}
                reply = request(target.port, "GET", path, headers)
                sent += 1
                _check_refused(target, "GET", path, reply, failures)
    add("live server: path traversal requests", sent)
    assert not failures, f"{len(failures)} of {sent} requests not refused:\n" + "\n".join(
        failures[:40]
    )
    target.alive()


def test_path_traversal_in_write_routes(target: Target) -> None:
    """PUT/PATCH/DELETE/POST with traversal in a user, index, project or version segment are
    refused, with root's credentials, and create or change nothing."""
    before = stored(target.server)
    auth = {"Authorization": basic(*ROOT), "Content-Type": "application/json"}
    failures: list[str] = []
    sent = 0
    for segment in [*SEGMENTS, *RAW_SEGMENTS]:
        seg = segment if isinstance(segment, bytes) else segment.encode()
        for method, path, body in (
            ("PUT", b"/" + seg, b'{"password": "x"}'),
            ("PUT", b"/local/" + seg, b"{}"),
            ("PATCH", b"/" + seg + b"/stage", b'["title=x"]'),
            ("DELETE", b"/local/stage/" + seg, b""),
            ("DELETE", b"/local/stage/good-pkg/" + seg, b""),
            ("PATCH", b"/local/stage/good-pkg/" + seg, b'{"yanked": true}'),
            ("POST", b"/local/" + seg + b"/", b"{}"),
            ("POST", b"/local/stage/+simple/" + seg + b"/refresh", b""),
        ):
            reply = request(target.port, method, path, auth, body)
            sent += 1
            _check_refused(target, method, path, reply, failures)
    add("live server: path traversal requests", sent)
    assert not failures, "\n".join(failures[:40])
    assert stored(target.server) == before
    assert call(target.server.url, "GET", f"/local/stage/{GOOD}/1.0")[0] == 200


@pytest.mark.parametrize(
    ("range_header", "expected"),
    [
        ("bytes=0-" + "9" * 5000, 206),  # past int()'s 4300 digits: was a 500
        ("bytes=-" + "9" * 5000, 206),
        ("bytes=" + "9" * 5000 + "-", 416),
        ("bytes=" + "0-1," * 2000, 200),  # multi-range: ignored, the whole file
        ("bytes=\u00b2-", 200),  # a non-ASCII digit (latin-1 header byte)
        ("bytes=5-2", 200),
        ("bytes=-0", 416),
        ("items=0-1", 200),
    ],
)
def test_hostile_range_headers(target: Target, range_header: str, expected: int) -> None:
    """Range headers on a release file: a range inside the file, the whole file, or 416."""
    reply = request(target.port, "GET", target.file_path, {"Range": range_header})
    assert reply.status == expected, reply
    if expected == 206:
        assert reply.body == target.good_wheel  # clamped to the file: all of it
        assert (
            reply.headers["content-range"]
            == f"bytes 0-{len(target.good_wheel) - 1}/{len(target.good_wheel)}"
        )
    elif expected == 200:
        assert reply.body == target.good_wheel
    else:
        assert reply.headers["content-range"] == f"bytes */{len(target.good_wheel)}"


# --- (b) hostile file names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        (b"../" + WHEEL.encode(), "without '/'"),
        (b"a/" + WHEEL.encode(), "without '/'"),
        (b"..\\" + WHEEL.encode(), "without '/'"),
        (b"/etc/" + WHEEL.encode(), "without '/'"),
        (WHEEL.encode() + b"/", "without '/'"),
        (WHEEL.encode() + b"\x00.txt", "NUL"),
        (b"%2e%2e%2f" + WHEEL.encode(), "expected a distribution file name"),
        (b".." + WHEEL.encode(), "expected a distribution file name"),
        (b"hostile_pkg-2.0-py3-none-any.whl\x1b[2J", "expected a distribution file name"),
        (b"hostile_pkg-2.0-py3-none-\xe2\x84\xaany.whl", "expected a distribution file name"),
        (b"hostile_pkg-" + b"2" * 300 + b"-py3-none-any.whl", "expected a distribution file"),
        (b"other_pkg-2.0-py3-none-any.whl", "is for project 'other-pkg'"),
        (b"hostile_pkg-9.9-py3-none-any.whl", "has version '9.9'"),
        (b"hostile_pkg-2.0-py3-none-any.exe", "unsupported file"),
        (b"hostile_pkg-2.0.tar.gz", "filetype 'bdist_wheel' does not match"),
        (b"", "no file in the 'content' field"),
    ],
)
def test_hostile_filenames(target: Target, filename: bytes, message: str) -> None:
    content = zip_bytes({f"hostile_pkg-{VERSION}.dist-info/METADATA": metadata()})
    before = stored(target.server)
    reply = target.upload(upload_fields(content), filename, content)
    assert reply.status == 400, reply
    assert message in reply.text
    assert_nothing_stored(target, before)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version": "2.0/../../x"}, "invalid version"),
        ({"version": "1" * 5000}, "invalid version"),  # past int()'s 4300 digits: was a 500
        ({"version": " 2.0"}, "invalid version"),
        ({"name": "../hostile-pkg"}, "invalid project name"),
        ({"name": "hostile-pkg\x00"}, "invalid project name"),
        ({":action": "../file_upload"}, "unsupported :action"),
        ({"sha256_digest": "0" * 64}, "does not match the uploaded file"),
    ],
)
def test_hostile_form_fields(target: Target, fields: dict[str, str], message: str) -> None:
    content = zip_bytes({f"hostile_pkg-{VERSION}.dist-info/METADATA": metadata()})
    before = stored(target.server)
    reply = target.upload({**upload_fields(content), **fields}, WHEEL.encode(), content)
    assert reply.status == 400, reply
    assert message in reply.text
    assert len(reply.body) < 1000  # the huge value is not echoed back
    assert_nothing_stored(target, before)


# --- (c) oversized headers, bodies and fields ---------------------------------------------------


# Credentials the decoder must refuse with 401, never a 500: non-ASCII text (a header is bytes,
# read as Latin-1), bytes outside base64's alphabet, broken padding, base64 of text that is not
# UTF-8, no ``:`` between user and secret, an empty user name. Sent raw, as a client would.
HOSTILE_CREDENTIALS = {
    "basic-non-ascii": b"Authorization: Basic \xe9\xe9\xe9\xe9",
    "basic-non-ascii-in-base64": b"Authorization: Basic bG9j\xff\xfeYWw6eA==",
    "basic-bad-alphabet": b"Authorization: Basic bG9j*WFsOng=",
    "basic-bad-padding": b"Authorization: Basic bG9jYWw6eA",
    "basic-data-after-padding": b"Authorization: Basic bG9jYWw6eA==bG9j",
    "basic-not-utf8": b"Authorization: Basic " + base64.b64encode(b"local:\xff\xfe"),
    "basic-no-colon": b"Authorization: Basic " + base64.b64encode(b"local"),
    "basic-empty-user": b"Authorization: Basic " + base64.b64encode(b":local-secret"),
    "token-user-non-ascii-signature": b"Authorization: Basic "
    + base64.b64encode("__token__:eyJ4IjoxfQ.sig\u00e9".encode()),
    "token-shaped-non-ascii-signature": b"Authorization: Basic "
    + base64.b64encode(("local:" + "A" * 16 + "." + "\u00e9" * 43).encode()),
    "devpi-non-ascii": b"X-Devpi-Auth: \xe9t\xe9",
    "devpi-bad-alphabet": b"X-Devpi-Auth: bG9j*WFsOng=",
}


@pytest.mark.parametrize(
    "header", list(HOSTILE_CREDENTIALS.values()), ids=list(HOSTILE_CREDENTIALS)
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/local/stage/+simple/good-pkg/"),  # the hot path's page
        ("GET", "{file}"),  # the hot path's file
        ("GET", "/local/stage/+simple/"),  # a route
        ("GET", "/+api"),
        ("PATCH", "/local/stage"),  # a write
    ],
)
def test_malformed_credentials_are_refused(
    target: Target, header: bytes, method: str, path: str
) -> None:
    """A malformed credential header is never a 500. A read answers as to an anonymous caller
    (wrong credentials read what anonymous callers may: http/access.py), here the public
    index's 200, on the hot path and the routes alike; a write is refused with 401 saying why
    (malformed, or well-formed and wrong).
    Nothing changes, and the server goes on serving."""
    before = stored(target.server)
    raw_path = target.file_path if path == "{file}" else path
    body = b"{}" if method == "PATCH" else b""
    head = (
        f"{method} {raw_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        + header
        + b"\r\n\r\n"
    )
    reply = exchange(target.port, head, [body])
    if method == "GET":
        assert reply.status == 200, reply
    else:
        assert reply.status == 401, reply
        assert re.search("malformed credentials|could not be authenticated", reply.text), reply
    assert_nothing_stored(target, before)
    target.alive()


# What a browser may send back that the server compares with a secret of its own: the session
# cookie's signature, the login form's double-submit cookie and CSRF field. Text outside ASCII
# there made ``hmac.compare_digest`` raise (a 500 on every page); now it is simply not equal.
TOKEN_SHAPED = b"QUFBQUFBQUFBQUFBQUFBQQ." + b"\xe9" * 43


@pytest.mark.parametrize(
    ("method", "path", "cookie", "form", "expected"),
    [
        ("GET", "/+web/login", b"cheeseboard_session=" + TOKEN_SHAPED, b"", 200),
        ("GET", "/", b"cheeseboard_session=" + TOKEN_SHAPED, b"", 200),
        ("GET", "/+web/login", b"cheeseboard_login=\xe9\xe9", b"", 200),
        (
            "POST",
            "/+web/login",
            b"cheeseboard_login=\xe9\xe9",
            b"csrf_token=%C3%A9%C3%A9&username=local&password=x",
            403,
        ),
        (
            "POST",
            "/+web/login",
            b"cheeseboard_login=abc",
            b"csrf_token=%ED%A0%80&username=local&password=x",  # a lone surrogate, UTF-8'd
            403,
        ),
    ],
    ids=["session-page", "session-root", "login-cookie", "csrf-non-ascii", "csrf-surrogate"],
)
def test_foreign_text_in_browser_secrets(
    target: Target, method: str, path: str, cookie: bytes, form: bytes, expected: int
) -> None:
    """A browser's cookie or form value that is not ASCII reads as no session, or is refused
    as a form from elsewhere (403): never a 500."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
        + b"Accept: text/html\r\nCookie: "
        + cookie
        + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(form)}\r\n\r\n".encode()
    )
    reply = exchange(target.port, head, [form])
    assert reply.status == expected, reply
    target.alive()


def _worker_peak_rss(server: CheeseboardServer) -> int:
    """The largest VmHWM (peak RSS) among the server's worker processes, in bytes."""
    assert server.process is not None
    peaks = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if parent != server.process.pid:
                continue
            with open(f"/proc/{entry}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) * 1024)
        except (OSError, ValueError, IndexError):
            continue
    assert peaks, "no worker processes found"
    return max(peaks)


@pytest.mark.parametrize(
    ("headers", "target_path"),
    [
        ({"X-Big": "a" * 100_000}, "/+api"),
        ({"Cookie": "a=b; " * 20_000}, "/+api"),
        ({"Authorization": "Bearer " + "A" * 100_000}, "/local/stage/+simple/"),
        ({f"X-H{i}": "v" for i in range(5000)}, "/+api"),
        ({}, "/local/" + "a" * 100_000),
    ],
    ids=["100KB-header", "100KB-cookie", "100KB-token", "5000-headers", "100KB-url"],
)
def test_oversized_request_heads(target: Target, headers: dict[str, str], target_path: str) -> None:
    """A head too big for the 64 KiB read buffer: 431/414 before any app code runs (or the
    connection is closed), and the server goes on serving."""
    reply = request(target.port, "GET", target_path, headers)
    assert reply.status in (400, 413, 414, 431) or (reply.status is None and not reply.body), reply
    target.alive()


def _json_headers(auth: tuple[str, str] | None = ROOT) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if auth:
        headers["Authorization"] = basic(*auth)
    return headers


def _lazy(total: int, first: bytes = b"", filler: bytes = b"x") -> Iterator[bytes]:
    """``total`` bytes starting with ``first``, made a MiB at a time as the socket takes them."""
    yield first
    left = total - len(first)
    block = filler * (MiB // len(filler))
    while left > 0:
        yield block[:left]
        left -= len(block)


@pytest.mark.parametrize(
    ("method", "path", "prefix", "auth"),
    [
        ("PUT", "/newuser", b'{"password": "', ROOT),
        ("PATCH", "/local", b'{"email": "', ROOT),
        ("PUT", "/local/newindex", b'{"title": "', ROOT),
        ("PATCH", "/local/stage", b'{"title": "', LOCAL),
        ("POST", "/+login", b'{"user": "local", "password": "', None),
        ("POST", "/local/+tokens", b'{"description": "', LOCAL),
        ("PATCH", f"/local/stage/{GOOD}/1.0", b'{"yanked": "', LOCAL),
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_json_bodies(
    target: Target,
    method: str,
    path: str,
    prefix: bytes,
    auth: tuple[str, str] | None,
    chunked: bool,
) -> None:
    """50 MB of JSON to each JSON endpoint: 413 with a message as soon as the size is known
    (from Content-Length, or after 1 MiB of a chunked body), and nothing changes."""
    before = stored(target.server)
    config_before = call(target.server.url, "GET", "/local/stage")[1]
    total = 50 * MiB
    if chunked:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in _json_headers(auth).items())
            + "\r\n"
        ).encode()
        chunks = (b"%x\r\n%s\r\n" % (len(c), c) for c in _lazy(total, prefix) if c)
        reply = exchange(target.port, head, chunks)
    else:
        reply = request(target.port, method, path, _json_headers(auth), _lazy(total, prefix), total)
    assert reply.status == 413, reply
    assert "larger than 1048576 bytes" in reply.text
    assert stored(target.server) == before
    assert call(target.server.url, "GET", "/local/stage")[1] == config_before
    assert call(target.server.url, "GET", "/newuser")[0] == 404
    target.alive()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"title": ' + b"1" * 5000 + b"}", "too many digits"),  # json lets int()'s error out
        (b'{"title": "\xff"}', "not valid JSON"),
        (b'{"title": "x"', "not valid JSON"),
        # Python's json reads NaN; a stored one made each later answer with the config a 500.
        (b'{"custom_data": NaN}', "NaN is not a JSON number"),
        (b'{"custom_data": [1e999]}', "1e999 is not a JSON number"),
    ],
    ids=["deep", "huge-number", "not-utf8", "truncated", "nan", "infinity"],
)
def test_malformed_json_bodies(target: Target, body: bytes, message: str) -> None:
    """Bodies json.loads chokes on in unusual ways: 400 with a message, never a 500."""
    config_before = call(target.server.url, "GET", "/local/stage")[1]
    for method, path in (("PATCH", "/local/stage"), ("POST", "/+login"), ("PUT", "/newuser")):
        reply = request(target.port, method, path, _json_headers(), body)
        assert reply.status == 400, (method, path, reply)
        assert message in reply.text
    assert call(target.server.url, "GET", "/local/stage")[1] == config_before


def test_oversized_form_fields(target: Target) -> None:
    """A 50 MB description field (413 naming it) and 5000 fields (400): nothing stored, and
    the worker's memory never holds the field (peak RSS stays well below it)."""
    content = zip_bytes({f"hostile_pkg-{VERSION}.dist-info/METADATA": metadata()})
    before = stored(target.server)
    fields = upload_fields(content)
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    head += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="description"\r\n\r\n'.encode()
    total = 50 * MiB
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Authorization": basic(*LOCAL),
    }
    reply = request(target.port, "POST", "/local/stage/", headers, _lazy(total, head, b"d"), total)
    assert reply.status == 413, reply
    assert "form field 'description' is larger than" in reply.text
    many = {**fields, **{f"Classifier{i}": "x" for i in range(5000)}}
    reply = target.upload(many, WHEEL.encode(), content)
    assert reply.status == 400, reply
    assert "Too many fields" in reply.text
    assert_nothing_stored(target, before)
    assert _worker_peak_rss(target.server) < 400 * MiB
    target.alive()


# --- (d) zip bombs and malformed archives ------------------------------------------------------


def metadata(name: str = PROJECT, version: str = VERSION) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, method)
    return buffer.getvalue()


def zeros_deflate(mib: int, prefix: bytes = b"") -> bytes:
    """A raw deflate stream of ``prefix`` and then ``mib`` MiB of zeros, built in milliseconds:
    after a full flush, every MiB of zeros compresses to the same ~1 KB block."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return start + block * mib + compressor.flush()


ZIP_LOCAL = struct.Struct("<IHHHHHIIIHH")
ZIP_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
ZIP_END = struct.Struct("<IHHHHIIH")


def raw_zip(entries: list[tuple[str, bytes, int, int, int]], shared_offsets: bool = False) -> bytes:
    """A zip written field by field: (name, data, method, crc, uncompressed size) per entry.
    With ``shared_offsets`` every central entry points at the first local header (overlap)."""
    out = io.BytesIO()
    central = []
    for name, data, method, crc, size in entries:
        offset = out.tell()
        raw = name.encode()
        if not (shared_offsets and central):
            fields = (0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0)
            out.write(ZIP_LOCAL.pack(*fields) + raw + data)
        central.append((raw, method, crc, len(data), size, 0 if shared_offsets else offset))
    directory = out.tell()
    for raw, method, crc, compressed, size, offset in central:
        head = (0x02014B50, 20, 20, 0, method, 0, 0x21, crc, compressed, size, len(raw))
        out.write(ZIP_CENTRAL.pack(*head, 0, 0, 0, 0, 0, offset) + raw)
    count, end = len(central), out.tell()
    out.write(ZIP_END.pack(0x06054B50, 0, 0, count, count, end - directory, directory, 0))
    return out.getvalue()


def tar_gz(members: list[tuple[str, bytes | None, bytes, str]]) -> bytes:
    """(name, data, tar type, link target) per member, gzipped."""
    return gzip.compress(tar_bytes(members), mtime=0)


def tar_bytes(members: list[tuple[str, bytes | None, bytes, str]]) -> bytes:
    """(name, data, tar type, link target) per member."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            regular = kind == tarfile.REGTYPE and data is not None
            info.size = len(data) if regular and data is not None else 0
            archive.addfile(info, io.BytesIO(data) if regular and data is not None else None)
    return buffer.getvalue()


def tar_gz_scan_bomb() -> bytes:
    """A .tar.gz with a good PKG-INFO and then a member of 2 GiB of zeros, about 1 MB gzipped:
    the reader must stop at its 1 GiB scan limit."""
    info = tarfile.TarInfo(f"hostile_pkg-{VERSION}/PKG-INFO")
    info.size = len(metadata())
    big = tarfile.TarInfo(f"hostile_pkg-{VERSION}/big.bin")
    big.size = 2 * 1024 * MiB
    head = info.tobuf(tarfile.USTAR_FORMAT) + metadata() + bytes(-len(metadata()) % 512)
    head += big.tobuf(tarfile.USTAR_FORMAT)
    deflated = zeros_deflate(1100, head)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated + struct.pack("<II", 0, 0)


META = f"hostile_pkg-{VERSION}.dist-info/METADATA"
TOP = f"hostile_pkg-{VERSION}"
REG, SYM, LNK, CHR = tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE
BOMB = zeros_deflate(3 * 1024)  # 3 GiB of zeros in ~3 MB
ARCHIVES: dict[str, tuple[str, bytes, str]] = {
    "bomb-declared-3GiB": (WHEEL, raw_zip([(META, BOMB, 8, 0, 3 * 1024**3)]), "larger than"),
    "bomb-declared-small": (WHEEL, raw_zip([(META, BOMB, 8, 0, 1000)]), "not a valid zip"),
    "overlapping-entries": (
        WHEEL,
        raw_zip(
            [(META, metadata(), 0, zlib.crc32(metadata()), len(metadata()))]
            + [(f"hostile_pkg/m{i}.py", b"", 0, 0, len(metadata())) for i in range(50)],
            shared_offsets=True,
        ),
        "overlaps",
    ),
    "duplicate-names": (
        WHEEL,
        raw_zip(
            [("hostile_pkg/x.py", b"a", 0, zlib.crc32(b"a"), 1)] * 2
            + [(META, metadata(), 0, zlib.crc32(metadata()), len(metadata()))]
        ),
        "two members named",
    ),
    "nested-zip-metadata": (
        WHEEL,
        zip_bytes({META: zip_bytes({"x/METADATA": metadata()})}),
        "UTF-8",
    ),
    "truncated-zip": (
        WHEEL,
        zip_bytes({META: metadata(), "a.py": b"x" * 5000})[:-40],
        "not a valid zip",
    ),
    "not-a-zip": (WHEEL, b"#!/bin/sh\necho not a wheel\n" * 20, "not a valid zip"),
    "empty-file": (WHEEL, b"", "not a valid zip"),
    "no-metadata": (
        WHEEL,
        zip_bytes({"hostile_pkg/__init__.py": b""}),
        "no <name>.dist-info/METADATA",
    ),
    "two-metadata": (
        WHEEL,
        zip_bytes({META: metadata(), "x-1.dist-info/METADATA": metadata()}),
        "more than one",
    ),
    "metadata-other-project": (
        WHEEL,
        zip_bytes({META: metadata("other-pkg")}),
        "is for project 'other-pkg'",
    ),
    "metadata-other-version": (
        WHEEL,
        zip_bytes({META: metadata(version="9.9")}),
        "has version '9.9'",
    ),
    "metadata-huge-version": (
        WHEEL,
        zip_bytes({META: metadata(version="1" * 5000)}),
        "has version",
    ),
    "metadata-binary": (WHEEL, zip_bytes({META: bytes(range(256)) * 4}), "not valid UTF-8"),
    "metadata-no-name": (
        WHEEL,
        zip_bytes({META: b"Metadata-Version: 2.1\nVersion: 2.0\n"}),
        "no Name",
    ),
    "metadata-encrypted-flag": (
        WHEEL,
        zip_bytes({META: metadata()})
        .replace(b"PK\x03\x04\x14\x00\x00\x00", b"PK\x03\x04\x14\x00\x01\x00", 1)
        .replace(b"PK\x01\x02\x14\x03\x14\x00\x00\x00", b"PK\x01\x02\x14\x03\x14\x00\x01\x00", 1),
        "encrypted",
    ),
    "tar-dotdot-member": (
        SDIST,
        tar_gz([(f"{TOP}/PKG-INFO", metadata(), REG, ""), (f"{TOP}/../../evil.py", b"x", REG, "")]),
        "contains '..'",
    ),
    "tar-absolute-member": (
        SDIST,
        tar_gz([(f"{TOP}/PKG-INFO", metadata(), REG, ""), ("/etc/cron.d/evil", b"x", REG, "")]),
        "absolute path",
    ),
    "tar-symlink-name-not-utf8": (  # the refusal names the member: its bytes are not text
        SDIST,
        tar_gz([(f"{TOP}/PKG-INFO", None, SYM, "/etc/\udcffpasswd")]),
        "link",
    ),
    "tar-pkg-info-symlink": (
        SDIST,
        tar_gz([(f"{TOP}/PKG-INFO", None, SYM, "/etc/passwd")]),
        "not a regular file",
    ),
    "tar-pkg-info-hardlink": (
        SDIST,
        tar_gz([(f"{TOP}/PKG-INFO", None, LNK, "../../etc/passwd")]),
        "not a regular file",
    ),
    "tar-device": (
        SDIST,
        tar_gz([(f"{TOP}/PKG-INFO", metadata(), REG, ""), (f"{TOP}/tty", None, CHR, "")]),
        "device",
    ),
    "tar-two-top-dirs": (
        SDIST,
        tar_gz([(f"{TOP}/PKG-INFO", metadata(), REG, ""), ("other/PKG-INFO", metadata(), REG, "")]),
        "more than one top-level",
    ),
    "tar-gz-scan-bomb": (SDIST, tar_gz_scan_bomb(), "decompresses to more than"),
    # A 4 GiB dictionary in the xz header: the decoder allocated and filled it (1 GiB of RSS
    # for a 170 KB upload) until MAX_XZ_MEMORY capped it.
    "tar-xz-dictionary-bomb": (
        f"hostile_pkg-{VERSION}.tar.xz",
        xz_asking_for_dictionary(tar_bytes([(f"{TOP}/PKG-INFO", metadata(), REG, "")])),
        "needs more than 134217728 bytes of memory",
    ),
    # ZipInfo.is_dir() raised IndexError on an empty member name: a 500 (found by atheris).
    "zip-sdist-empty-member-name": (
        f"hostile_pkg-{VERSION}.zip",
        zip_bytes({f"{TOP}/PKG-INFO": metadata(), "": b""}),
        "path is empty",
    ),
    "tar-not-gzip": (SDIST, b"\x1f\x8b" + b"garbage" * 100, "corrupt or truncated"),
    "tar-truncated": (
        SDIST,
        tar_gz(
            [
                (f"{TOP}/PKG-INFO", metadata(), REG, ""),
                (f"{TOP}/big", random.Random(1).randbytes(50_000), REG, ""),
            ]
        )[:-500],
        "cut short",
    ),
}


@pytest.mark.parametrize("case", list(ARCHIVES))
def test_malformed_archives(target: Target, case: str) -> None:
    """Each archive is refused with 400 and a message saying why; nothing is stored."""
    filename, content, reason = ARCHIVES[case]
    filetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
    before = stored(target.server)
    started = time.monotonic()
    reply = target.upload(upload_fields(content, filetype), filename.encode(), content)
    assert reply.status == 400, reply
    assert reason in reply.text, reply.text
    assert filename in reply.text
    assert time.monotonic() - started < 60
    assert_nothing_stored(target, before)
    target.alive()


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (b"<html>not a zip</html>", "not a valid zip archive"),
        (zip_bytes({"index.html": b"<p>x</p>", "": b""}), "a member has an empty name"),
    ],
    ids=["not-a-zip", "empty-member-name"],
)
def test_malformed_doc_zips(target: Target, archive: bytes, reason: str) -> None:
    """Documentation uploads that would break every page of the release are refused (a member
    without a name made ZipInfo.is_dir() raise in http/ui/docs.py: a 500 on each page)."""
    before = stored(target.server)
    status, text = upload_docs(target.server.url, "local/stage", GOOD, "1.0", archive, LOCAL)
    assert status == 400, text
    assert f"documentation must be a zip file: {reason}" in text
    assert stored(target.server) == before
    page = request(target.port, "GET", f"/local/stage/{GOOD}/1.0/+doc/index.html")
    assert page.status == 200 and page.body == b"<p>docs</p>"


def test_bombs_do_not_blow_worker_memory(target: Target) -> None:
    """After the 3 GiB zip bombs and the 2 GiB tar.gz scan bomb, the workers' peak RSS is a
    small fraction of what they expand to (the readers stream and stop at their limits)."""
    for case in (
        "bomb-declared-3GiB",
        "bomb-declared-small",
        "tar-gz-scan-bomb",
        "tar-xz-dictionary-bomb",
    ):
        filename, content, _ = ARCHIVES[case]
        filetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
        assert (
            target.upload(upload_fields(content, filetype), filename.encode(), content).status
            == 400
        )
    assert _worker_peak_rss(target.server) < 400 * MiB


# --- (e) mutated multipart ---------------------------------------------------------------------

MUTATION_TOKENS = [
    b"\r\n",
    b"--",
    BOUNDARY.encode(),
    b'Content-Disposition: form-data; name="content"; filename="x.whl"\r\n',
    b'name="',
    b"filename*=UTF-8''%2e%2e%2fx.whl",
    b"\x00",
    b"\xff",
    b"Content-Type: ",
    b";",
    b'"',
    b"\r\n\r\n",
    f"--{BOUNDARY}--".encode(),
    b"../",
]
CONTENT_TYPES = [
    f"multipart/form-data; boundary={BOUNDARY}",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=" + "x" * 300,
    f'multipart/form-data; boundary="{BOUNDARY}"',
    f"multipart/form-data; boundary={BOUNDARY}; charset=utf-16",
    f"multipart/mixed; boundary={BOUNDARY}",
    "application/x-www-form-urlencoded",
    "text/plain",
    "",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(len(out) + 1)
        op = rng.randrange(7)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            out[pos:pos] = rng.choice(MUTATION_TOKENS)
        elif op == 2:
            del out[pos : pos + rng.randint(1, 64)]
        elif op == 3:
            del out[pos:]
        elif op == 4:
            source = rng.randrange(len(out) + 1)
            out[pos:pos] = out[source : source + rng.randint(1, 200)]
        elif op == 5:
            out[pos:pos] = rng.randbytes(rng.randint(1, 32))
        else:
            action = rng.choice([b"doc_upload", b"submit", b"x", b""])
            out = bytearray(bytes(out).replace(b"file_upload", action, 1))
    return bytes(out)


def test_mutated_multipart_uploads(target: Target, tmp_path: Path) -> None:
    """300 mutated uploads (seeded): every answer is below 500, the server keeps serving, and
    afterwards only what a 200 reported as stored is there; nothing is half-stored."""
    wheel = build_wheel(tmp_path, FUZZED, VERSION)
    content = wheel.path.read_bytes()
    valid = multipart(upload_fields(content, name=FUZZED), wheel.filename.encode(), content)
    rng = random.Random(9)
    statuses: dict[int | None, int] = {}
    failures = []
    stored_names: set[str] = set()
    requests = 300
    for number in range(requests):
        body = mutate(rng, valid)
        content_type = rng.choice(CONTENT_TYPES) if rng.random() < 0.3 else CONTENT_TYPES[0]
        # A Content-Length shorter than the body (never longer: the server would wait for more).
        length = len(body) - rng.randint(0, 50) if rng.random() < 0.05 else len(body)
        headers = {"Content-Type": content_type, "Authorization": basic(*LOCAL)}
        reply = request(target.port, "POST", "/local/stage/", headers, [body], max(length, 0))
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        if reply.status is None or reply.status >= 500:
            failures.append(f"#{number}: {reply.status} {reply.text[:200]!r} for {body[:300]!r}")
        elif reply.status == 200 and (found := re.match(r"OK: stored (\S+)", reply.text)):
            stored_names.add(found.group(1))
    add("live server: mutated multipart uploads", requests)
    assert not failures, "\n".join(failures[:10])
    assert sum(count for status, count in statuses.items() if status and status >= 400) > 200
    target.alive()
    after = stored(target.server)
    assert not after.staged
    assert after.blobs == after.blob_rows  # every blob file has its row, and every row its file
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    page = request(target.port, "GET", f"/local/stage/+simple/{FUZZED}/", accept)
    assert page.status in (200, 404), page
    listed = (
        {entry["filename"] for entry in json.loads(page.body)["files"]}
        if page.status == 200
        else set()
    )
    assert listed <= stored_names, "a file is listed that no upload reported stored"
