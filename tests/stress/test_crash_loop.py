"""SIGKILL at random moments during uploads and mirror downloads, again and again.

After every restart: each upload the server acknowledged is listed and intact, every complete
response carried the right bytes, the database passes its checks, no row names missing bytes and
no staged file survives startup. At the end ``gc`` leaves exactly the blobs rows name.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import random
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.api import call, upload_dist
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory, server_command
from tests.support.upstream import Fault, UpstreamServer

pytestmark = pytest.mark.stress

KILLS = int(os.environ.get("CHEESEBOARD_CRASH_KILLS", "50"))
UPLOADERS = 4
DOWNLOADERS = 3
NEW_MIRROR_FILES = 2  # added upstream before each round
ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
MiB = 1024 * 1024


@dataclass
class Ledger:
    """What the clients saw, shared by their threads."""

    acknowledged: dict[str, Dist] = field(default_factory=dict)  # filename -> dist
    sent: dict[str, Dist] = field(default_factory=dict)  # every upload attempted
    complete_responses: int = 0
    flowing: threading.Event = field(default_factory=threading.Event)  # an upload went through
    bad_bytes: list[str] = field(default_factory=list)
    upload_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _wheels(dest: Path) -> Iterator[Dist]:
    """An endless supply of distinct wheels, 16 to 512 KiB."""
    rng = random.Random(7)
    for n in itertools.count():
        yield build_wheel(
            dest, f"crash{n % 40}", f"1.{n}", payload_size=rng.randint(16 << 10, MiB // 2)
        )


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def _uploader(
    server: CheeseboardServer, supply: Iterator[Dist], ledger: Ledger, stop: threading.Event
) -> None:
    while not stop.is_set():
        with ledger.lock:
            dist = next(supply)
            ledger.sent[dist.filename] = dist
        try:
            status, text = upload_dist(server.url, "local/dev", dist, LOCAL, timeout=30)
        except (OSError, http.client.HTTPException):
            return  # killed mid-request: the upload may or may not have committed
        with ledger.lock:
            if status == 200:
                ledger.acknowledged[dist.filename] = dist
                ledger.flowing.set()
            else:
                ledger.upload_errors.append(f"{dist.filename}: {status} {text[:200]}")


def _downloader(
    server: CheeseboardServer,
    files: list[Dist],
    ledger: Ledger,
    stop: threading.Event,
    rng: random.Random,
) -> None:
    """Mostly the newest upstream files (not cached yet: page and file are fetched and stored)."""
    while not stop.is_set():
        dist = rng.choice(files[-NEW_MIRROR_FILES:] if rng.random() < 0.8 else files)
        digest = dist.sha256
        url = f"{server.url}root/pypi/+f/{digest[:3]}/{digest[3:16]}/{dist.filename}"
        try:
            _get(f"{server.index_url}{dist.name}/")
            status, body = _get(url)
        except (OSError, http.client.HTTPException):
            return  # cut by the kill: an incomplete body is what a crash may give
        with ledger.lock:
            ledger.complete_responses += 1
            if status != 200 or hashlib.sha256(body).hexdigest() != digest:
                ledger.bad_bytes.append(f"{dist.filename}: {status}, {len(body)} bytes")


def _check_database(datadir: Path) -> list[str]:
    """SQLite's own checks, and rows that name bytes the blob store lacks."""
    problems: list[str] = []
    db = sqlite3.connect(datadir / "cheeseboard.sqlite")
    try:
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        problems += [f"foreign key: {row}" for row in db.execute("PRAGMA foreign_key_check")]
        named = db.execute(
            "SELECT filename, blob_sha256 FROM files WHERE blob_sha256 IS NOT NULL "
            "UNION ALL SELECT filename, core_metadata_sha256 FROM files "
            "WHERE core_metadata_sha256 IS NOT NULL AND blob_sha256 IS NOT NULL"
        ).fetchall()
        blobs = datadir / "blobs"
        problems += [
            f"{filename} names missing blob {sha}"
            for filename, sha in named
            if not (blobs / sha[:2] / sha[2:4] / sha).is_file()
        ]
        problems += [
            f"release without files: {row}"
            for row in db.execute(
                "SELECT p.name, r.version FROM releases r JOIN projects p ON p.id = r.project_id "
                "WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.project_id = p.id)"
            )
        ]
    finally:
        db.close()
    return problems


def _listed(server: CheeseboardServer, names: set[str]) -> dict[str, str]:
    """filename -> sha256 of every file on local/dev's pages of ``names`` (PEP 691 JSON)."""
    found: dict[str, str] = {}
    for name in sorted(names):
        request = urllib.request.Request(
            f"{server.url}local/dev/+simple/{name}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                page = json.loads(response.read())
        except urllib.error.HTTPError as error:
            error.close()
            assert error.code == 404, f"{name}: {error.code}"
            continue
        found.update({f["filename"]: f["hashes"]["sha256"] for f in page["files"]})
    return found


def _verify(server: CheeseboardServer, ledger: Ledger, sample: list[Dist]) -> None:
    """Acknowledged uploads listed with their sha256; any listed upload intact; bytes right."""
    with ledger.lock:
        acknowledged = dict(ledger.acknowledged)
        sent = dict(ledger.sent)
    listed = _listed(server, {d.name for d in sent.values()})
    missing = [f for f in acknowledged if f not in listed]
    assert not missing, f"acknowledged uploads lost after a kill: {missing[:5]}"
    wrong = [f for f, sha in listed.items() if f in sent and sent[f].sha256 != sha]
    assert not wrong, f"listed with the wrong sha256: {wrong[:5]}"
    for dist in sample:
        digest = dist.sha256
        status, body = _get(f"{server.url}local/dev/+f/{digest[:3]}/{digest[3:16]}/{dist.filename}")
        assert status == 200 and hashlib.sha256(body).hexdigest() == digest, dist.filename


def _staged(datadir: Path) -> list[Path]:
    return list((datadir / "blobs" / ".tmp").glob("*.part"))


def test_sigkill_loop_loses_nothing_committed(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    rng = random.Random(2026)
    wheel_dir = tmp_path / "wheels"
    mirror_files: list[Dist] = []
    supply = _wheels(wheel_dir)
    ledger = Ledger()
    kills = 0
    started = time.monotonic()
    with UpstreamServer() as upstream:

        def add_mirror_files() -> None:
            for _ in range(NEW_MIRROR_FILES):
                n = len(mirror_files)
                size = rng.randint(MiB // 2, 2 * MiB)
                dist = build_wheel(tmp_path / "upstream", f"mirrored{n}", "1.0", payload_size=size)
                upstream.add(dist)
                # A short pause before each body, so kills also land while a download waits.
                upstream.set_fault(dist.filename, Fault("delay", seconds=0.02))
                mirror_files.append(dist)

        server = server_factory.start(upstream.simple_url, "--workers", "2")
        assert call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)[0] == 201
        assert call(server.url, "PUT", "/local/dev", {"bases": []}, auth=ROOT)[0] == 200
        while kills < KILLS:
            add_mirror_files()
            ledger.flowing.clear()
            stop = threading.Event()
            threads = [
                threading.Thread(target=_uploader, args=(server, supply, ledger, stop))
                for _ in range(UPLOADERS)
            ] + [
                threading.Thread(
                    target=_downloader,
                    args=(server, mirror_files, ledger, stop, random.Random(kills * 10 + i)),
                )
                for i in range(DOWNLOADERS)
            ]
            for thread in threads:
                thread.start()
            # Kill at a random moment once uploads flow (a restarted server first verifies
            # the password once per worker, which takes a while on a busy machine).
            ledger.flowing.wait(timeout=10)
            time.sleep(rng.uniform(0.0, 1.0))
            server.kill()
            kills += 1
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            assert not any(t.is_alive() for t in threads), "a client thread hung"
            problems = _check_database(server.datadir)
            assert not problems, f"after kill {kills}: {problems[:5]}"
            server.start()
            assert not _staged(server.datadir), "staged files survived startup"
            with ledger.lock:
                recent = list(ledger.acknowledged.values())[-3:]
                # When the server drops the uploads a client would not notice, say so early.
                assert not ledger.upload_errors, ledger.upload_errors[:5]
                assert not ledger.bad_bytes, ledger.bad_bytes[:5]
            _verify(server, ledger, recent)
        # The end: everything acknowledged is intact, byte for byte.
        _verify(server, ledger, list(ledger.acknowledged.values()))
        for dist in mirror_files:
            digest = dist.sha256
            _get(f"{server.index_url}{dist.name}/")
            _status, body = _get(
                f"{server.url}root/pypi/+f/{digest[:3]}/{digest[3:16]}/{dist.filename}"
            )
            assert hashlib.sha256(body).hexdigest() == digest
        server.stop()
    orphans_before = _unnamed_blobs(server.datadir)
    collected = subprocess.run(
        server_command("gc", "--datadir", str(server.datadir), "--min-age", "0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert _unnamed_blobs(server.datadir) == set()
    assert not _check_database(server.datadir)
    elapsed = time.monotonic() - started
    summary = {
        "kills": kills,
        "uploads_acknowledged": len(ledger.acknowledged),
        "uploads_attempted": len(ledger.sent),
        "complete_downloads_checked": ledger.complete_responses,
        "orphan_blobs_collected": len(orphans_before),
        "seconds": round(elapsed, 1),
        "gc": collected.stdout.strip(),
    }
    artifacts = Path(os.environ.get("CHEESEBOARD_ARTIFACTS", ".artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "crash-loop.json").write_text(json.dumps(summary, indent=2))
    print("crash loop:", json.dumps(summary))
    assert kills >= KILLS and ledger.acknowledged and ledger.complete_responses


def _unnamed_blobs(datadir: Path) -> set[str]:
    db = sqlite3.connect(datadir / "cheeseboard.sqlite")
    try:
        named = {
            sha
            for (a, b) in db.execute("SELECT blob_sha256, core_metadata_sha256 FROM files")
            for sha in (a, b)
            if sha
        }
    finally:
        db.close()
    stored = {p.name for p in (datadir / "blobs").glob("??/??/*") if p.is_file()}
    return stored - named
