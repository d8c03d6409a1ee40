"""A data directory on a small tmpfs that fills up: uploads fail cleanly, reads keep working.

Needs root (to mount the tmpfs); on a laptop without it the test skips, in CI it must run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import call, upload_dist
from tests.support.blobs import blob_files, settle_blobs
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.services import service_missing
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.stress

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
MiB = 1024 * 1024
TMPFS_SIZE = 40 * MiB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs, unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        service_missing("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        service_missing(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Write a filler file until only ``leave`` bytes are free."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("ab") as handle:
        chunk = b"\0" * MiB
        want = max(free - leave, 0)
        try:
            while want > 0:
                handle.write(chunk[: min(want, MiB)])
                want -= min(want, MiB)
            handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def staged(datadir: Path) -> list[Path]:
    return list((datadir / "blobs" / ".tmp").glob("*"))


def listed(server: CheeseboardServer, name: str) -> str:
    try:
        with urllib.request.urlopen(f"{server.url}local/dev/+simple/{name}/", timeout=30) as page:
            return str(page.read().decode())
    except urllib.error.HTTPError as error:
        with error:
            assert error.code == 404
        return ""


def fetch(server: CheeseboardServer, index: str, dist: Dist) -> bytes:
    digest = dist.sha256
    url = f"{server.url}{index}/+f/{digest[:3]}/{digest[3:16]}/{dist.filename}"
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
    return data


def integrity(datadir: Path) -> str:
    db = sqlite3.connect(datadir / "cheeseboard.sqlite")
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def test_disk_full_fails_uploads_cleanly_and_keeps_serving(
    small_disk: Path, tmp_path: Path, dists: dict[str, list[Dist]]
) -> None:
    factory = ServerFactory(small_disk)
    packages = tmp_path / "packages"
    early = build_wheel(packages, "early", "1.0", payload_size=200_000)
    big = build_wheel(packages, "toobig", "1.0", payload_size=6 * MiB)
    tiny = build_sdist(packages, "tiny", "1.0")
    late = build_wheel(packages, "late", "1.0", payload_size=200_000)
    with UpstreamServer() as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        mirrored, uncached = dists["lib-a"][0], dists["lib-c"][0]
        server = factory.start(upstream.simple_url, "--workers", "2")
        try:
            assert call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)[0] == 201
            assert call(server.url, "PUT", "/local/dev", {"bases": []}, auth=ROOT)[0] == 200
            assert upload_dist(server.url, "local/dev", early, LOCAL)[0] == 200
            urllib.request.urlopen(f"{server.index_url}lib-a/", timeout=30).close()
            urllib.request.urlopen(f"{server.index_url}lib-c/", timeout=30).close()
            assert fetch(server, "root/pypi", mirrored) == mirrored.path.read_bytes()
            filler = fill(small_disk, 2 * MiB)
            blobs_before = settle_blobs(server.datadir)  # the pages' background work too

            # A file larger than the space left: refused while its bytes arrive.
            status, text = upload_dist(server.url, "local/dev", big, LOCAL)
            assert status == 507, (status, text)
            assert "no space left" in text.lower()
            assert "toobig" not in listed(server, "toobig")
            assert blob_files(server.datadir) == blobs_before
            assert staged(server.datadir) == []

            # A full disk, down to the last byte: small writes and database commits fail too.
            fill(small_disk, 0)
            status, text = upload_dist(server.url, "local/dev", tiny, LOCAL)
            assert status == 507, (status, text)
            assert "tiny" not in listed(server, "tiny")
            # A database-only write: SQLite cannot grow its WAL.
            for n in range(20):  # enough rows to need a new page whatever the WAL had spare
                status, body = call(server.url, "PUT", f"/user{n}", {"password": "pw"}, auth=ROOT)
                if status != 201:
                    break
            assert status == 507, (status, body)
            assert "no space left" in str(body).lower()
            # An uncached mirror file cannot be stored: a clean 5xx, not a broken file.
            try:
                data = fetch(server, "root/pypi", uncached)
                assert hashlib.sha256(data).hexdigest() == uncached.sha256
            except urllib.error.HTTPError as error:
                with error:
                    assert error.code in (502, 503, 507), error.code
                    assert "space" in error.read().decode().lower()

            # Reads keep working: pages, stored files, the web UI, health.
            assert early.filename in listed(server, "early")
            assert fetch(server, "local/dev", early) == early.path.read_bytes()
            assert fetch(server, "root/pypi", mirrored) == mirrored.path.read_bytes()
            for path in ("-/health", "local/dev", "root/pypi/+simple/lib-a/"):
                with urllib.request.urlopen(server.url + path, timeout=30) as response:
                    assert response.status == 200
            assert integrity(server.datadir) == "ok"

            # Space comes back: the same server takes uploads again, no restart.
            filler.unlink()
            assert call(server.url, "PUT", "/bob", {"password": "pw"}, auth=ROOT)[0] == 201
            assert upload_dist(server.url, "local/dev", late, LOCAL)[0] == 200
            assert upload_dist(server.url, "local/dev", tiny, LOCAL)[0] == 200
            assert fetch(server, "local/dev", late) == late.path.read_bytes()
            assert fetch(server, "root/pypi", uncached) == uncached.path.read_bytes()
            assert "Traceback" not in server.log()
        finally:
            factory.stop_all()
            (tmp_path / "server.log").write_text(server.log())  # the tmpfs goes away
        assert integrity(server.datadir) == "ok"
