"""Extracting core metadata (PEP 658) from wheels, safely."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cheeseboard.archives import wheels
from cheeseboard.archives.wheels import extract_wheel_metadata
from tests.support.packages import build_sdist, build_wheel

METADATA = (
    b"Metadata-Version: 2.1\r\nName: foo\nVersion: 1.0\n\n\xc3\xa9 body without final newline"
)


def make_wheel(
    path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    """A zip file holding exactly ``members``."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def patch_member(path: Path, member: str, offset: int, value: bytes) -> None:
    """Overwrite bytes at ``offset`` in both the local and the central header of ``member``."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    assert data[local + 30 : local + 30 + len(name)] == name
    data[local + offset : local + offset + len(value)] = value
    central_offset = {6: 8, 8: 10}[offset]  # flags, method: 2 bytes further in the central header
    data[central + central_offset : central + central_offset + len(value)] = value
    path.write_bytes(bytes(data))


def test_real_wheel(tmp_path: Path) -> None:
    """The factory's wheel gives back exactly its METADATA bytes."""
    dist = build_wheel(tmp_path, "my-pkg", "1.2", requires_dist=["b"])
    assert extract_wheel_metadata(dist.path) == dist.metadata


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_exact_bytes(tmp_path: Path, compression: int) -> None:
    """Bytes come back untouched: CRLF, non-ASCII, no trailing newline."""
    wheel = make_wheel(
        tmp_path / "foo-1.0-py3-none-any.whl",
        {
            "foo/__init__.py": b"",
            "foo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
            "foo-1.0.dist-info/METADATA": METADATA,
        },
        compression,
    )
    assert extract_wheel_metadata(wheel) == METADATA


@pytest.mark.parametrize(
    "members",
    [
        {"foo/__init__.py": b""},
        {"foo-1.0.dist-info/PKG-INFO": METADATA},
        {"nested/foo-1.0.dist-info/METADATA": METADATA},  # not top-level
        {"foo-1.0.dist-info/METADATA/": b""},
        {"foo-1.0.dist-info/METADATA\n": METADATA},
        {"foo-1.0.dist-info/METADATA": METADATA, "bar-1.0.dist-info/METADATA": METADATA},
    ],
)
def test_missing_or_ambiguous_metadata(tmp_path: Path, members: dict[str, bytes]) -> None:
    """No top-level METADATA, or more than one, is None."""
    assert extract_wheel_metadata(make_wheel(tmp_path / "x.whl", members)) is None


def test_duplicate_member(tmp_path: Path) -> None:
    """The same METADATA name twice in the archive is ambiguous: None."""
    path = tmp_path / "dup.whl"
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(path, "w") as archive,
    ):
        archive.writestr("foo-1.0.dist-info/METADATA", b"Name: one\n")
        archive.writestr("foo-1.0.dist-info/METADATA", b"Name: two\n")
    assert extract_wheel_metadata(path) is None


def test_not_a_zip(tmp_path: Path) -> None:
    """A file that is not a zip (an sdist, text, nothing, or no file) is None."""
    sdist = build_sdist(tmp_path, "foo", "1.0")
    text = tmp_path / "text.whl"
    text.write_bytes(b"hello")
    empty = tmp_path / "empty.whl"
    empty.write_bytes(b"")
    for path in (sdist.path, text, empty, tmp_path / "missing.whl", tmp_path):
        assert extract_wheel_metadata(path) is None, path


def test_truncated_zip(tmp_path: Path) -> None:
    """A wheel cut short is None."""
    wheel = make_wheel(tmp_path / "x.whl", {"foo-1.0.dist-info/METADATA": METADATA * 100})
    data = wheel.read_bytes()
    wheel.write_bytes(data[: len(data) // 2])
    assert extract_wheel_metadata(wheel) is None


def test_oversized_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """METADATA larger than the limit is None; exactly at the limit is fine."""
    monkeypatch.setattr(wheels, "MAX_METADATA_BYTES", 64)
    at_limit = make_wheel(tmp_path / "a.whl", {"a-1.dist-info/METADATA": b"x" * 64})
    over = make_wheel(tmp_path / "b.whl", {"b-1.dist-info/METADATA": b"x" * 65})
    assert extract_wheel_metadata(at_limit) == b"x" * 64
    assert extract_wheel_metadata(over) is None


def test_lying_size_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member whose headers understate its size is None, not a longer read (CRC fails)."""
    wheel = make_wheel(tmp_path / "x.whl", {"foo-1.0.dist-info/METADATA": b"y" * 1000})
    data = bytearray(wheel.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")  # uncompressed size
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    wheel.write_bytes(bytes(data))
    monkeypatch.setattr(wheels, "MAX_METADATA_BYTES", 100)
    assert extract_wheel_metadata(wheel) is None


def test_corrupt_deflate_data(tmp_path: Path) -> None:
    """Garbage where compressed data should be (zlib.error) is None."""
    name = "foo-1.0.dist-info/METADATA"
    wheel = make_wheel(tmp_path / "x.whl", {name: bytes(range(256)) * 40})
    data = bytearray(wheel.read_bytes())
    start = data.index(b"PK\x03\x04") + 30 + len(name)
    for i in range(start, start + 64):
        data[i] ^= 0x5A
    wheel.write_bytes(bytes(data))
    assert extract_wheel_metadata(wheel) is None


def test_bad_crc(tmp_path: Path) -> None:
    """Stored bytes that do not match their CRC are None."""
    name = "foo-1.0.dist-info/METADATA"
    wheel = make_wheel(tmp_path / "x.whl", {name: METADATA}, zipfile.ZIP_STORED)
    data = wheel.read_bytes().replace(METADATA, METADATA.upper())
    wheel.write_bytes(data)
    assert extract_wheel_metadata(wheel) is None


def test_unsupported_compression(tmp_path: Path) -> None:
    """An unknown compression method (NotImplementedError in zipfile) is None."""
    name = "foo-1.0.dist-info/METADATA"
    wheel = make_wheel(tmp_path / "x.whl", {name: METADATA})
    patch_member(wheel, name, 8, (99).to_bytes(2, "little"))
    assert extract_wheel_metadata(wheel) is None


def test_encrypted_member(tmp_path: Path) -> None:
    """An encrypted METADATA (RuntimeError in zipfile) is None."""
    name = "foo-1.0.dist-info/METADATA"
    wheel = make_wheel(tmp_path / "x.whl", {name: METADATA})
    patch_member(wheel, name, 6, b"\x01\x00")
    assert extract_wheel_metadata(wheel) is None


def test_symlink_member_refused_on_upload(tmp_path: Path) -> None:
    """An uploaded wheel holding a symbolic link is refused, naming the member; without the
    link the same wheel is read."""
    path = tmp_path / "foo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("foo-1.0.dist-info/METADATA", METADATA)
        link = zipfile.ZipInfo("foo/escape")
        link.create_system = 3
        link.external_attr = (0o120777) << 16  # S_IFLNK | rwxrwxrwx
        archive.writestr(link, "../../../../etc/cron.d/x")
    with pytest.raises(wheels.UnreadableArchive, match="'foo/escape' is a symbolic link"):
        wheels.read_wheel_metadata(path, strict=True)
    plain = make_wheel(tmp_path / "plain.whl", {"foo-1.0.dist-info/METADATA": METADATA})
    assert wheels.read_wheel_metadata(plain, strict=True) == METADATA
