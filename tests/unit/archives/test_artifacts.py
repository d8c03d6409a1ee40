"""Reading METADATA/PKG-INFO out of uploaded wheels and sdists, and refusing hostile archives."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import time
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from cheeseboard.archives.artifacts import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    artifact_metadata,
    read_artifact_metadata,
)
from cheeseboard.archives.wheels import UnreadableArchive
from tests.support.packages import build_sdist, build_wheel

PKG_INFO = b"Metadata-Version: 2.1\r\nName: foo\nVersion: 1.0\n\n\xc3\xa9 no final newline"
MiB = 1024 * 1024


def file_member(name: str, data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    """A regular tar member holding ``data``."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special_member(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, bytes]:
    """A tar member without data: a directory, link or device (``kind`` is its type flag)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def make_tar(
    path: Path,
    members: Sequence[tuple[tarfile.TarInfo, bytes]],
    mode: str = "w:gz",
    tar_format: int = tarfile.PAX_FORMAT,
) -> Path:
    """Write ``members`` in order into a tar at ``path``."""
    with tarfile.open(path, mode, format=tar_format) as archive:  # type: ignore[call-overload]
        for info, data in members:
            archive.addfile(info, io.BytesIO(data))
    return path


def sdist_members(
    top: str = "foo-1.0", pkg_info: bytes = PKG_INFO
) -> list[tuple[tarfile.TarInfo, bytes]]:
    """A typical sdist tree under ``top``."""
    return [
        special_member(top, tarfile.DIRTYPE),
        file_member(f"{top}/pyproject.toml", b"[project]\n"),
        file_member(f"{top}/PKG-INFO", pkg_info),
        special_member(f"{top}/foo", tarfile.DIRTYPE),
        file_member(f"{top}/foo/__init__.py", b"x = 1\n" * 100),
    ]


def make_zip(
    path: Path,
    members: Sequence[tuple[str, bytes]] | Mapping[str, bytes],
    modes: Mapping[str, int] | None = None,
) -> Path:
    """Write a zip with ``members``; ``modes`` gives Unix modes (file type included) by name."""
    pairs = list(members.items()) if isinstance(members, Mapping) else members
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": wanted in some tests
        for name, data in pairs:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if modes and name in modes:
                info.create_system = 3
                info.external_attr = modes[name] << 16
            archive.writestr(info, data)
    return path


def read(path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> bytes | None:
    """read_artifact_metadata with the filename taken from the path."""
    return read_artifact_metadata(path, path.name, limits)


# -- readable artifacts -------------------------------------------------------------------------


def test_real_wheel(tmp_path: Path) -> None:
    """The factory's wheel gives back exactly its METADATA bytes."""
    wheel = build_wheel(tmp_path, "my-pkg", "1.2", requires_dist=["b"])
    assert read_artifact_metadata(wheel.path, wheel.filename) == wheel.metadata


def test_real_sdist(tmp_path: Path) -> None:
    """The factory's sdist gives back exactly its PKG-INFO bytes."""
    sdist = build_sdist(tmp_path, "my-pkg", "1.2", requires_python=">=3.8", payload_size=300_000)
    assert read_artifact_metadata(sdist.path, sdist.filename) == sdist.metadata


def test_format_from_filename_not_path(tmp_path: Path) -> None:
    """The format comes from the distribution filename; the stored path's name does not matter."""
    sdist = build_sdist(tmp_path, "foo", "1.0")
    blob = sdist.path.rename(tmp_path / "blob-1234")
    assert read_artifact_metadata(blob, sdist.filename) == sdist.metadata
    assert read_artifact_metadata(blob, "foo-1.0.rar") is None


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [
        (".tar.gz", "w:gz"),
        (".tgz", "w:gz"),
        (".tar.bz2", "w:bz2"),
        (".tar.xz", "w:xz"),
        (".tar", "w"),
        (".TAR.GZ", "w:gz"),
    ],
)
def test_tar_compressions(tmp_path: Path, suffix: str, mode: str) -> None:
    """Every tar sdist flavour gives back the exact PKG-INFO bytes."""
    assert read(make_tar(tmp_path / f"foo-1.0{suffix}", sdist_members(), mode)) == PKG_INFO


@pytest.mark.parametrize(
    "tar_format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]
)
def test_tar_formats(tmp_path: Path, tar_format: int) -> None:
    """ustar, GNU and pax tars are read alike."""
    path = make_tar(tmp_path / "foo-1.0.tar.gz", sdist_members(), tar_format=tar_format)
    assert read(path) == PKG_INFO


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_top_level_name(tmp_path: Path, tar_format: int) -> None:
    """A top-level name past ustar's 255 characters, in GNU long names or pax paths, is found."""
    top = "foo-1.0-" + "x" * 300
    path = make_tar(tmp_path / "foo-1.0.tar.gz", sdist_members(top), tar_format=tar_format)
    assert read(path) == PKG_INFO


def test_ustar_prefix(tmp_path: Path) -> None:
    """A ustar name split into prefix and name is joined back."""
    top = "foo-1.0-" + "y" * 120
    path = make_tar(tmp_path / "foo-1.0.tar", sdist_members(top), "w", tarfile.USTAR_FORMAT)
    assert path.read_bytes().count(top.encode()) >= 3  # stored in the prefix field
    assert read(path) == PKG_INFO


def test_dot_slash_names(tmp_path: Path) -> None:
    """Names written as ./foo-1.0/... (tar -C dir .) still have one top-level directory."""
    members = [special_member("./", tarfile.DIRTYPE)]
    for info, data in sdist_members():
        info.name = "./" + info.name
        members.append((info, data))
    assert read(make_tar(tmp_path / "foo-1.0.tar.gz", members)) == PKG_INFO


LINKS: dict[str, list[tuple[tarfile.TarInfo, bytes]]] = {
    "absolute-symlink": [special_member("foo-1.0/evil", tarfile.SYMTYPE, "/etc/cron.d")],
    "dotdot-symlink": [special_member("foo-1.0/evil", tarfile.SYMTYPE, "../../outside")],
    "harmless-symlink": [special_member("foo-1.0/evil", tarfile.SYMTYPE, "PKG-INFO")],
    "hardlink": [special_member("foo-1.0/evil", tarfile.LNKTYPE, "/etc/passwd")],
    "hardlink-inside": [special_member("foo-1.0/evil", tarfile.LNKTYPE, "foo-1.0/PKG-INFO")],
    # The link makes "evil" point outside; the file written "through" it lands there.
    "link-then-file": [
        special_member("foo-1.0/evil", tarfile.SYMTYPE, "/tmp"),
        file_member("foo-1.0/evil", b"owned\n"),
    ],
}


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
@pytest.mark.parametrize("case", list(LINKS))
def test_tar_links_refused(tmp_path: Path, case: str, tar_format: int) -> None:
    """Every symlink or hard link in a tar sdist is refused, naming the member and its target."""
    path = make_tar(
        tmp_path / "foo-1.0.tar.gz", [*sdist_members(), *LINKS[case]], "w:gz", tar_format
    )
    with pytest.raises(UnreadableArchive) as refused:
        artifact_metadata(path, path.name)
    link = LINKS[case][0][0]
    assert "'foo-1.0/evil'" in str(refused.value)
    assert repr(link.linkname) in str(refused.value)
    assert "links in sdists are refused" in str(refused.value)
    kind = "symbolic link" if link.type == tarfile.SYMTYPE else "hard link"
    assert kind in str(refused.value)


def test_tar_long_link_names_refused(tmp_path: Path) -> None:
    """A link whose name and target need pax/GNU long headers is refused with both shown cut."""
    long_name = "foo-1.0/" + "d/" * 200 + "evil"
    long_target = "../" * 200 + "etc/passwd"
    for tar_format in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        members = [*sdist_members(), special_member(long_name, tarfile.SYMTYPE, long_target)]
        path = make_tar(tmp_path / "foo-1.0.tar.gz", members, "w:gz", tar_format)
        with pytest.raises(UnreadableArchive) as refused:
            artifact_metadata(path, path.name)
        message = str(refused.value)
        assert "'foo-1.0/d/d/" in message and "'../../" in message
        assert len(message) < 400  # hostile names are not echoed back whole


def test_zip_symlink_refused(tmp_path: Path) -> None:
    """A zip sdist member marked S_IFLNK in its Unix mode is refused, naming it."""
    path = make_zip(
        tmp_path / "foo-1.0.zip",
        {"foo-1.0/PKG-INFO": PKG_INFO, "foo-1.0/evil": b"/etc/cron.d"},
        {"foo-1.0/evil": stat.S_IFLNK | 0o777},
    )
    with pytest.raises(UnreadableArchive, match=r"'foo-1\.0/evil' is a symbolic link"):
        artifact_metadata(path, path.name)


def test_zip_sdist(tmp_path: Path) -> None:
    """A zip sdist gives back its exact PKG-INFO bytes."""
    path = make_zip(
        tmp_path / "foo-1.0.zip",
        {"foo-1.0/": b"", "foo-1.0/setup.py": b"", "foo-1.0/PKG-INFO": PKG_INFO},
        {"foo-1.0/": stat.S_IFDIR | 0o755, "foo-1.0/setup.py": stat.S_IFREG | 0o644},
    )
    assert read(path) == PKG_INFO


def test_metadata_size_limit(tmp_path: Path) -> None:
    """A PKG-INFO of exactly the limit is read; one byte more is refused, in tar and zip."""
    limits = ArchiveLimits(max_metadata_bytes=len(PKG_INFO))
    fits = make_tar(tmp_path / "fits.tar.gz", sdist_members())
    over = make_tar(tmp_path / "over.tar.gz", sdist_members(pkg_info=PKG_INFO + b"!"))
    assert read(fits, limits) == PKG_INFO
    assert read(over, limits) is None
    zip_fits = make_zip(tmp_path / "fits.zip", {"foo-1.0/PKG-INFO": PKG_INFO})
    zip_over = make_zip(tmp_path / "over.zip", {"foo-1.0/PKG-INFO": PKG_INFO + b"!"})
    assert read(zip_fits, limits) == PKG_INFO
    assert read(zip_over, limits) is None


def test_member_count_limit(tmp_path: Path) -> None:
    """Exactly max_members members are read; one more is refused."""
    members = sdist_members()
    limits = ArchiveLimits(max_members=len(members))
    assert read(make_tar(tmp_path / "fits.tar.gz", members), limits) == PKG_INFO
    over = make_tar(tmp_path / "over.tar.gz", [*members, file_member("foo-1.0/x")])
    assert read(over, limits) is None
    zipped = {info.name: data for info, data in members if info.isfile()}
    assert read(make_zip(tmp_path / "fits.zip", zipped), limits) == PKG_INFO
    limits = ArchiveLimits(max_members=len(zipped) - 1)
    assert read(make_zip(tmp_path / "over.zip", zipped), limits) is None


def test_scan_limit(tmp_path: Path) -> None:
    """A tar decompressing past max_scanned_bytes is refused, even with PKG-INFO first."""
    members = [*sdist_members(), file_member("foo-1.0/zeros", bytes(2 * MiB))]
    path = make_tar(tmp_path / "foo-1.0.tar.gz", members)
    assert path.stat().st_size < 20_000
    assert read(path) == PKG_INFO
    assert read(path, ArchiveLimits(max_scanned_bytes=MiB)) is None


# -- unreadable artifacts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    ["foo-1.0.tar.gz", "foo-1.0.tar.bz2", "foo-1.0.tar.xz", "foo-1.0.tar", "foo-1.0.zip", "f.whl"],
)
def test_corrupt(tmp_path: Path, filename: str) -> None:
    """Bytes that are no archive of the named kind: None."""
    path = tmp_path / filename
    path.write_bytes(b"\x1f\x8b\x08\x00 this is not an archive" * 50)
    assert read(path) is None
    path.write_bytes(b"")
    assert read(path) is None


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_sdist(tmp_path: Path, keep: float) -> None:
    """An sdist cut short, even after PKG-INFO, is None."""
    sdist = build_sdist(tmp_path, "foo", "1.0", payload_size=50_000)
    data = sdist.path.read_bytes()
    sdist.path.write_bytes(data[: int(len(data) * keep)])
    assert read(sdist.path) is None


def test_gzip_trailer_cut(tmp_path: Path) -> None:
    """A .tar.gz whose last bytes (CRC and length) are missing is None."""
    path = make_tar(tmp_path / "foo-1.0.tar.gz", sdist_members())
    path.write_bytes(path.read_bytes()[:-4])
    assert read(path) is None


def test_plain_tar_without_end_marker(tmp_path: Path) -> None:
    """An uncompressed tar cut right after its last member (no zero blocks) is None."""
    raw = make_tar(tmp_path / "full.tar", sdist_members(), "w").read_bytes()
    path = tmp_path / "foo-1.0.tar"
    for end in (len(raw.rstrip(b"\0")) // 512 * 512 + 512, 512 * 7):
        path.write_bytes(raw[:end])
        assert read(path) is None


def test_corrupt_header_mid_archive(tmp_path: Path) -> None:
    """A header with a bad checksum after PKG-INFO is None, not an early end of the archive."""
    raw = bytearray(make_tar(tmp_path / "full.tar", sdist_members(), "w").read_bytes())
    last = raw.rindex(b"foo-1.0/foo/__init__.py")
    raw[last] ^= 1
    path = tmp_path / "foo-1.0.tar"
    path.write_bytes(bytes(raw))
    assert read(path) is None


def test_truncated_zip(tmp_path: Path) -> None:
    """A zip sdist cut short (no central directory) is None."""
    path = make_zip(tmp_path / "foo-1.0.zip", {"foo-1.0/PKG-INFO": PKG_INFO})
    path.write_bytes(path.read_bytes()[:-30])
    assert read(path) is None


@pytest.mark.parametrize(
    "extra",
    [
        "bar-1.0/PKG-INFO",  # a second top-level directory
        "README",  # a top-level file beside the directory
        "/etc/passwd",
        "foo-1.0/../../evil",
    ],
)
def test_more_than_one_top_level_entry(tmp_path: Path, extra: str) -> None:
    """Another top-level entry, an absolute path or "..": None, in tar and zip."""
    tar = make_tar(tmp_path / "foo-1.0.tar.gz", [*sdist_members(), file_member(extra, b"x")])
    assert read(tar) is None
    zipped = make_zip(tmp_path / "foo-1.0.zip", {"foo-1.0/PKG-INFO": PKG_INFO, extra: b"x"})
    assert read(zipped) is None


@pytest.mark.parametrize(
    "names",
    [
        ["PKG-INFO"],  # at the top, no directory
        ["foo-1.0/src/PKG-INFO"],  # too deep
        ["foo-1.0/PKG-INFO", "foo-1.0//PKG-INFO"],  # twice, spelled differently
        ["foo-1.0/PKG-INFO", "foo-1.0/PKG-INFO"],  # twice
    ],
)
def test_pkg_info_missing_or_ambiguous(tmp_path: Path, names: list[str]) -> None:
    """No <top>/PKG-INFO, or two of them: None, in tar and zip."""
    tar = make_tar(tmp_path / "foo-1.0.tar.gz", [file_member(name, PKG_INFO) for name in names])
    assert read(tar) is None
    zipped = make_zip(tmp_path / "foo-1.0.zip", [(name, PKG_INFO) for name in names])
    assert read(zipped) is None


def test_huge_pkg_info(tmp_path: Path) -> None:
    """A PKG-INFO over the default 16 MiB is None, in tar and zip (zeros: small files)."""
    huge = PKG_INFO + bytes(DEFAULT_LIMITS.max_metadata_bytes)
    tar = make_tar(tmp_path / "foo-1.0.tar.gz", sdist_members(pkg_info=huge))
    zipped = make_zip(tmp_path / "foo-1.0.zip", [("foo-1.0/PKG-INFO", huge)])
    assert tar.stat().st_size < 100_000
    assert zipped.stat().st_size < 100_000
    assert read(tar) is None
    assert read(zipped) is None


def test_declared_size_over_limit(tmp_path: Path) -> None:
    """A PKG-INFO header declaring 1 TiB is refused at once, before any data is read."""
    info, _ = file_member("foo-1.0/PKG-INFO")
    info.size = 1 << 40
    header = info.tobuf(tarfile.GNU_FORMAT)  # base-256 size field
    path = tmp_path / "foo-1.0.tar.gz"
    path.write_bytes(gzip.compress(header + PKG_INFO))
    assert read(path) is None


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_pkg_info_link(tmp_path: Path, kind: bytes) -> None:
    """A PKG-INFO that is a symlink or hard link is None."""
    members = [
        file_member("foo-1.0/real", PKG_INFO),
        special_member("foo-1.0/PKG-INFO", kind, "real"),
    ]
    assert read(make_tar(tmp_path / "foo-1.0.tar.gz", members)) is None
    zipped = make_zip(
        tmp_path / "foo-1.0.zip",
        [("foo-1.0/PKG-INFO", b"real")],
        {"foo-1.0/PKG-INFO": stat.S_IFLNK | 0o777},
    )
    assert read(zipped) is None


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        (tarfile.CHRTYPE, stat.S_IFCHR),
        (tarfile.BLKTYPE, stat.S_IFBLK),
        (tarfile.FIFOTYPE, stat.S_IFIFO),
    ],
)
def test_device_member(tmp_path: Path, kind: bytes, mode: int) -> None:
    """A device or fifo anywhere in the sdist is None, in tar and zip."""
    members = [*sdist_members(), special_member("foo-1.0/dev", kind)]
    assert read(make_tar(tmp_path / "foo-1.0.tar.gz", members)) is None
    zipped = make_zip(
        tmp_path / "foo-1.0.zip",
        [("foo-1.0/PKG-INFO", PKG_INFO), ("foo-1.0/dev", b"")],
        {"foo-1.0/dev": mode | 0o644},
    )
    assert read(zipped) is None


def test_many_members_bomb(tmp_path: Path) -> None:
    """A tar of more members than the default limit is None, quickly."""
    header = file_member("foo-1.0/f")[0].tobuf(tarfile.USTAR_FORMAT)
    pkg_info = file_member("foo-1.0/PKG-INFO", PKG_INFO)[0].tobuf(tarfile.USTAR_FORMAT)
    padded = PKG_INFO + bytes(-len(PKG_INFO) % 512)
    body = pkg_info + padded + header * DEFAULT_LIMITS.max_members + bytes(1024)
    path = tmp_path / "foo-1.0.tar.gz"
    path.write_bytes(gzip.compress(body, compresslevel=1))
    started = time.monotonic()
    assert read(path) is None
    assert time.monotonic() - started < 5
    fits = tmp_path / "fits.tar.gz"
    fits.write_bytes(gzip.compress(body[: -1024 - 512] + bytes(1024), compresslevel=1))
    assert read(fits) == PKG_INFO


def test_oversized_pax_header(tmp_path: Path) -> None:
    """A pax header over 1 MiB (tarfile would read it whole into memory) is None."""
    info, data = file_member("foo-1.0/PKG-INFO", PKG_INFO)
    info.pax_headers = {"comment": "z" * (2 * MiB)}
    assert read(make_tar(tmp_path / "foo-1.0.tar.gz", [(info, data)])) is None
    info.pax_headers = {"comment": "z" * 1000}
    assert read(make_tar(tmp_path / "ok.tar.gz", [(info, data)])) == PKG_INFO


def test_sparse_members(tmp_path: Path) -> None:
    """GNU sparse members, old style or in pax headers, are None."""
    old = file_member("foo-1.0/sparse", b"")[0]
    old.type = tarfile.GNUTYPE_SPARSE
    assert read(make_tar(tmp_path / "a.tar.gz", [*sdist_members(), (old, b"")])) is None
    pax, data = file_member("foo-1.0/sparse", b"1\n0\n0\n" + bytes(509))
    pax.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "9"}
    assert read(make_tar(tmp_path / "b.tar.gz", [*sdist_members(), (pax, data)])) is None


def test_pax_path_wins(tmp_path: Path) -> None:
    """A pax path record names the member, whatever the ustar name field says."""
    info, data = file_member("foo-1.0/NOT-INFO", PKG_INFO)
    info.pax_headers = {"path": "foo-1.0/PKG-INFO"}
    assert read(make_tar(tmp_path / "foo-1.0.tar.gz", [(info, data)])) == PKG_INFO
    info.pax_headers = {"path": "foo-1.0/README"}
    info.name = "foo-1.0/PKG-INFO"
    assert read(make_tar(tmp_path / "foo-1.0.tar.gz", [(info, data)])) is None


def test_malformed_pax_header(tmp_path: Path) -> None:
    """A pax record whose length is wrong is None."""
    info, data = file_member("foo-1.0/PKG-INFO", PKG_INFO)
    info.pax_headers = {"comment": "abc"}
    raw = make_tar(tmp_path / "x.tar", [(info, data)], "w").read_bytes()
    assert b"15 comment=abc\n" in raw
    # Same length, so only the record is wrong: its length now runs past the header's data.
    spoilt = raw.replace(b"15 comment=abc\n", b"99 comment=abc\n", 1)
    path = tmp_path / "foo-1.0.tar"
    path.write_bytes(spoilt)
    assert read(path) is None


def test_unknown_extension(tmp_path: Path) -> None:
    """A file that is neither a wheel nor an sdist is None."""
    sdist = build_sdist(tmp_path, "foo", "1.0")
    assert read_artifact_metadata(sdist.path, "foo-1.0.egg") is None


def test_extended_header_flood(tmp_path: Path) -> None:
    """More than three extended headers per allowed member is None."""
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    record = b"15 comment=abc\n"
    pax.size = len(record)
    flood = [(pax, record)] * 7
    info, data = file_member("foo-1.0/PKG-INFO", PKG_INFO)
    limits = ArchiveLimits(max_members=2)
    path = make_tar(
        tmp_path / "foo-1.0.tar.gz", [*flood, (info, data)], tar_format=tarfile.USTAR_FORMAT
    )
    assert read(path, limits) is None
    fits = make_tar(
        tmp_path / "fits.tar.gz", [*flood[:6], (info, data)], tar_format=tarfile.USTAR_FORMAT
    )
    assert read(fits, limits) == PKG_INFO


@pytest.mark.parametrize("size", ["-1", "1e3", "٣", ""])
def test_bad_pax_size(tmp_path: Path, size: str) -> None:
    """A pax size record that is not a plain decimal number is None."""
    info, data = file_member("foo-1.0/PKG-INFO", PKG_INFO)
    info.pax_headers = {"size": size}
    assert read(make_tar(tmp_path / "foo-1.0.tar.gz", [(info, data)])) is None
