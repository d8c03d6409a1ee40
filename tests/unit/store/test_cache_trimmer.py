"""The local cache of bucket blobs stays within its budget, least recently used going first."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from cheeseboard.store.blobs import FileBlobStore
from cheeseboard.store.s3_blobs import CacheTrimmer


def _put(store: FileBlobStore, data: bytes, mtime: float) -> Path:
    sha256 = hashlib.sha256(data).hexdigest()
    path = store.path(sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_over_budget_drops_least_recently_used_to_ninety_percent(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    paths = [_put(store, bytes([n]) * 100_000, 1_000_000 + n) for n in range(10)]
    staged = store.tmp_dir / "upload.part"
    staged.write_bytes(b"x" * 300_000)  # a write in progress is never touched
    trimmer = CacheTrimmer(store, 500_000, tmp_path / "trim.lock")
    assert trimmer.trim_once() == (6, 600_000)
    assert [p.exists() for p in paths] == [False] * 6 + [True] * 4
    assert staged.exists()
    assert trimmer.trim_once() == (0, 0)  # within budget now


def test_within_budget_removes_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    paths = [_put(store, bytes([n]) * 1000, 1_000_000 + n) for n in range(5)]
    assert CacheTrimmer(store, 5000, tmp_path / "trim.lock").trim_once() == (0, 0)
    assert all(p.exists() for p in paths)


def test_a_recently_used_copy_outlives_newer_unused_ones(tmp_path: Path) -> None:
    """Serving refreshes a copy's mtime (claim): it counts as used, whatever its age."""
    store = FileBlobStore(tmp_path / "blobs")
    old = _put(store, b"a" * 1000, 1_000_000)
    newer = [_put(store, bytes([n]) * 1000, 2_000_000 + n) for n in range(3)]
    assert store.claim(old.name)
    assert CacheTrimmer(store, 2500, tmp_path / "trim.lock").trim_once() == (2, 2000)
    assert old.exists() and newer[2].exists() and not newer[0].exists()


def test_one_worker_trims_at_a_time(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    _put(store, b"a" * 1000, 1_000_000)
    lock = tmp_path / "trim.lock"
    with open(lock, "w") as other_worker:
        fcntl.flock(other_worker, fcntl.LOCK_EX)
        assert CacheTrimmer(store, 10, lock).trim_once() == (0, 0)
    assert CacheTrimmer(store, 10, lock).trim_once() == (1, 1000)
