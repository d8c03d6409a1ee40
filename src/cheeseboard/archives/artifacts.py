"""Reading the core metadata out of an uploaded file, with limits against hostile archives.

A wheel's is its ``*.dist-info/METADATA`` (see ``services.wheels``); an sdist's is the
``<top>/PKG-INFO`` beside its single top-level directory. Nothing is extracted to disk, but
installers extract sdists, so members they could be tricked with are refused: links (symbolic or
hard), devices, absolute and ``..`` paths. An archive that is corrupt, truncated, ambiguous,
holds such a member or is over a limit has no readable metadata:
``read_artifact_metadata`` answers None, ``artifact_metadata`` raises UnreadableArchive saying
why, and the caller refuses the upload with that reason.

Tar members are walked by a small reader of our own rather than ``tarfile``: ``tarfile`` reads
pax and GNU long-name headers and GNU sparse maps into memory whatever their size, keeps every
member it has seen, and takes a corrupt header in mid-archive for its end.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

from cheeseboard.archives.wheels import (
    ARCHIVE_ERRORS,
    UnreadableArchive,
    archive_error_reason,
    check_zip_entries,
    read_wheel_metadata,
)

_BLOCK = 512  # tar header and data block size
_ZERO_BLOCK = bytes(_BLOCK)
_CHUNK = 1024 * 1024  # how much skipped member data is read at a time
# pax ("x", "g") and GNU long name/link ("L", "K") headers hold paths and attributes of a few
# hundred bytes; anything larger is not a source distribution.
_MAX_EXTENDED_HEADER = 1024 * 1024
_EXTENDED_TYPES = frozenset({b"x", b"g", b"L", b"K"})
_PAX_RECORD = re.compile(rb"(\d+) ")
_OCTAL = re.compile(rb"[0-7]+")
MemberKind = Literal["file", "dir", "link"]
# Type flags we accept; devices, fifos, GNU sparse/volume/dump entries and unknown ones are not.
_TAR_KINDS: dict[bytes, MemberKind] = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",  # contiguous file: a regular file for every reader
    b"5": "dir",
    b"1": "link",
    b"2": "link",
}
_CHECKSUM_SIGNED = struct.Struct("148b8x356b")
_MAX_SHOWN = 100  # characters of a member's name or link target quoted in a refusal


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How much work reading one sdist may take; past any of them, its metadata is unreadable.

    Wheels have their own limits, in ``services.wheels``.
    """

    max_metadata_bytes: int = 16 * 1024 * 1024  # PKG-INFO size, as for wheels' METADATA
    # Members of an sdist, each counted; well above any real sdist, and a few tenths of a second.
    max_members: int = 50_000
    # Decompressed bytes of a tar read in total: stops gzip/xz bombs. Uncompressed sdists of a
    # few hundred MiB exist; inflating 1 GiB takes a few seconds.
    max_scanned_bytes: int = 1024 * 1024 * 1024


DEFAULT_LIMITS = ArchiveLimits()
_SDIST_ERRORS: tuple[type[BaseException], ...] = (*ARCHIVE_ERRORS, lzma.LZMAError)


def read_artifact_metadata(
    path: Path, filename: str, limits: ArchiveLimits = DEFAULT_LIMITS
) -> bytes | None:
    """The exact METADATA/PKG-INFO bytes of the distribution at ``path``, or None if unreadable.

    ``filename`` (the distribution's name, not the path's) picks the format by its extension.
    """
    try:
        return artifact_metadata(path, filename, limits)
    except UnreadableArchive:
        return None


def artifact_metadata(path: Path, filename: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> bytes:
    """As ``read_artifact_metadata``, but an unreadable archive raises UnreadableArchive saying
    why (for the uploader: no filesystem path in it)."""
    lower = filename.lower()
    if lower.endswith(".whl"):
        # Limits of its own: 16 MiB, exactly one METADATA, no duplicate or overlapping members.
        return read_wheel_metadata(path, strict=True)
    try:
        if lower.endswith(".zip"):
            return _zip_pkg_info(path, limits)
        for suffix, opener in _TAR_OPENERS:
            if lower.endswith(suffix):
                with opener(path) as stream:
                    return _tar_pkg_info(stream, limits)
    except _SDIST_ERRORS as exc:  # also gzip.BadGzipFile, an OSError
        if isinstance(exc, lzma.LZMAError) and "limit" in str(exc):
            reason = f"decoding the xz data needs more than {MAX_XZ_MEMORY} bytes of memory"
            raise UnreadableArchive(reason) from exc
        raise UnreadableArchive(archive_error_reason(exc)) from exc
    raise UnreadableArchive("not a distribution archive (.whl, .tar.gz, .zip, …)")


def _open_plain(path: Path) -> io.BufferedIOBase:
    return path.open("rb")


def _open_gzip(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb")


def _open_bz2(path: Path) -> io.BufferedIOBase:
    return bz2.open(path, "rb")


# The xz decoder allocates the dictionary size the archive's header asks for, up to 4 GiB, and
# fills it as it inflates: a 170 KB .tar.xz took a worker to 1 GiB of memory before the scan
# limit stopped it. xz -9 needs 65 MiB to decode; lzma.open has no memory limit, so this does.
MAX_XZ_MEMORY = 128 * 1024 * 1024


class _XzReader(io.RawIOBase):
    """xz decompression of a file, with the decoder's memory capped at MAX_XZ_MEMORY.

    Concatenated streams are read one after the other; anything after the last one that is
    not an xz stream (padding) ends the data, as with lzma.open.
    """

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self._decompressor = lzma.LZMADecompressor(memlimit=MAX_XZ_MEMORY)
        self._trailing = False  # after a complete stream, before the next one gave any data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        want = len(target)
        while True:
            if self._decompressor.eof:
                rest = self._decompressor.unused_data or self._file.read(_CHUNK)
                if not rest:
                    return 0
                self._decompressor = lzma.LZMADecompressor(memlimit=MAX_XZ_MEMORY)
                self._trailing = True
                try:
                    data = self._decompressor.decompress(rest, want)
                except lzma.LZMAError:
                    return 0  # not another stream: padding or garbage after a complete one
            elif self._decompressor.needs_input:
                raw = self._file.read(_CHUNK)
                if not raw:
                    if self._trailing:
                        return 0  # a few bytes after the last stream, too short for a header
                    raise EOFError("compressed stream cut short")
                data = self._decompressor.decompress(raw, want)
            else:
                data = self._decompressor.decompress(b"", want)
            if data:
                self._trailing = False
                target[: len(data)] = data
                return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_xz(path: Path) -> io.BufferedIOBase:
    return io.BufferedReader(_XzReader(path), _CHUNK)


_TAR_OPENERS: tuple[tuple[str, Callable[[Path], io.BufferedIOBase]], ...] = (
    (".tar.gz", _open_gzip),
    (".tgz", _open_gzip),
    (".tar.bz2", _open_bz2),
    (".tar.xz", _open_xz),
    (".tar", _open_plain),
)


class _TopLevel:
    """Checks member paths: relative, no "..", all under one top-level directory."""

    def __init__(self) -> None:
        self.top: str | None = None

    def parts(self, name: str) -> list[str]:
        """The path's parts without empty and "." ones, as an extractor would write it."""
        if name.startswith("/"):
            raise UnreadableArchive("a member has an absolute path")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts or not name:
            raise UnreadableArchive("a member's path is empty or contains '..'")
        if not parts:
            return parts  # "./", the archive's root, as "tar -C dir ." writes it
        if self.top is None:
            self.top = parts[0]
        elif parts[0] != self.top:
            raise UnreadableArchive("the sdist has more than one top-level directory")
        return parts

    def is_pkg_info(self, parts: list[str]) -> bool:
        return len(parts) == 2 and parts[1] == "PKG-INFO"


def _shown(text: str) -> str:
    """``text`` quoted for a refusal, cut short so a hostile name is not echoed back whole."""
    shown = repr(text[: _MAX_SHOWN + 1])
    return shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN] + "…"


def _refuse_link(name: str, what: str, target: str | None = None) -> UnreadableArchive:
    """The refusal of a link member. Nothing is extracted here, but installers extract sdists:
    pip 23.2.1 followed an absolute or ``../`` symlink (or a hard link, or a link and then a
    regular file of the same name) and wrote outside its build directory (issue 17, item 5).
    A real sdist has no need of links, so every one is refused, whatever it points at."""
    pointing = "" if target is None else f" to {_shown(target)}"
    return UnreadableArchive(
        f"member {_shown(name)} is a {what}{pointing}, not a regular file or directory: "
        "links in sdists are refused"
    )


# -- zip sdists -------------------------------------------------------------------------------


def _zip_kind(info: zipfile.ZipInfo) -> MemberKind:
    # Unix writers (create_system 3) keep st_mode in the high 16 bits; many leave the type out.
    file_type = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
    if file_type == stat.S_IFLNK:
        return "link"
    # Not ZipInfo.is_dir(): it raises IndexError for a member with an empty name (found by
    # atheris; that was a 500 on upload). Empty names are refused by _TopLevel.parts.
    if info.filename.endswith("/") or file_type == stat.S_IFDIR:
        return "dir"
    if file_type in (0, stat.S_IFREG):
        return "file"
    raise UnreadableArchive("a member is a device, fifo or socket")


def _zip_pkg_info(path: Path, limits: ArchiveLimits) -> bytes:
    # zipfile reads the whole central directory up front: its size is bounded by the upload's.
    with zipfile.ZipFile(path) as archive:
        check_zip_entries(archive)
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise UnreadableArchive(f"the archive has more than {limits.max_members} members")
        tree = _TopLevel()
        found: zipfile.ZipInfo | None = None
        for info in infos:
            parts = tree.parts(info.filename)
            kind = _zip_kind(info)
            if kind == "link":
                # A zip symlink's target is its data, which is not read for a refusal.
                raise _refuse_link(info.filename, "symbolic link")
            if tree.is_pkg_info(parts):
                if found is not None or kind != "file":
                    raise UnreadableArchive("PKG-INFO is there twice, or is not a regular file")
                found = info
        if found is None:
            raise UnreadableArchive("the sdist has no <name>-<version>/PKG-INFO")
        if found.file_size > limits.max_metadata_bytes:
            raise UnreadableArchive(f"PKG-INFO is larger than {limits.max_metadata_bytes} bytes")
        with archive.open(found) as member:
            data = member.read(limits.max_metadata_bytes + 1)
        if len(data) > limits.max_metadata_bytes:
            raise UnreadableArchive("PKG-INFO is larger than its header says")
        return data


# -- tar sdists -------------------------------------------------------------------------------


class _BoundedStream:
    """Reads a decompressed stream forward, never past ``limit`` bytes in total."""

    def __init__(self, stream: io.BufferedIOBase, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._left = limit

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes; _Unreadable at the end of the stream or the limit."""
        if size > self._left:
            raise UnreadableArchive(f"the archive decompresses to more than {self._limit} bytes")
        parts: list[bytes] = []
        wanted = size
        while wanted:
            chunk = self._stream.read(wanted)
            if not chunk:
                raise UnreadableArchive("the archive is cut short")
            parts.append(chunk)
            wanted -= len(chunk)
        self._left -= size
        return b"".join(parts)

    def skip(self, size: int) -> None:
        """Read and drop ``size`` bytes, a chunk at a time."""
        while size:
            step = min(size, _CHUNK)
            self.read_exact(step)
            size -= step

    def drain(self) -> None:
        """Read to the end, so the decompressor checks its CRC and length trailer."""
        while True:
            chunk = self._stream.read(min(_CHUNK, self._left + 1))
            if not chunk:
                return
            if len(chunk) > self._left:
                raise UnreadableArchive(
                    f"the archive decompresses to more than {self._limit} bytes"
                )
            self._left -= len(chunk)


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 for large values."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise UnreadableArchive("corrupt tar header (negative number)")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if not _OCTAL.fullmatch(text):
        raise UnreadableArchive("corrupt tar header (bad number)")
    return int(text, 8)


def _check_header(header: bytes) -> None:
    """Verify the checksum; like tarfile and GNU tar, accept the signed sum of old writers too."""
    stored = _number(header[148:156])
    field = 8 * ord(" ")  # the checksum field itself counts as spaces
    if stored == sum(header) - sum(header[148:156]) + field:
        return
    if stored != field + sum(_CHECKSUM_SIGNED.unpack(header)):
        raise UnreadableArchive("corrupt tar header (bad checksum)")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """Records of a pax header: ``"<length> <key>=<value>\\n"``, the length counting it all."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        match = _PAX_RECORD.match(data, pos)
        if match is None:
            if not data[pos:].strip(b"\0"):
                break  # NUL padding
            raise UnreadableArchive("malformed pax header")
        end = pos + int(match.group(1))
        if end <= match.end() or end > len(data) or data[end - 1 : end] != b"\n":
            raise UnreadableArchive("malformed pax record")
        key, equals, value = data[match.end() : end - 1].partition(b"=")
        if not equals:
            raise UnreadableArchive("malformed pax record")
        records[_text(key)] = _text(value)
        pos = end
    if any(key.startswith("GNU.sparse.") for key in records):
        raise UnreadableArchive("sparse members are not supported")
    return records


def _ustar_name(header: bytes) -> str:
    name = header[0:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX ustar: a prefix for long names
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return _text(name)


def _tar_pkg_info(stream: io.BufferedIOBase, limits: ArchiveLimits) -> bytes:
    """Walk the tar headers in ``stream``; return ``<top>/PKG-INFO`` if all is well."""
    source = _BoundedStream(stream, limits.max_scanned_bytes)
    tree = _TopLevel()
    found: bytes | None = None
    members = extended = 0
    pax: dict[str, str] = {}  # from an "x" header, for the next member
    long_name: str | None = None  # from a GNU "L" header, for the next member
    long_link: str | None = None  # from a GNU "K" header, for the next member
    while True:
        header = source.read_exact(_BLOCK)
        if header == _ZERO_BLOCK:
            break  # end of archive (a second zero block and padding may follow)
        _check_header(header)
        typeflag = header[156:157]
        size = _number(header[124:136])
        if typeflag in _EXTENDED_TYPES:
            # At most a pax header and a long name and link name per member.
            extended += 1
            if extended > 3 * limits.max_members or size > _MAX_EXTENDED_HEADER:
                raise UnreadableArchive("too many or too large pax/GNU extended headers")
            data = source.read_exact(size)
            source.skip(_padded(size) - size)
            if typeflag == b"x":
                pax = _pax_records(data)
            elif typeflag == b"g":
                _pax_records(data)  # global defaults: only checked
            elif typeflag == b"L":
                long_name = _text(data.split(b"\0", 1)[0])
            elif typeflag == b"K":
                long_link = _text(data.split(b"\0", 1)[0])
            continue
        members += 1
        if members > limits.max_members:
            raise UnreadableArchive(f"the archive has more than {limits.max_members} members")
        kind = _TAR_KINDS.get(typeflag)
        if kind is None:
            raise UnreadableArchive("a member is a device, fifo, sparse file or of unknown type")
        if "size" in pax:
            if not (pax["size"].isascii() and pax["size"].isdigit()):
                raise UnreadableArchive("bad pax size")
            size = int(pax["size"])
        name = pax.get("path") or long_name or _ustar_name(header)
        target = pax.get("linkpath") or long_link or _text(header[157:257].split(b"\0", 1)[0])
        pax, long_name, long_link = {}, None, None
        if kind == "file" and typeflag == b"\0" and name.endswith("/"):
            kind = "dir"  # pre-POSIX directory entry
        parts = tree.parts(name)
        if kind == "link":
            raise _refuse_link(name, "symbolic link" if typeflag == b"2" else "hard link", target)
        data_size = size if kind == "file" else 0  # only regular files carry data
        if tree.is_pkg_info(parts):
            if found is not None or kind != "file":
                raise UnreadableArchive("PKG-INFO is there twice, or is not a regular file")
            if size > limits.max_metadata_bytes:
                raise UnreadableArchive(
                    f"PKG-INFO is larger than {limits.max_metadata_bytes} bytes"
                )
            found = source.read_exact(size)
            source.skip(_padded(size) - size)
        else:
            source.skip(_padded(data_size))
    source.drain()
    if found is None:
        raise UnreadableArchive("the sdist has no <name>-<version>/PKG-INFO")
    return found
