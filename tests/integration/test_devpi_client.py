"""The real devpi client (devpi-client 7.x) drives the server unchanged.

Cases 1-14 of docs/devpi-protocol.md §13 (case 15, export/import, is tested elsewhere) plus
the seed workflow, all against one server whose root/pypi mirrors a local HTML upstream.  Tests
run in file order and share that server; each test has its own devpi client directory and sets
up what it needs but does not test itself (users, indexes, releases) through the HTTP API or
twine, so a failing case does not break the ones after it.  Every case checks the client's exit
code and output and then the server's state through the HTTP API.

Deviation from devpi, by design (docs/security.md, "Who may do what"): only root creates users and
indexes, so alice's indexes are created by root (``devpi index -c alice/dev``) and
``devpi index -c NAME`` as alice is refused with 403 (``--open-registration`` restores devpi's
default: tests/integration/test_account_security.py). Emails show only to their user and root.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import basic, call, twine_upload
from tests.support.clients import installed, pip_install
from tests.support.devpi import DevpiClient, server_requests
from tests.support.packages import Dist, build_sdist, build_wheel, installer_env
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-pw-1")
LOCAL = ("local", "local-secret")
PEP691 = "application/vnd.pypi.simple.v1+json"


@dataclass
class World:
    """The shared server, its upstream and the files the cases upload."""

    server: CheeseboardServer
    upstream: UpstreamServer
    base: Path
    wheel: Dist  # p-1.0 wheel
    sdist: Dist  # p-1.0 sdist
    doczip: Path  # p-1.0.doc.zip
    six: list[Dist]  # public six releases on the upstream

    @property
    def url(self) -> str:
        return self.server.url


def _doc_zip(dest: Path, name: str, version: str) -> Path:
    """A tiny documentation zip named ``name-version.doc.zip`` (fixed timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("index.html", date_time=(1980, 1, 1, 0, 0, 0))
        zf.writestr(info, f"<html><body><h1>{name} {version} docs</h1></body></html>\n")
    path = dest / f"{name}-{version}.doc.zip"
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, dists: dict[str, list[Dist]]
) -> Iterator[World]:
    """One server for the whole module: root/pypi mirrors app, lib-a, lib_b, lib-c and six."""
    base = tmp_path_factory.mktemp("devpi-client")
    six = [build_wheel(base / "public", "six", version) for version in ("1.16.0", "1.17.0")]
    p_dir = base / "p"
    wheel = build_wheel(p_dir, "p", "1.0")
    sdist = build_sdist(p_dir, "p", "1.0")
    doczip = _doc_zip(p_dir, "p", "1.0")
    with UpstreamServer(mode="html") as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        for dist in six:
            upstream.add(dist)
        factory = ServerFactory(base)
        try:
            server = factory.start(upstream.simple_url)
            yield World(server, upstream, base, wheel, sdist, doczip, six)
        finally:
            factory.stop_all()


@pytest.fixture
def devpi(world: World, tmp_path: Path) -> DevpiClient:
    """A devpi client with a fresh client directory, not yet connected."""
    return DevpiClient(tmp_path, server_log=world.server.log)


# -- setup through the HTTP API (not under test here) ----------------------------------------


def _ensure_user(world: World, name: str, password: str) -> None:
    if call(world.url, "GET", f"/{name}")[0] == 404:
        status, body = call(world.url, "PUT", f"/{name}", {"password": password}, auth=ROOT)
        assert status == 201, body


def _ensure_index(world: World, name: str, **config: Any) -> None:
    _ensure_user(world, name.split("/")[0], ALICE[1])
    if call(world.url, "GET", f"/{name}")[0] == 404:
        status, body = call(world.url, "PUT", f"/{name}", config, auth=ROOT)
        assert status == 200, body


def _twine(world: World, index: str, *files: Path, auth: tuple[str, str] = ALICE) -> None:
    result = twine_upload(f"{world.url}{index}/", *auth, *files)
    assert result.returncode == 0, result.stdout + result.stderr


def _multipart(fields: dict[str, str], file_field: str, path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + path.read_bytes()
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _doc_upload(world: World, index: str, name: str, version: str, doczip: Path) -> None:
    """``:action=doc_upload`` as devpi-client sends it, with Basic auth."""
    body, content_type = _multipart(
        {":action": "doc_upload", "name": name, "version": version}, "content", doczip
    )
    status, reply = _post(world.url + index + "/", body, content_type, ALICE)
    assert status == 200, (status, reply)


def _post(url: str, body: bytes, content_type: str, auth: tuple[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": basic(*auth)},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, f"{error.reason}: {error.read().decode(errors='replace')}"


# -- reading server state ---------------------------------------------------------------------


def _get(world: World, path: str) -> Any:
    """GET a JSON resource that must exist; returns its ``result``."""
    status, body = call(world.url, "GET", path)
    assert status == 200, (path, status, body)
    return body["result"]


def _links(world: World, path: str, rel: str = "releasefile") -> dict[str, str]:
    """``{basename: sha256}`` of the ``+links`` of one version."""
    links = _get(world, path)["+links"]
    return {
        link["href"].rsplit("/", 1)[-1]: link["hashes"]["sha256"]
        for link in links
        if link["rel"] == rel
    }


def _simple_files(world: World, index: str, project: str) -> set[str]:
    """Filenames on a PEP 691 project page."""
    request = urllib.request.Request(
        f"{world.url}{index}/+simple/{project}/", headers={"Accept": PEP691}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {entry["filename"] for entry in json.loads(response.read())["files"]}


def _logged_requests(world: World, since: int, expected: str, timeout: float = 3.0) -> list[str]:
    """Requests the server logged after offset ``since``, once ``expected`` shows up."""
    deadline = time.monotonic() + timeout
    while True:
        lines = server_requests(world.server.log()[since:])
        if any(expected in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def _as_alice(devpi: DevpiClient, world: World, index: str = "alice/dev") -> None:
    devpi.use(world.url)
    devpi.login(*ALICE)
    devpi.use(index)


# -- cases 1-5: connecting, logging in, users and indexes -------------------------------------


def test_01_use_server(devpi: DevpiClient, world: World) -> None:
    """``devpi use URL`` stores login URL and features; every reply is X-Devpi-Api-Version 2."""
    out = devpi.use(world.url)
    assert f"using server: {world.url} (not logged in)" in out
    assert "unversioned reply" not in out
    current = devpi.current()
    assert current["login"] == world.url + "+login"
    assert "server-keyvalue-parsing" in current["features"]
    status, body = call(world.url, "GET", "/+api")
    assert status == 200 and body["type"] == "apiconfig"
    assert body["result"]["authstatus"][0] == "noauth"
    for method, path in [
        ("GET", "/+api"),
        ("GET", "/"),
        ("GET", "/root/pypi"),
        ("GET", "/root/pypi/+simple/"),
        ("GET", "/nobody"),
        ("POST", "/+login"),
    ]:
        request = urllib.request.Request(
            world.url + path.lstrip("/"),
            method=method,
            data=b"{}" if method == "POST" else None,
            headers={"Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                headers = response.headers
        except urllib.error.HTTPError as error:
            with error:
                headers = error.headers
        assert headers["X-Devpi-Api-Version"] == "2", (method, path)
        assert headers["X-Devpi-Serial"].isdigit(), (method, path)


def test_02_login(devpi: DevpiClient, world: World) -> None:
    """Bad password: exit 1 with devpi's 401 line; good one: a token valid 10 hours."""
    devpi.use(world.url)
    out = devpi.fails("login", "root", "--password", "wrong")
    assert "401 Unauthorized: user 'root' could not be authenticated" in out
    assert devpi.auth().get("auth", {}) == {}
    out = devpi.login(*ROOT)
    assert "logged in 'root', credentials valid for 10.00 hours" in out
    assert list(devpi.auth()["auth"]) == [world.url]
    [[user, token]] = devpi.auth()["auth"][world.url]
    assert user == "root" and token and token != ROOT_PASSWORD
    status, body = call(world.url, "GET", "/+api", auth=("root", token))
    assert status == 200 and body["result"]["authstatus"][:2] == ["ok", "root"]


def test_03_user_create(devpi: DevpiClient, world: World) -> None:
    """``user -c alice`` creates her (root), ``user -l`` lists her, a repeat is a 409."""
    devpi.use(world.url)
    devpi.login(*ROOT)
    out = devpi.ok("user", "-c", "alice", f"password={ALICE[1]}", "email=alice@example.com")
    assert "user created: alice" in out
    out = devpi.ok("user", "-l")
    assert {"alice", "root"} <= set(out.split())
    out = devpi.fails("user", "-c", "alice", f"password={ALICE[1]}", "email=alice@example.com")
    assert "409" in out
    alice = call(world.url, "GET", "/alice", auth=ROOT)[1]["result"]
    assert alice["username"] == "alice" and alice["email"] == "alice@example.com"
    assert "email" not in _get(world, "/alice")  # not shown to anonymous callers
    status, body = call(world.url, "POST", "/+login", {"user": "alice", "password": ALICE[1]})
    assert status == 200 and body["type"] == "proxyauth", body


def test_04_index_create(devpi: DevpiClient, world: World) -> None:
    """``index -c alice/dev bases=root/pypi`` prints devpi's config lines; alice may not create."""
    _ensure_user(world, *ALICE)
    devpi.use(world.url)
    devpi.login(*ROOT)
    out = devpi.ok("index", "-c", "alice/dev", "bases=root/pypi")
    for line in [
        "type=stage",
        "bases=root/pypi",
        "volatile=True",
        "acl_upload=alice",
        "acl_toxresult_upload=:ANONYMOUS:",
        "mirror_whitelist=",
        "mirror_whitelist_inheritance=intersection",
    ]:
        assert f"  {line}\n" in out, line
    config = _get(world, "/alice/dev")
    assert config["type"] == "stage" and config["bases"] == ["root/pypi"]
    assert config["volatile"] is True and config["acl_upload"] == ["alice"]
    assert config["mirror_whitelist_inheritance"] == "intersection"
    # Safe default (docs/security.md, "Who may do what"): only root creates indexes, unlike devpi.
    devpi.login(*ALICE)
    out = devpi.fails("index", "-c", "mine", "bases=root/pypi")
    assert "403" in out
    assert call(world.url, "GET", "/alice/mine")[0] == 404


def test_05_use_index(devpi: DevpiClient, world: World) -> None:
    """``use alice/dev`` logged in as alice: current index, simple and upload URLs."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    devpi.use(world.url)
    devpi.login(*ALICE)
    out = devpi.use("alice/dev")
    assert f"current devpi index: {world.url}alice/dev (logged in as alice)" in out
    current = devpi.current()
    assert current["index"] == world.url + "alice/dev"
    assert current["simpleindex"] == world.url + "alice/dev/+simple/"
    assert current["pypisubmit"] == world.url + "alice/dev/"
    out = devpi.ok("use", "-l")
    assert any(
        line.split() == ["alice/dev", "bases=root/pypi", "volatile=True"]
        for line in out.splitlines()
    ), out
    api = _get(world, "/alice/dev/+api")
    assert api["pypisubmit"] == current["pypisubmit"]
    assert "dev" in _get(world, "/alice")["indexes"]


# -- cases 6-10: uploads, installers, permissions, non-volatile, push -------------------------


def test_06_upload_release_files_and_docs(devpi: DevpiClient, world: World) -> None:
    """``upload`` of sdist, wheel and doc zip; ``list`` shows p, ``list p`` its two files."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    _as_alice(devpi, world)
    out = devpi.ok("upload", world.sdist.path, world.wheel.path, world.doczip)
    assert "FAIL" not in out
    assert "p" in devpi.ok("list").split()
    out = devpi.ok("list", "p")
    urls = [line for line in out.split() if "/+f/" in line]
    assert len(urls) == 2, out
    assert {url.rsplit("/", 1)[-1] for url in urls} == {world.wheel.filename, world.sdist.filename}
    assert all(url.startswith(world.url + "alice/dev/+f/") for url in urls)
    assert _links(world, "/alice/dev/p/1.0") == {
        world.wheel.filename: world.wheel.sha256,
        world.sdist.filename: world.sdist.sha256,
    }
    assert _links(world, "/alice/dev/p/1.0", rel="doczip") == {
        "p-1.0.doc.zip": hashlib.sha256(world.doczip.read_bytes()).hexdigest()
    }


def test_07_pip_download(world: World, tmp_path: Path) -> None:
    """``pip download -i …/alice/dev/+simple/ p==1.0`` gets the uploaded bytes (PEP 691, +f)."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    _twine(world, "alice/dev", world.wheel.path, world.sdist.path)
    since = len(world.server.log())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--retries",
            "0",
            "--no-deps",
            "-d",
            str(tmp_path / "dl"),
            "-i",
            f"{world.url}alice/dev/+simple/",
            "p==1.0",
        ],
        env=installer_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    downloaded = tmp_path / "dl" / world.wheel.filename
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == world.wheel.sha256
    lines = _logged_requests(world, since, world.wheel.filename)
    assert any("/alice/dev/+f/" in line and line.endswith(" 200") for line in lines), lines


def test_08_upload_needs_credentials(devpi: DevpiClient, world: World, tmp_path: Path) -> None:
    """Logged-out ``devpi upload`` fails with 401; twine with alice's password or token works."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    first = build_wheel(tmp_path, "authpkg", "1.0")
    second = build_wheel(tmp_path, "authpkg", "1.1")
    devpi.use(world.url + "alice/dev")
    out = devpi.fails("upload", first.path)
    assert "401" in out
    assert call(world.url, "GET", "/alice/dev/authpkg")[0] == 404
    _twine(world, "alice/dev", first.path)
    status, body = call(world.url, "POST", "/+login", {"user": "alice", "password": ALICE[1]})
    assert status == 200, body
    _twine(world, "alice/dev", second.path, auth=("alice", body["result"]["password"]))
    assert set(_get(world, "/alice/dev/authpkg")) == {"1.0", "1.1"}


def test_09_non_volatile_reupload(devpi: DevpiClient, world: World, tmp_path: Path) -> None:
    """On non-volatile alice/prod the same file again is fine, changed bytes are a 409."""
    _ensure_index(world, "alice/prod", bases="root/pypi", volatile=False)
    changed = build_wheel(tmp_path, "p", "1.0", summary="changed")
    assert changed.filename == world.wheel.filename and changed.sha256 != world.wheel.sha256
    _as_alice(devpi, world, "alice/prod")
    devpi.ok("upload", world.wheel.path)
    devpi.ok("upload", world.wheel.path)
    out = devpi.fails("upload", changed.path)
    assert "409" in out
    assert _links(world, "/alice/prod/p/1.0") == {world.wheel.filename: world.wheel.sha256}


def test_09_non_volatile_index_delete(devpi: DevpiClient, world: World) -> None:
    """``index --delete`` of a non-volatile index fails with 403 and the index stays."""
    _ensure_index(world, "alice/prod", bases="root/pypi", volatile=False)
    _as_alice(devpi, world, "alice/prod")
    out = devpi.fails("index", "--delete", "-y", "alice/prod")
    assert "403" in out
    assert _get(world, "/alice/prod")["volatile"] is False


def test_10_push(devpi: DevpiClient, world: World) -> None:
    """``push p==1.0 alice/staging`` copies both release files and the docs (actionlog)."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    _ensure_index(world, "alice/staging", bases="root/pypi")
    _twine(world, "alice/dev", world.wheel.path, world.sdist.path)
    _doc_upload(world, "alice/dev", "p", "1.0", world.doczip)
    _as_alice(devpi, world)
    out = devpi.ok("push", "p==1.0", "alice/staging")
    lines = [line.split() for line in out.splitlines()]
    assert ["200", "register", "p", "1.0", "->", "alice/staging"] in lines, out
    assert sum(line[:2] == ["200", "store_releasefile"] for line in lines) == 2, out
    assert sum(line[:2] == ["200", "store_doczip"] for line in lines) == 1, out
    assert _links(world, "/alice/staging/p/1.0") == {
        world.wheel.filename: world.wheel.sha256,
        world.sdist.filename: world.sdist.sha256,
    }
    assert set(_links(world, "/alice/staging/p/1.0", rel="doczip")) == {"p-1.0.doc.zip"}


# -- cases 11-14: index options, dependency confusion, remove, mirror -------------------------


def test_11_index_modify(devpi: DevpiClient, world: World) -> None:
    """``index alice/dev mirror_whitelist+=six title=X`` patches; ``bogus=1`` is a 400."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    _as_alice(devpi, world)
    out = devpi.ok("index", "alice/dev", "mirror_whitelist+=six", "title=X")
    assert "  mirror_whitelist=six\n" in out and "  title=X\n" in out
    config = _get(world, "/alice/dev")
    assert config["mirror_whitelist"] == ["six"] and config["title"] == "X"
    out = devpi.fails("index", "alice/dev", "bogus=1")
    assert "400" in out and "unexpected keyword" in out
    assert _get(world, "/alice/dev") == config


def test_12_private_six_hides_pypi_six(devpi: DevpiClient, world: World, tmp_path: Path) -> None:
    """A private six-99.0 hides the mirror's six files until ``mirror_whitelist+=six``."""
    _ensure_index(world, "alice/private", bases="root/pypi")
    public = {dist.filename for dist in world.six}
    assert _simple_files(world, "alice/private", "six") == public
    private = build_wheel(tmp_path, "six", "99.0")
    _as_alice(devpi, world, "alice/private")
    # The server refuses a first private upload of a name the mirror knows (403) unless the
    # index allows it: opt in first.
    devpi.ok("index", "alice/private", "allow_upstream_names=True")
    devpi.ok("upload", private.path)
    assert _simple_files(world, "alice/private", "six") == {private.filename}
    assert _links(world, "/alice/private/six/99.0") == {private.filename: private.sha256}
    out = devpi.ok("index", "alice/private", "mirror_whitelist+=six")
    assert "  mirror_whitelist=six\n" in out
    assert _simple_files(world, "alice/private", "six") == public | {private.filename}


def test_13_remove(devpi: DevpiClient, world: World, tmp_path: Path) -> None:
    """``remove -y p==1.1`` deletes one release; on non-volatile prod only with ``-f``."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    _ensure_index(world, "alice/prod", bases="root/pypi", volatile=False)
    newer = build_wheel(tmp_path, "p", "1.1")
    _twine(world, "alice/dev", world.wheel.path, newer.path)
    _twine(world, "alice/prod", world.wheel.path)
    _as_alice(devpi, world)
    out = devpi.ok("remove", "-y", "p==1.1")
    assert "deleting release 1.1 of p" in out
    assert call(world.url, "GET", "/alice/dev/p/1.1")[0] == 404
    assert world.wheel.filename in _links(world, "/alice/dev/p/1.0")
    devpi.use("alice/prod")
    out = devpi.fails("remove", "-y", "p==1.0")
    assert "403" in out
    assert _links(world, "/alice/prod/p/1.0") == {world.wheel.filename: world.wheel.sha256}
    devpi.ok("remove", "-y", "-f", "p==1.0")
    assert call(world.url, "GET", "/alice/prod/p/1.0")[0] == 404


def test_14_getjson_mirror_project(devpi: DevpiClient, world: World) -> None:
    """``getjson /root/pypi/six`` prints a projectconfig with +links to the mirror's files."""
    devpi.use(world.url)
    out = devpi.ok("getjson", "/root/pypi/six")
    reply = json.loads(out)
    assert reply["type"] == "projectconfig"
    assert set(reply["result"]) == {dist.version for dist in world.six}
    for dist in world.six:
        [link] = reply["result"][dist.version]["+links"]
        assert link["rel"] == "releasefile"
        assert link["href"].startswith(world.url + "root/pypi/+f/")
        assert link["href"].endswith("/" + dist.filename)
        assert link["hashes"]["sha256"] == dist.sha256
    assert _get(world, "/root/pypi/six") == reply["result"]


def test_14_refresh(devpi: DevpiClient, world: World) -> None:
    """``refresh six`` refetches the mirror's page at once: POST refresh, 302, then the page."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    assert _simple_files(world, "root/pypi", "six")  # cached now
    fetched = world.upstream.count("/simple/six/")
    assert _simple_files(world, "root/pypi", "six")
    assert world.upstream.count("/simple/six/") == fetched  # served from the cache
    devpi.use(world.url + "alice/dev")
    since = len(world.server.log())
    out = devpi.ok("refresh", "six")
    assert "Refreshed six" in out and "Couldn't refresh" not in out
    lines = _logged_requests(world, since, "/alice/dev/+simple/six/ 200")
    assert "POST /alice/dev/+simple/six/refresh 302" in lines, lines
    assert world.upstream.count("/simple/six/") > fetched


def test_14_status(devpi: DevpiClient, world: World) -> None:
    """``getjson /+status`` prints a status with serial and role."""
    devpi.use(world.url)
    reply = json.loads(devpi.ok("getjson", "/+status"))
    assert reply["type"] == "status"
    assert isinstance(reply["result"]["serial"], int)
    assert reply["result"]["role"] == "MASTER"
    status = _get(world, "/+status")
    assert status["serial"] >= reply["result"]["serial"] and status["uuid"]


# -- more of what devpi-client sends -----------------------------------------------------------


def test_user_modify(devpi: DevpiClient, world: World) -> None:
    """``user -m bob email=… password=…`` PATCHes bob's config; the new password logs in."""
    _ensure_user(world, "bob", "bob-pw-1")
    devpi.use(world.url)
    devpi.login("bob", "bob-pw-1")
    out = devpi.ok("user", "-m", "bob", "email=bob@example.com", "password=bob-pw-2")
    assert "user modified: bob" in out
    assert call(world.url, "GET", "/bob", auth=ROOT)[1]["result"]["email"] == "bob@example.com"
    assert call(world.url, "POST", "/+login", {"user": "bob", "password": "bob-pw-2"})[0] == 200
    assert call(world.url, "POST", "/+login", {"user": "bob", "password": "bob-pw-1"})[0] == 401


def test_pip_install_from_index_url(world: World, tmp_path: Path) -> None:
    """pip with ``-i http://H/alice/dev`` (no /+simple/) installs: installer GETs get pages."""
    _ensure_index(world, "alice/dev", bases="root/pypi")
    _twine(world, "alice/dev", world.wheel.path)
    result = pip_install(f"{world.url}alice/dev", tmp_path / "t", "p==1.0", "lib-c")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "t") == {"p", "lib_c"}


def test_seed_workflow(devpi: DevpiClient, world: World, tmp_path: Path) -> None:
    """The seed: root creates local and local/stable, local uploads, pip installs from the index."""
    wheel = build_wheel(tmp_path / "dist", "private_package", "0.1.0", requires_dist=["lib-c"])
    devpi.use(world.url)
    devpi.login(*ROOT)
    devpi.ok("user", "-c", "local", f"password={LOCAL[1]}")
    devpi.ok("index", "-c", "local/stable", "bases=root/pypi", "volatile=False")
    devpi.use("local/stable")
    devpi.login(*LOCAL)
    devpi.ok("upload", wheel.path)
    config = _get(world, "/local/stable")
    assert config["bases"] == ["root/pypi"] and config["volatile"] is False
    assert config["acl_upload"] == ["local"]
    assert _links(world, "/local/stable/private-package/0.1.0") == {wheel.filename: wheel.sha256}
    result = pip_install(f"{world.url}local/stable", tmp_path / "t", "private_package")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "t") == {"private_package", "lib_c"}


def test_listing_indexes_and_inherited_versions(
    devpi: DevpiClient, world: World, tmp_path: Path
) -> None:
    """`use -l` and `index -l` list indexes; `list P` on a child shows its base's versions."""
    _ensure_index(world, "alice/listed", bases=["root/pypi"])
    _ensure_index(world, "alice/listed-child", bases=["alice/listed"])
    wheel = build_wheel(tmp_path, "listedpkg", "4.2")
    _twine(world, "alice/listed", wheel.path)
    devpi.use(world.url)
    out = devpi.ok("use", "-l")
    assert "alice/listed-child" in out and "root/pypi" in out
    out = devpi.ok("index", "-l", "alice")
    assert "alice/listed" in out and "alice/listed-child" in out
    devpi.use(f"{world.url}alice/listed-child")
    out = devpi.ok("list", "listedpkg")
    assert "listedpkg-4.2-py3-none-any.whl" in out
