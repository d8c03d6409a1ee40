"""Content-addressed file blob store: staging, verification, layout and reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cheeseboard.store.blobs import BlobMismatch, FileBlobStore, check_sha256

DATA = bytes(range(256)) * 4 + b"tail"
DIGEST = hashlib.sha256(DATA).hexdigest()


async def stored(store: FileBlobStore, data: bytes = DATA) -> str:
    """Write ``data`` in two pieces and commit it; return its sha256."""
    writer = store.writer()
    writer.write(data[:100])
    writer.write(data[100:])
    return await writer.commit()


async def read_all(
    store: FileBlobStore, sha256: str, start: int = 0, end: int | None = None
) -> bytes:
    """Collect what store.read() yields."""
    return b"".join([chunk async for chunk in store.read(sha256, start, end)])


def staged(store: FileBlobStore) -> list[Path]:
    """Files currently in the staging directory."""
    return sorted(store.tmp_dir.iterdir())


async def test_commit_moves_into_sharded_layout(tmp_path: Path) -> None:
    """A committed blob lives at <root>/ab/cd/<sha256> and nothing is left staged."""
    store = FileBlobStore(tmp_path / "blobs")
    writer = store.writer()
    assert writer.tmp_path.parent == store.tmp_dir
    writer.write(DATA)
    assert writer.size == len(DATA)
    assert writer.tmp_path.read_bytes() == DATA  # readers can follow the staged file
    assert await writer.commit(DIGEST.upper(), len(DATA)) == DIGEST
    target = tmp_path / "blobs" / DIGEST[:2] / DIGEST[2:4] / DIGEST
    assert target.read_bytes() == DATA
    assert store.path(DIGEST) == store.local_path(DIGEST) == target
    assert store.exists(DIGEST)
    assert staged(store) == []


async def test_commit_without_expectations(tmp_path: Path) -> None:
    """Without expected values the blob is stored under whatever its hash is."""
    store = FileBlobStore(tmp_path)
    assert await stored(store) == DIGEST
    assert await read_all(store, DIGEST) == DATA


async def test_empty_blob(tmp_path: Path) -> None:
    """Zero bytes are a valid blob."""
    store = FileBlobStore(tmp_path)
    digest = await store.writer().commit(expected_size=0)
    assert digest == hashlib.sha256(b"").hexdigest()
    assert await read_all(store, digest) == b""


async def test_same_content_twice(tmp_path: Path) -> None:
    """Committing bytes that are already stored replaces them harmlessly."""
    store = FileBlobStore(tmp_path)
    assert await stored(store) == await stored(store) == DIGEST
    assert await read_all(store, DIGEST) == DATA
    assert staged(store) == []


@pytest.mark.parametrize(
    ("sha256", "size", "message"),
    [
        (None, len(DATA) + 1, "expected 1029 bytes, got 1028"),
        ("0" * 64, None, "expected sha256 0000"),
        ("0" * 64, len(DATA), "expected sha256"),
        (DIGEST, len(DATA) - 1, "bytes"),
    ],
)
async def test_mismatch_removes_staged_file(
    tmp_path: Path, sha256: str | None, size: int | None, message: str
) -> None:
    """A wrong size or sha256 raises BlobMismatch, stores nothing and removes the staged file."""
    store = FileBlobStore(tmp_path)
    writer = store.writer()
    writer.write(DATA)
    with pytest.raises(BlobMismatch, match=message):
        await writer.commit(sha256, size)
    assert not writer.tmp_path.exists()
    assert staged(store) == []
    assert not store.exists(DIGEST)
    assert not store.exists("0" * 64)


async def test_abort(tmp_path: Path) -> None:
    """abort() drops the staged bytes; calling it twice is harmless."""
    store = FileBlobStore(tmp_path)
    writer = store.writer()
    writer.write(DATA)
    writer.abort()
    writer.abort()
    assert staged(store) == []
    assert not store.exists(DIGEST)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, DATA),
        (0, 0, DATA[:1]),
        (10, 19, DATA[10:20]),
        (1000, None, DATA[1000:]),
        (len(DATA) - 1, None, DATA[-1:]),
        (5, len(DATA) + 100, DATA[5:]),
        (len(DATA), None, b""),
        (7, 6, b""),
    ],
)
async def test_read_ranges(tmp_path: Path, start: int, end: int | None, expected: bytes) -> None:
    """read(start, end) yields the inclusive byte range, clipped to the file."""
    store = FileBlobStore(tmp_path)
    await stored(store)
    assert await read_all(store, DIGEST, start, end) == expected


async def test_read_large_blob_in_chunks(tmp_path: Path) -> None:
    """Large blobs come back in bounded chunks that add up to the file."""
    big = hashlib.sha256(b"seed").digest() * 20_000  # 640 KB
    store = FileBlobStore(tmp_path)
    digest = await stored(store, big)
    chunks = [chunk async for chunk in store.read(digest)]
    assert len(chunks) > 1
    assert max(map(len, chunks)) <= 256 * 1024
    assert b"".join(chunks) == big
    middle = await read_all(store, digest, 300_000, 400_000)
    assert middle == big[300_000:400_001]


async def test_delete(tmp_path: Path) -> None:
    """delete() removes a blob; deleting a missing blob is not an error."""
    store = FileBlobStore(tmp_path)
    await stored(store)
    await store.delete(DIGEST)
    assert not store.exists(DIGEST)
    await store.delete(DIGEST)


def test_clean_tmp(tmp_path: Path) -> None:
    """clean_tmp() removes leftover .part files only and says how many."""
    store = FileBlobStore(tmp_path)
    for name in ("a.part", "b.part"):
        (store.tmp_dir / name).write_bytes(b"x")
    (store.tmp_dir / "keep.txt").write_bytes(b"x")
    assert store.clean_tmp() == 2
    assert [p.name for p in staged(store)] == ["keep.txt"]
    assert store.clean_tmp() == 0


@pytest.mark.parametrize(
    "bad", ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" + "0" * 61, "0" * 64 + "\n"]
)
def test_sha256_checked_before_paths(tmp_path: Path, bad: str) -> None:
    """Anything but 64 lower-case hex digits is refused before it becomes a path."""
    store = FileBlobStore(tmp_path)
    with pytest.raises(ValueError, match="not a sha256"):
        check_sha256(bad)
    with pytest.raises(ValueError, match="not a sha256"):
        store.path(bad)
    with pytest.raises(ValueError, match="not a sha256"):
        store.exists(bad)


def test_check_sha256_returns_value() -> None:
    """A valid digest is returned unchanged."""
    assert check_sha256(DIGEST) == DIGEST
