"""``cheeseboard-server gc``: unnamed blobs go, named and young ones stay, damage is reported."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, insert, select

from cheeseboard.ops.blob_gc import BlobCollector
from cheeseboard.store.blobs import FileBlobStore
from cheeseboard.store.schema import blobs, files, indexes, projects
from tests.support.api import call, upload_dist
from tests.support.blobs import blob_files, settle_blobs
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, server_command
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
HOUR = 3600


def gc(datadir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        server_command("gc", "--datadir", str(datadir), *args),
        capture_output=True,
        text=True,
        timeout=60,
    )


def plant(datadir: Path, data: bytes, age: float) -> Path:
    """A blob file that no row names, last touched ``age`` seconds ago."""
    digest = hashlib.sha256(data).hexdigest()
    path = datadir / "blobs" / digest[:2] / digest[2:4] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def age_all(datadir: Path, seconds: float) -> None:
    then = time.time() - seconds
    for path in (datadir / "blobs").rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def download(server: CheeseboardServer, index: str, dist: Dist) -> bytes:
    with urllib.request.urlopen(f"{server.url}{index}/+simple/{dist.name}/", timeout=30) as page:
        html = page.read().decode()
    href = html.split(dist.filename)[0].rsplit('href="', 1)[1] + dist.filename
    url = urllib.parse.urljoin(f"{server.url}{index}/+simple/{dist.name}/", href)
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
    return data


def setup_stage(server: CheeseboardServer) -> None:
    assert call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)[0] == 201
    assert call(server.url, "PUT", "/local/dev", {"bases": []}, auth=ROOT)[0] == 200


def test_gc_collects_what_nothing_names_and_keeps_the_rest(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]], tmp_path: Path
) -> None:
    server, datadir = mirror_server, mirror_server.datadir
    setup_stage(server)
    keep = build_wheel(tmp_path, "keepme", "1.0")
    drop = build_wheel(tmp_path, "dropme", "1.0")
    for dist in (keep, drop):
        assert upload_dist(server.url, "local/dev", dist, LOCAL)[0] == 200
    mirrored = dists["lib-a"][0]
    assert download(server, "root/pypi", mirrored) == mirrored.path.read_bytes()
    assert call(server.url, "DELETE", "/local/dev/dropme/1.0", auth=LOCAL)[0] == 200
    settle_blobs(datadir)  # the mirror's background .metadata work stores blobs a moment later
    age_all(datadir, 2 * HOUR)
    orphan = plant(datadir, b"left by a crash between blob and row", 2 * HOUR)
    young = plant(datadir, b"an upload about to commit its row", 10)
    stale_part = datadir / "blobs" / ".tmp" / "abc.part"
    stale_part.write_bytes(b"half")
    os.utime(stale_part, (time.time() - 2 * HOUR,) * 2)
    before = blob_files(datadir)
    assert {orphan.name, young.name, keep.sha256, drop.sha256, mirrored.sha256} <= before

    dry = gc(datadir, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    # The orphan, dropme's wheel and its METADATA (PEP 658) blob.
    assert "would remove 3 unreferenced" in dry.stdout
    assert blob_files(datadir) == before and stale_part.exists()

    done = gc(datadir)
    assert done.returncode == 0, done.stderr
    assert "removed 3 unreferenced" in done.stdout and "kept 1 younger" in done.stdout
    after = blob_files(datadir)
    assert after == before - {orphan.name, drop.sha256, hashlib.sha256(drop.metadata).hexdigest()}
    assert not stale_part.exists()
    engine = create_engine(f"sqlite:///{datadir / 'cheeseboard.sqlite'}")
    with engine.connect() as conn:
        rows = set(conn.execute(select(blobs.c.sha256)).scalars())
    engine.dispose()
    assert drop.sha256 not in rows and keep.sha256 in rows
    # Everything still named is still served, byte for byte.
    assert download(server, "local/dev", keep) == keep.path.read_bytes()
    assert download(server, "root/pypi", mirrored) == mirrored.path.read_bytes()
    again = gc(datadir)
    assert "removed 0 unreferenced" in again.stdout


def test_gc_reports_missing_bytes_and_mirror_files_heal(
    mirror_server: CheeseboardServer,
    html_upstream: UpstreamServer,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
) -> None:
    server, datadir = mirror_server, mirror_server.datadir
    setup_stage(server)
    mine = build_wheel(tmp_path, "mine", "1.0")
    assert upload_dist(server.url, "local/dev", mine, LOCAL)[0] == 200
    mirrored = dists["lib-c"][0]
    assert download(server, "root/pypi", mirrored) == mirrored.path.read_bytes()
    store = FileBlobStore(datadir / "blobs")
    store.path(mine.sha256).unlink()
    store.path(mirrored.sha256).unlink()

    result = gc(datadir)
    assert result.returncode == 1
    assert "1 uploaded files are missing their bytes" in result.stdout
    assert f"local/dev/{mine.filename}" in result.stdout
    assert f"root/pypi/{mirrored.filename}" in result.stdout
    assert "fetched again on first use" in result.stdout
    fetches = html_upstream.count(mirrored.filename, "GET")
    assert download(server, "root/pypi", mirrored) == mirrored.path.read_bytes()
    assert html_upstream.count(mirrored.filename, "GET") == fetches + 1
    assert store.exists(mirrored.sha256)


def test_collection_puts_back_a_blob_named_meanwhile(tmp_path: Path) -> None:
    """The re-check after setting a blob aside: a row that appeared since the scan wins."""
    from cheeseboard.ops.datadir import init_datadir

    datadir = tmp_path / "data"
    init_datadir(datadir, "pw", "http://127.0.0.1:9/simple/")
    store = FileBlobStore(datadir / "blobs")
    path = plant(datadir, b"named after the scan", 2 * HOUR)
    engine = create_engine(f"sqlite:///{datadir / 'cheeseboard.sqlite'}")
    collector = BlobCollector(store, engine, HOUR)
    with engine.begin() as conn:
        index_id = conn.execute(select(indexes.c.id)).scalar_one()
        project_id = conn.execute(
            insert(projects)
            .values(index_id=index_id, name="late", display_name="late", created=0, found=True)
            .returning(projects.c.id)
        ).scalar_one()
        conn.execute(
            insert(files).values(
                index_id=index_id,
                project_id=project_id,
                filename="late-1.0-py3-none-any.whl",
                packagetype="bdist_wheel",
                blob_sha256=path.name,
                created=0,
            )
        )
    collector._collect(path.name, path, time.time() - HOUR)
    assert path.read_bytes() == b"named after the scan"
    assert collector.report.collected == 0
    # An interrupted collection's set-aside copy goes back too, if named.
    os.rename(path, store.tmp_dir / f"{path.name}.gc")
    assert collector.run().collected == 0
    assert path.read_bytes() == b"named after the scan"
    engine.dispose()


def test_gc_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    result = gc(tmp_path)
    assert result.returncode == 2
    assert "is not a cheeseboard data directory" in result.stderr
    assert "Traceback" not in result.stderr
