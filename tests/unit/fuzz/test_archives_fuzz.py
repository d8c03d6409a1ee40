"""Fuzzing the upload archive readers with mutated wheels and sdists (hypothesis; atheris runs the
same readers coverage-guided in test_atheris.py): METADATA/PKG-INFO or UnreadableArchive."""

from __future__ import annotations

import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cheeseboard.archives.artifacts import MAX_XZ_MEMORY, ArchiveLimits, artifact_metadata
from cheeseboard.archives.wheels import UnreadableArchive
from tests.unit.fuzz.counting import counted
from tests.unit.fuzz.strategies import FUZZ

METADATA = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\ndescription\n"
LIMITS = ArchiveLimits(max_metadata_bytes=64 * 1024, max_members=100, max_scanned_bytes=1 << 22)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


SDIST = {"pkg-1.0/PKG-INFO": METADATA, "pkg-1.0/pkg/__init__.py": b"x = 1\n"}
SEEDS = {
    "pkg-1.0-py3-none-any.whl": _zip(
        {"pkg/__init__.py": b"", "pkg-1.0.dist-info/METADATA": METADATA}
    ),
    "pkg-1.0.zip": _zip(SDIST),
    "pkg-1.0.tar.gz": gzip.compress(_tar(SDIST), mtime=0),
    "pkg-1.0.tar": _tar(SDIST),
    "pkg-1.0.tar.xz": lzma.compress(_tar(SDIST), preset=0),
}


@pytest.mark.parametrize("filename", list(SEEDS))
def test_seeds_are_readable(tmp_path: Path, filename: str) -> None:
    """The unmutated archives give their metadata (so mutations start from a valid file)."""
    path = tmp_path / "upload"
    path.write_bytes(SEEDS[filename])
    assert artifact_metadata(path, filename, LIMITS) == METADATA


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "truncate"]),
        st.floats(0, 1),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def _mutated(data: bytes, steps: list[tuple[str, float, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in steps:
        pos = int(where * len(out))
        if kind == "flip" and out:
            out[min(pos, len(out) - 1)] ^= value[0] or 1
        elif kind == "insert":
            out[pos:pos] = value
        elif kind == "delete":
            del out[pos : pos + value[0]]
        else:
            del out[pos:]
    return bytes(out)


@FUZZ
@given(st.sampled_from(list(SEEDS)), mutations)
@counted("archives: mutated wheels and sdists")
def test_mutated_archives_are_read_or_refused(
    tmp_path_factory: pytest.TempPathFactory, filename: str, steps: list[tuple[str, float, bytes]]
) -> None:
    """A mutated archive gives metadata within the limit, or UnreadableArchive with a reason
    that names no server path; never another exception (which would be a 500)."""
    path = tmp_path_factory.getbasetemp() / "mutated-upload"  # one file, rewritten each time
    path.write_bytes(_mutated(SEEDS[filename], steps))
    try:
        metadata = artifact_metadata(path, filename, LIMITS)
    except UnreadableArchive as exc:
        assert str(exc) and str(path) not in str(exc)
        return
    assert len(metadata) <= LIMITS.max_metadata_bytes


def test_zip_member_without_a_name(tmp_path: Path) -> None:
    """A zip sdist with an empty member name: ZipInfo.is_dir() raised IndexError (found by
    atheris), a 500 on upload; now a reason."""
    path = tmp_path / "upload"
    path.write_bytes(_zip({**SDIST, "": b""}))
    with pytest.raises(UnreadableArchive, match="empty"):
        artifact_metadata(path, "pkg-1.0.zip", LIMITS)


def xz_asking_for_dictionary(data: bytes, code: int = 40) -> bytes:
    """``data`` as .xz whose LZMA2 header asks for a dictionary of up to 4 GiB (code 40)."""
    packed = bytearray(
        lzma.compress(data, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, "preset": 0}])
    )
    header_size = (packed[12] + 1) * 4  # the block header follows the 12-byte stream header
    header = packed[12 : 12 + header_size]
    props = header.index(b"\x21\x01", 2) + 2  # LZMA2 filter id, 1 byte of properties
    header[props] = code
    header[-4:] = struct.pack("<I", zlib.crc32(bytes(header[:-4])))
    packed[12 : 12 + header_size] = header
    return bytes(packed)


def test_xz_dictionary_is_capped(tmp_path: Path) -> None:
    """An .xz asking for a 4 GiB dictionary is refused before the decoder allocates it; one
    within the cap (xz -9 uses 64 MiB) is read."""
    path = tmp_path / "upload"
    path.write_bytes(xz_asking_for_dictionary(_tar(SDIST)))
    with pytest.raises(UnreadableArchive, match=str(MAX_XZ_MEMORY)):
        artifact_metadata(path, "pkg-1.0.tar.xz", LIMITS)
    path.write_bytes(xz_asking_for_dictionary(_tar(SDIST), code=28))  # 64 MiB: 2 ** (28 / 2 + 12)
    assert artifact_metadata(path, "pkg-1.0.tar.xz", LIMITS) == METADATA
