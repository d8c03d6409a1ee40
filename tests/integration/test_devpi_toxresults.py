"""``devpi test`` and ``devpi list -f`` against cheeseboard (issue 22): tox results posted to a
release file's URL are stored, listed in versiondata, served, shown on the version page.

The real devpi client runs as a subprocess. tox itself is not a test dependency: a stand-in
``tox`` on PATH writes the ``--result-json`` report a real tox run writes (the part devpi-client
reads and posts), so the client's own download, unpack, run and post steps are what is tested.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import shutil
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.api import basic, call, upload_dist
from tests.support.devpi import DevpiClient
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-pw-1")

_FAKE_TOX = """#!{python}
import json, sys
args = sys.argv[1:]
report = args[args.index("--result-json") + 1]
result = {{
    "reportversion": "1", "toxversion": "4.0.0", "platform": "linux", "host": "ci-host",
    "testenvs": {{"py3": {{
        "python": {{"version": "3.11.7 (main)"}},
        "setup": [{{"command": ["pip", "install"], "retcode": 0, "output": ""}}],
        "test": [{{"command": ["pytest"], "retcode": {retcode}, "output": "ran 1 test"}}],
    }}}},
}}
with open(report, "w") as f:
    json.dump(result, f)
sys.exit({retcode})
"""


@dataclass
class World:
    server: CheeseboardServer
    sdist: Dist
    wheel: Dist
    base: Path
    factory: ServerFactory

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("toxresults")
    sdist = build_sdist(base / "t", "tested", "1.0")
    wheel = build_wheel(base / "t", "tested", "1.0")
    factory = ServerFactory(base)
    try:
        server = factory.start("http://127.0.0.1:9/simple/")
        for user in ("alice", "bob"):
            status, body = call(server.url, "PUT", f"/{user}", {"password": ALICE[1]}, auth=ROOT)
            assert status == 201, body
        status, body = call(server.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)
        assert status == 200, body
        for dist in (sdist, wheel):
            status, text = upload_dist(server.url, "alice/dev", dist, ALICE)
            assert status == 200, text
        yield World(server, sdist, wheel, base, factory)
    finally:
        factory.stop_all()


def _fake_tox(directory: Path, retcode: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tox = directory / "tox"
    tox.write_text(_FAKE_TOX.format(python=sys.executable, retcode=retcode))
    tox.chmod(tox.stat().st_mode | stat.S_IXUSR)
    return directory


def _devpi(world: World, tmp_path: Path, retcode: int = 0) -> DevpiClient:
    devpi = DevpiClient(tmp_path, server_log=world.server.log)
    bin_dir = _fake_tox(tmp_path / "bin", retcode)
    devpi.env["PATH"] = f"{bin_dir}:{devpi.env.get('PATH', '')}"
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py3\n")
    return devpi


def _versiondata(world: World) -> dict[str, Any]:
    status, body = call(world.url, "GET", "/alice/dev/tested/1.0")
    assert status == 200, body
    return dict(body["result"])


def _tox_links(world: World) -> list[dict[str, Any]]:
    return [link for link in _versiondata(world)["+links"] if link["rel"] == "toxresult"]


def test_devpi_test_posts_results_and_list_shows_them(world: World, tmp_path: Path) -> None:
    """``devpi test tested`` (anonymous: acl_toxresult_upload is :ANONYMOUS: by default) posts
    a result per tested file and exits 0; ``devpi list -f tested`` shows them."""
    devpi = _devpi(world, tmp_path)
    devpi.use(world.url + "alice/dev")
    before = len(_tox_links(world))
    out = devpi.ok("test", "--fallback-ini", str(tmp_path / "tox.ini"), "tested")
    assert "posting tox result data to" in out and "could not post" not in out, out
    links = _tox_links(world)
    assert len(links) > before
    release = {
        link["href"]: link for link in _versiondata(world)["+links"] if link["rel"] == "releasefile"
    }
    for link in links:
        assert link["for_href"] in release
        assert link["href"].startswith(link["for_href"].rsplit("/", 1)[0] + "/")
        assert (
            link["href"]
            .rsplit("/", 1)[1]
            .startswith(link["for_href"].rsplit("/", 1)[1] + ".toxresult-")
        )
        with urllib.request.urlopen(link["href"], timeout=30) as response:
            data = json.loads(response.read())
        assert data["host"] == "ci-host"
    out = devpi.ok("list", "-f", "tested")
    assert "ci-host" in out and "py3" in out and "tests passed" in out, out


def test_failed_run_is_posted_and_listed_as_failed(world: World, tmp_path: Path) -> None:
    devpi = _devpi(world, tmp_path, retcode=1)
    devpi.use(world.url + "alice/dev")
    out = devpi.fails("test", "--fallback-ini", str(tmp_path / "tox.ini"), "tested")
    assert "posting tox result data to" in out and "could not post" not in out, out
    out = devpi.ok("list", "--failures", "tested")
    assert "tests failed" in out and "FAIL: pytest" in out, out


def _post(url: str, body: bytes, auth: tuple[str, str] | None = None) -> tuple[int, Any]:
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")


def _post_oversized(url: str, size: int) -> int | None:
    """POST ``size`` bytes of JSON; the status, or None when the server refused before the body
    was sent (it answers 413 and closes: the client may see a broken pipe instead)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    body = b"{" + b" " * (size - 2) + b"}"
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    try:
        # Refused mid-body: the answer may still be readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request("POST", parts.path, body=body, headers=headers)
        try:
            return connection.getresponse().status
        except (ConnectionError, http.client.HTTPException):
            return None
    finally:
        connection.close()


def _file_url(world: World, dist: Dist) -> str:
    sha = dist.sha256
    return f"{world.url}alice/dev/+f/{sha[:3]}/{sha[3:16]}/{dist.filename}"


def test_post_answers_toxresultpath_and_checks_the_body(world: World) -> None:
    url = _file_url(world, world.wheel)
    posted = b'{"testenvs": {}, "host": "h", "platform": "p"}'
    status, body = _post(url, posted)
    assert status == 200, body
    assert body["type"] == "toxresultpath"
    path, digest = body["result"].split("#sha256=")
    assert digest == hashlib.sha256(posted).hexdigest()
    assert path.startswith("alice/dev/+f/") and ".toxresult-" in path
    with urllib.request.urlopen(world.url + path, timeout=30) as response:
        assert json.loads(response.read())["host"] == "h"
    assert _post(url, b"not json")[0] == 400
    assert _post(url, b"[1, 2]")[0] == 400
    stored = len(_tox_links(world))
    assert _post_oversized(url, 1024 * 1024 + 2) in (413, None)
    assert len(_tox_links(world)) == stored
    wrong = url.replace(world.wheel.sha256[:3], "000", 1)
    assert _post(wrong, b"{}")[0] == 404
    missing = url.rsplit("/", 1)[0] + "/tested-9.9.tar.gz"
    assert _post(missing, b"{}")[0] == 404


def test_acl_toxresult_upload_limits_who_posts(world: World) -> None:
    status, body = call(world.url, "PATCH", "/alice/dev", ["acl_toxresult_upload=alice"], auth=ROOT)
    assert status == 200, body
    try:
        url = _file_url(world, world.sdist)
        assert _post(url, b"{}")[0] == 401
        assert _post(url, b"{}", ("bob", ALICE[1]))[0] == 403
        status, body = _post(url, b"{}", ALICE)
        assert status == 200, body
        link = next(
            link
            for link in _tox_links(world)
            if link["href"].endswith(body["result"].split("#")[0])
        )
        assert link["log"][0]["who"] == "alice"
    finally:
        status, body = call(
            world.url, "PATCH", "/alice/dev", ["acl_toxresult_upload=:ANONYMOUS:"], auth=ROOT
        )
        assert status == 200, body


def test_version_page_shows_results(world: World) -> None:
    _post(_file_url(world, world.sdist), b'{"testenvs": {}, "host": "web-host", "platform": "p"}')
    request = urllib.request.Request(
        world.url + "alice/dev/tested/1.0",
        headers={"Accept": "text/html", "User-Agent": "Mozilla/5.0 (test)"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        page = response.read().decode()
    assert ".toxresult-" in page and "Tox results of 1.0" in page and "web-host" in page, page


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cheeseboard.server.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _records(dump: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dump / "records.jsonl").read_text().splitlines()]


def _rewrite(dump: Path, records: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(record) + "\n" for record in records).encode()
    (dump / "records.jsonl").write_bytes(data)
    header = json.loads((dump / "cheeseboard-dump.json").read_text())
    header.update(records_sha256=hashlib.sha256(data).hexdigest(), records=len(records))
    (dump / "cheeseboard-dump.json").write_text(json.dumps(header))


def test_export_and_import_keep_the_results(world: World, tmp_path: Path) -> None:
    """``toxresult`` records (docs/dump-format.md) bring every result back, at the same URL
    with the same bytes; a record for a file the dump lacks is refused with its line."""
    _post(_file_url(world, world.wheel), b'{"testenvs": {}, "host": "dumped", "platform": "p"}')
    dump = tmp_path / "dump"
    result = _cli("export", "--datadir", world.server.datadir, dump)
    assert result.returncode == 0, result.stderr
    kept = [r for r in _records(dump) if r["kind"] == "toxresult"]
    assert kept and all(r["index"] == "alice/dev" and "file_id" not in r for r in kept)
    broken = tmp_path / "broken"
    shutil.copytree(dump, broken)
    orphan = {"filename": "tested-9.9.tar.gz", "name": "tested-9.9.tar.gz.toxresult-1-0"}
    _rewrite(broken, [*_records(broken), {**kept[0], **orphan}])
    result = _cli("import", "--datadir", tmp_path / "refused", broken)
    assert result.returncode != 0 and "no release file 'tested-9.9.tar.gz'" in result.stderr
    result = _cli("import", "--datadir", world.base / "imported", dump)
    assert result.returncode == 0, result.stderr
    imported = world.factory.start("http://127.0.0.1:9/simple/", name="imported")
    status, body = call(imported.url, "GET", "/alice/dev/tested/1.0")
    assert status == 200, body
    links = [link for link in body["result"]["+links"] if link["rel"] == "toxresult"]
    assert [link["href"].removeprefix(imported.url) for link in links] == [
        link["href"].removeprefix(world.url) for link in _tox_links(world)
    ]
    for link in links:
        with urllib.request.urlopen(link["href"], timeout=30) as response:
            assert hashlib.sha256(response.read()).hexdigest() == link["hashes"]["sha256"]


def test_devpi_push_copies_the_results(world: World, tmp_path: Path) -> None:
    """As devpi's push does: the target's release files get the source's tox results, and the
    action log names each (``store_toxresult``)."""
    _post(_file_url(world, world.wheel), b'{"testenvs": {}, "host": "pushed", "platform": "p"}')
    status, body = call(world.url, "PUT", "/alice/staging", {"bases": []}, auth=ROOT)
    assert status in (200, 409), body
    devpi = DevpiClient(tmp_path, server_log=world.server.log)
    devpi.use(world.url + "alice/dev")
    devpi.login(*ALICE)
    out = devpi.ok("push", "tested==1.0", "alice/staging")
    assert "store_toxresult" in out, out
    status, body = call(world.url, "GET", "/alice/staging/tested/1.0")
    assert status == 200, body
    pushed = {
        link["href"].rsplit("/", 1)[1]: link["hashes"]["sha256"]
        for link in body["result"]["+links"]
        if link["rel"] == "toxresult"
    }
    source = {
        link["href"].rsplit("/", 1)[1]: link["hashes"]["sha256"] for link in _tox_links(world)
    }
    assert pushed == source


def test_other_bytes_under_the_name_drop_its_results(world: World, tmp_path: Path) -> None:
    """A volatile index replacing a file's bytes: the results were of the old bytes."""
    status, body = call(world.url, "PUT", "/alice/scratch", {"bases": []}, auth=ROOT)
    assert status == 200, body
    first = build_wheel(tmp_path / "a", "replaced", "1.0")
    second = build_wheel(tmp_path / "b", "replaced", "1.0", summary="other bytes")
    assert first.filename == second.filename and first.sha256 != second.sha256
    assert upload_dist(world.url, "alice/scratch", first, ALICE)[0] == 200
    sha = first.sha256
    url = f"{world.url}alice/scratch/+f/{sha[:3]}/{sha[3:16]}/{first.filename}"
    assert _post(url, b"{}")[0] == 200
    assert upload_dist(world.url, "alice/scratch", second, ALICE)[0] == 200
    status, body = call(world.url, "GET", "/alice/scratch/replaced/1.0")
    assert status == 200, body
    assert not [link for link in body["result"]["+links"] if link["rel"] == "toxresult"]


def test_a_file_keeps_at_most_64_results(world: World, tmp_path: Path) -> None:
    status, body = call(world.url, "PUT", "/alice/many", {"bases": []}, auth=ROOT)
    assert status == 200, body
    wheel = build_wheel(tmp_path, "many", "1.0")
    assert upload_dist(world.url, "alice/many", wheel, ALICE)[0] == 200
    sha = wheel.sha256
    url = f"{world.url}alice/many/+f/{sha[:3]}/{sha[3:16]}/{wheel.filename}"
    statuses = [_post(url, b"{}")[0] for _ in range(65)]
    assert statuses == [200] * 64 + [409]
    status, body = call(world.url, "GET", "/alice/many/many/1.0")
    names = [link["href"] for link in body["result"]["+links"] if link["rel"] == "toxresult"]
    assert len(set(names)) == 64
