"""``cheeseboard-server backup``: a consistent copy of a live data directory that serves as is."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.api import call, upload_dist
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory, server_command
from tests.support.terminal import run_on_pty
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
OTHER = ("other", "other-secret")
JSON = "application/vnd.pypi.simple.v1+json"
STAGE = "local/stable"


# --- helpers ------------------------------------------------------------------------------------


def _upload(server: CheeseboardServer, index: str, auth: tuple[str, str], dist: Dist) -> int:
    """One legacy-API upload, the way twine sends it (multipart, Basic auth)."""
    return upload_dist(server.url, index, dist, auth, timeout=30)[0]


def _get(url: str, accept: str | None = None) -> bytes:
    headers = {"Accept": accept} if accept else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        data: bytes = r.read()
        return data


def _pages(server: CheeseboardServer, index: str, project: str) -> tuple[bytes, bytes, int]:
    """HTML and JSON bytes of a project page, the JSON with its ``_last-serial`` taken out.

    ``_last-serial`` is the server's global serial when the page was built: uploads to other
    projects move it on, so it is returned apart; everything else must match byte for byte.
    """
    url = f"{server.url}{index}/+simple/{project}/"
    raw = _get(url, JSON)
    serial = re.search(rb'"_last-serial":(\d+)', raw)
    assert serial is not None, raw
    return _get(url, "text/html"), raw.replace(serial.group(0), b""), int(serial.group(1))


def _files(server: CheeseboardServer, index: str, project: str) -> dict[str, tuple[str, str]]:
    """filename -> (absolute URL, advertised sha256) from the JSON page."""
    page_url = f"{server.url}{index}/+simple/{project}/"
    page = json.loads(_get(page_url, JSON))
    return {
        f["filename"]: (
            urllib.parse.urljoin(page_url, f["url"]).split("#")[0],
            f["hashes"]["sha256"],
        )
        for f in page["files"]
    }


def _core_metadata(server: CheeseboardServer, index: str, project: str) -> dict[str, str]:
    """filename -> advertised sha256 of its .metadata, for the files that have one."""
    page = json.loads(_get(f"{server.url}{index}/+simple/{project}/", JSON))
    return {
        f["filename"]: f["core-metadata"]["sha256"] for f in page["files"] if "core-metadata" in f
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _login(server: CheeseboardServer, user: str, password: str) -> int:
    status, _ = call(server.url, "POST", "/+login", {"user": user, "password": password})
    return status


def _backup(datadir: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
    return subprocess.run(
        server_command("backup", "--datadir", str(datadir), *args, str(out)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _blob(datadir: Path, sha256: str) -> Path:
    return datadir / "blobs" / sha256[:2] / sha256[2:4] / sha256


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@dataclass
class Store:
    server: CheeseboardServer
    upstream: UpstreamServer
    dists: dict[str, Dist]  # uploaded to local/stable, by filename
    mirrored: Dist  # fetched through root/pypi


@dataclass
class Uploader:
    """Uploads new versions of ``stream`` to local/stable in a loop until stopped."""

    server: CheeseboardServer
    workdir: Path
    done: list[tuple[float, Dist]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            dist = build_wheel(self.workdir, "stream", f"0.{number}")
            try:
                assert _upload(self.server, STAGE, LOCAL, dist) == 200
            except BaseException as exc:
                self.errors.append(exc)
                return
            self.done.append((time.monotonic(), dist))

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.done) < count and not self.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self.errors, self.errors
        assert len(self.done) >= count, "uploads are too slow"


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, dists: dict[str, list[Dist]]
) -> Iterator[Store]:
    """A running server with users, a stage index, uploads and one mirrored file."""
    base = tmp_path_factory.mktemp("backup-store")
    with UpstreamServer(mode="json") as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        factory = ServerFactory(base)
        try:
            server = factory.start(upstream.simple_url)
            for user, password in (LOCAL, OTHER):
                assert (
                    call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)[0] == 201
                )
            body = {"bases": "root/pypi", "volatile": False, "acl_upload": ["local", "other"]}
            assert call(server.url, "PUT", f"/{STAGE}", body, auth=ROOT)[0] == 200
            built = [
                build_wheel(base / "dist", "alpha", "1.0", requires_dist=["lib-a"]),
                build_sdist(base / "dist", "alpha", "1.0"),
                build_wheel(base / "dist", "alpha", "2.0"),
                build_wheel(base / "dist", "Beta.Pkg", "0.1", requires_python=">=3.8"),
            ]
            for dist in built:
                auth = OTHER if dist.name == "Beta.Pkg" else LOCAL
                assert _upload(server, STAGE, auth, dist) == 200
            mirrored = dists["lib-a"][0]
            url, sha256 = _files(server, "root/pypi", "lib-a")[mirrored.filename]
            assert _sha256(_get(url)) == sha256 == mirrored.sha256
            yield Store(server, upstream, {d.filename: d for d in built}, mirrored)
        finally:
            factory.stop_all()


# --- the backup of a live, busy server ----------------------------------------------------------


def test_backup_of_a_busy_server_serves_the_same_store(
    store: Store, server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Backup while uploads go on; a server on the backup has the same users, pages and files."""
    server = store.server
    before = {
        (index, project): _pages(server, index, project)
        for index, project in ((STAGE, "alpha"), (STAGE, "beta-pkg"), ("root/pypi", "lib-a"))
    }
    uploader = Uploader(server, tmp_path / "stream")
    thread = threading.Thread(target=uploader.run, daemon=True)
    thread.start()
    try:
        uploader.wait_for(2)
        out = tmp_path / "backup"
        out.mkdir()  # an empty directory is as good as none
        started = time.monotonic()
        result = _backup(server.datadir, out)
        finished = time.monotonic()
        uploader.wait_for(len(uploader.done) + 1)
    finally:
        uploader.stop.set()
        thread.join(30)
    assert result.returncode == 0, result.stderr
    assert "blobs" in result.stdout and " s" in result.stdout, result.stdout
    during = [dist for at, dist in uploader.done if started < at < finished]
    assert during, "no upload finished while the backup ran"
    assert "backup: copying" in result.stderr  # not a terminal: progress as lines
    assert not _leftovers(out)
    # Same file system: the immutable blobs are hard links, each one verified all the same.
    linked = [p for p in (out / "blobs").rglob("*") if p.is_file()]
    assert linked and all(
        p.stat().st_ino == _blob(server.datadir, p.name).stat().st_ino for p in linked
    )
    assert sorted(p.name for p in out.iterdir()) == [
        ".cheeseboard",
        "blobs",
        "cheeseboard.sqlite",
        "locks",
        "secret",
    ]
    assert (out / "secret").read_bytes() == (server.datadir / "secret").read_bytes()
    assert (out / "secret").stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(out / "cheeseboard.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    copy = server_factory.start(store.upstream.simple_url, name="backup")
    requests_before = len(store.upstream.requests)
    for user, password in (ROOT, LOCAL, OTHER):
        assert _login(copy, user, password) == 200, user
    assert _login(copy, "local", "wrong") == 401
    assert call(copy.url, "GET", f"/{STAGE}")[1] == call(server.url, "GET", f"/{STAGE}")[1]
    for (index, project), (html, page, serial) in before.items():
        copied = _pages(copy, index, project)
        assert copied[:2] == (html, page), (index, project)
        assert copied[2] >= serial

    # Every file on the copy's pages downloads from the copy's blobs with its sha256; of the
    # mirror only the file that was cached (the others would come from upstream).
    checks = [(index, project, None) for index, project in before if index == STAGE]
    checks += [(STAGE, "stream", None), ("root/pypi", "lib-a", store.mirrored.filename)]
    for index, project, only in checks:
        metadata = _core_metadata(copy, index, project)
        for filename, (url, sha256) in _files(copy, index, project).items():
            if only not in (None, filename):
                continue
            assert _sha256(_get(url)) == sha256, filename
            if filename.endswith(".whl"):
                assert _sha256(_get(url + ".metadata")) == metadata[filename], filename
    for filename, (_, sha256) in _files(copy, STAGE, "alpha").items():
        assert sha256 == store.dists[filename].sha256
    assert _files(copy, "root/pypi", "lib-a")[store.mirrored.filename][1] == store.mirrored.sha256
    fetched = store.upstream.requests[requests_before:]
    assert not fetched, f"the copy went upstream: {fetched}"

    # The concurrent uploads: the backup holds a prefix of them, at least those done before it.
    uploaded = [dist.filename for _, dist in uploader.done]
    in_backup = set(_files(copy, STAGE, "stream"))
    assert in_backup == set(uploaded[: len(in_backup)])
    assert len(in_backup) >= len([at for at, _ in uploader.done if at < started])

    # The copy is a working server: uploads go on there.
    assert _upload(copy, STAGE, LOCAL, build_wheel(tmp_path / "new", "alpha", "3.0")) == 200
    assert "alpha-3.0-py3-none-any.whl" in _files(copy, STAGE, "alpha")
    assert "alpha-3.0-py3-none-any.whl" not in _files(server, STAGE, "alpha")


# --- refusals -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the store made by ``backup --copy``: no blob shares an inode with the source."""
    source = tmp_path_factory.mktemp("pristine") / "data"
    result = _backup(store.server.datadir, source, "--copy")
    assert result.returncode == 0, result.stderr
    assert "0 hard-linked" in result.stdout
    blobs = [p for p in (source / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) >= len(store.dists) and all(p.stat().st_nlink == 1 for p in blobs)
    return source


@pytest.fixture
def scratch(pristine: Path, tmp_path: Path) -> Path:
    """A data directory to damage (no server runs on it)."""
    return Path(shutil.copytree(pristine, tmp_path / "scratch"))


def test_refuses_a_non_empty_target(scratch: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _backup(scratch, out)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not an empty directory" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and not _leftovers(out)


def test_missing_blob_is_named_and_nothing_is_written(
    store: Store, scratch: Path, tmp_path: Path
) -> None:
    wheel = store.dists["alpha-2.0-py3-none-any.whl"]
    _blob(scratch, wheel.sha256).unlink()
    out = tmp_path / "out"
    result = _backup(scratch, out)
    assert result.returncode == 2, result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert wheel.sha256 in result.stderr
    assert f"{STAGE}/{wheel.filename}" in result.stderr
    assert not out.exists() and not _leftovers(out)


def test_damaged_blob_is_refused(store: Store, scratch: Path, tmp_path: Path) -> None:
    sdist = store.dists["alpha-1.0.tar.gz"]
    path = _blob(scratch, sdist.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = _backup(scratch, out)
    assert result.returncode == 2
    assert "damaged" in result.stderr and f"{STAGE}/{sdist.filename}" in result.stderr
    assert not out.exists() and not _leftovers(out)


def test_external_database_is_refused(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    datadir.mkdir()
    (datadir / ".cheeseboard").write_text(json.dumps({"version": "0", "database_url": "external"}))
    result = _backup(datadir, tmp_path / "out")
    assert result.returncode == 2
    assert "pg_dump" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --- interrupted backups ------------------------------------------------------------------------


def _start_blocked_backup(scratch: Path, out: Path, sha256: str) -> subprocess.Popen[bytes]:
    """Start a backup that blocks in the middle of the blobs, with the database already copied.

    The blob is replaced by a named pipe: the backup links it, then blocks reading it for its
    sha256 until a writer appears (never). A real store cannot do this; it stands in for a backup
    of many gigabytes caught half-way.
    """
    path = _blob(scratch, sha256)
    path.unlink()
    os.mkfifo(path)
    process = subprocess.Popen(
        server_command("backup", "--datadir", str(scratch), str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    staging = out.parent / f".{out.name}.backup-{process.pid}"
    deadline = time.monotonic() + 20
    while not _blob(staging, sha256).exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the backup never reached the blocking blob"
        time.sleep(0.02)
    assert (staging / "cheeseboard.sqlite").is_file()
    time.sleep(0.1)  # let it reach the read
    assert process.poll() is None
    return process


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_backup_leaves_no_target(
    store: Store, scratch: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """Killed mid-way, the backup never shows up at OUT; SIGTERM also removes its work area."""
    out = tmp_path / "out"
    wheel = store.dists["alpha-1.0-py3-none-any.whl"]
    process = _start_blocked_backup(scratch, out, wheel.sha256)
    process.send_signal(sig)
    process.communicate(timeout=20)
    assert process.returncode == (128 + sig if sig == signal.SIGTERM else -sig)
    assert not out.exists()
    if sig == signal.SIGTERM:
        assert not _leftovers(out)
    else:  # nothing can clean up after SIGKILL: the hidden work area stays, never OUT
        assert _leftovers(out) == [f".out.backup-{process.pid}"]
        assert not (out.parent / _leftovers(out)[0] / ".cheeseboard").exists()


def test_progress_bar_on_a_terminal(pristine: Path, tmp_path: Path) -> None:
    """On a terminal the progress is a rich bar (on stderr), then the summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
    out = tmp_path / "out"
    run = run_on_pty(server_command("backup", "--datadir", str(pristine), str(out)), env)
    assert run.returncode == 0, run.text
    blobs = sum(1 for p in (pristine / "blobs").rglob("*") if p.is_file())
    assert "━" in run.raw and f"blobs {blobs}/{blobs}" in run.text
    assert f"backed up {pristine} to {out}: {blobs} blobs" in run.text
    assert (out / ".cheeseboard").is_file()
