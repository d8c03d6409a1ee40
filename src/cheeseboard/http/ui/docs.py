"""Pages of an uploaded documentation zip, read straight out of the stored blob.

Nothing is unpacked: a request path is checked, looked up in the zip's member table (parsed once
per blob and kept in a small LRU), and the member is inflated in bounded chunks in a worker thread.
Request paths never become filesystem paths, and members too large or too compressible (zip bombs)
are refused before a byte is inflated.
"""

from __future__ import annotations

import mimetypes
import struct
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import quote

from cheeseboard.services.errors import BadRequest, CheeseboardError, NotFound

MAX_MEMBER_SIZE = 64 * 1024 * 1024
"""Members larger than this (uncompressed) are refused."""
MAX_RATIO = 500
RATIO_FLOOR = 1024 * 1024
"""Members over RATIO_FLOOR bytes that inflate more than MAX_RATIO times are refused as bombs."""
MAX_MEMBERS = 200_000
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
"""Zips with more entries or a larger central directory are not parsed (memory)."""
MAX_PATH = 1024
CHUNK = 256 * 1024
INLINE_LIMIT = 1024 * 1024
"""Members up to this size are read whole in one thread hop; larger ones are streamed."""
TABLE_CACHE_ENTRIES = 64
TABLE_CACHE_MEMBERS = 400_000

INDEX_PAGE = "index.html"

_TEXT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".xml": "application/xml",
    ".txt": "text/plain",
    ".rst": "text/plain",
    ".md": "text/plain",
    ".py": "text/plain",
    ".buildinfo": "text/plain",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".inv": "application/octet-stream",  # Sphinx objects.inv: zlib-compressed
}
_CHARSET_TYPES = {"application/json", "application/xml", "image/svg+xml", "text/javascript"}

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"


class DocTooLarge(CheeseboardError):
    """Raised for a member (or a whole zip) too large or too compressible to serve."""


class DocZipUnreadable(CheeseboardError):
    """Raised when a stored doc zip is corrupt or uses a feature we do not read (encryption)."""


@dataclass(frozen=True, slots=True)
class Member:
    """Where one file lives inside a zip, from its central directory entry."""

    name: str
    header_offset: int
    compress_type: int
    compress_size: int
    file_size: int
    crc: int
    encrypted: bool


@dataclass(frozen=True, slots=True)
class DocTable:
    """The members of one doc zip by name, and the directories they imply (``"sub/"``)."""

    sha256: str
    members: Mapping[str, Member]
    directories: frozenset[str]


@dataclass(frozen=True, slots=True)
class DocRedirect:
    """A directory asked for without its slash: send the browser to ``location`` (relative)."""

    location: str


# --- request paths ---------------------------------------------------------------------------


def check_doc_path(path: str) -> str:
    """The member name a ``+doc/<path>`` asks for; raises BadRequest for anything unsafe.

    ``""`` and ``"dir/"`` ask for that directory's index.html. Refused: absolute paths, ``.`` and
    ``..`` segments, empty segments, backslashes, NUL and other control characters.
    """
    if len(path) > MAX_PATH:
        raise BadRequest(f"documentation path longer than {MAX_PATH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise BadRequest("documentation path with control characters")
    if "\\" in path:
        raise BadRequest("documentation path with a backslash")
    if path.startswith("/"):
        raise BadRequest("absolute documentation path")
    segments = path.split("/")
    directory = segments[-1] == ""
    if directory:
        segments.pop()
    for segment in segments:
        if segment in ("", ".", ".."):
            shown = f"a {segment!r} segment" if segment else "an empty segment"
            raise BadRequest(f"documentation path with {shown}: {path!r}")
    name = "/".join(segments)
    if directory or not name:
        return f"{name}/{INDEX_PAGE}" if name else INDEX_PAGE
    return name


def find_member(table: DocTable, name: str, what: str) -> Member | DocRedirect:
    """The member ``name`` (from check_doc_path), a redirect for a directory, or NotFound."""
    member = table.members.get(name)
    if member is not None:
        return member
    if name + "/" in table.directories:
        return DocRedirect(quote(name.rsplit("/", 1)[-1], safe="") + "/")
    if not table.members:
        raise NotFound(f"the documentation of {what} is empty: it has no documents")
    raise NotFound(f"no {name} in the documentation of {what}")


def content_type(name: str) -> str:
    """Content-Type by extension; text is declared utf-8 (what Sphinx and mkdocs write)."""
    suffix = Path(name).suffix.lower()
    kind = _TEXT_TYPES.get(suffix)
    if kind is None:
        guessed, encoding = mimetypes.guess_type(name, strict=False)
        kind = guessed if guessed and not encoding else "application/octet-stream"
    if kind.startswith("text/") or kind in _CHARSET_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


def check_member(member: Member) -> None:
    """Refuse members too large, too compressed, or encrypted, before inflating anything."""
    if member.encrypted:
        raise DocZipUnreadable(f"{member.name} is encrypted in the documentation zip")
    if member.file_size > MAX_MEMBER_SIZE:
        raise DocTooLarge(
            f"{member.name} is {member.file_size} bytes uncompressed; documentation files are "
            f"served up to {MAX_MEMBER_SIZE} bytes"
        )
    compressed = max(member.compress_size, 1)
    if member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * compressed:
        raise DocTooLarge(
            f"{member.name} inflates {member.file_size // compressed}:1 "
            f"({member.compress_size} to {member.file_size} bytes), more than {MAX_RATIO}:1; "
            "refused as a likely zip bomb"
        )


# --- member tables -------------------------------------------------------------------------


def _directory_extent(handle: BinaryIO, size: int) -> tuple[int, int]:
    """Entry count and byte size of the central directory, read from the end records."""
    tail_size = min(size, _END.size + 0xFFFF + _ZIP64_LOCATOR.size)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END.size:
        raise DocZipUnreadable("the documentation zip has no end of central directory")
    end = _END.unpack_from(tail, at)
    entries, directory_size = int(end[4]), int(end[5])
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR_SIGNATURE:
        _, _, zip64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
        handle.seek(zip64_offset)
        record = handle.read(_ZIP64_END.size)
        if len(record) == _ZIP64_END.size and record[:4] == _ZIP64_END_SIGNATURE:
            fields = _ZIP64_END.unpack(record)
            entries, directory_size = int(fields[7]), int(fields[8])
    return entries, directory_size


def _member_name(raw: str) -> str | None:
    """A member's name as requests spell it; None for names no safe request can reach."""
    name = raw.replace("\\", "/").lstrip("/")
    parts = name.split("/")
    if any(part in (".", "..") for part in parts):
        return None
    return name


def load_table(path: Path, sha256: str) -> DocTable:
    """Parse a doc zip's central directory (blocking: run it in a thread). Zero bytes (an
    upload devpi takes as "no documents") are an empty table."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            if size == 0:
                return DocTable(sha256, {}, frozenset())
            entries, directory_size = _directory_extent(handle, size)
            if entries > MAX_MEMBERS or directory_size > MAX_CENTRAL_DIRECTORY:
                raise DocTooLarge(
                    f"the documentation zip lists {entries} files ({directory_size} bytes of "
                    f"directory); at most {MAX_MEMBERS} files are served"
                )
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise DocZipUnreadable(f"the documentation zip cannot be read: {exc}") from exc
    members: dict[str, Member] = {}
    directories: set[str] = set()
    for info in infos:
        name = _member_name(info.filename)
        if name is None:
            continue
        parts = name.split("/")
        for depth in range(1, len(parts)):
            directories.add("/".join(parts[:depth]) + "/")
        # Not ZipInfo.is_dir(): it raises IndexError on an empty member name (hostile zips).
        if info.filename.endswith("/") or not parts[-1]:
            continue
        members.setdefault(
            name,
            Member(
                name=name,
                header_offset=info.header_offset,
                compress_type=info.compress_type,
                compress_size=info.compress_size,
                file_size=info.file_size,
                crc=info.CRC,
                encrypted=bool(info.flag_bits & 0x1),
            ),
        )
    return DocTable(sha256, members, frozenset(directories))


class _TableCache:
    """Member tables by blob sha256: an LRU bounded by entries and by total member count."""

    def __init__(self, max_entries: int, max_members: int) -> None:
        self._max_entries = max_entries
        self._max_members = max_members
        self._tables: OrderedDict[str, DocTable] = OrderedDict()
        self._members = 0
        self._lock = threading.Lock()

    def get(self, sha256: str) -> DocTable | None:
        with self._lock:
            table = self._tables.get(sha256)
            if table is not None:
                self._tables.move_to_end(sha256)
            return table

    def put(self, table: DocTable) -> None:
        weight = len(table.members)
        if weight > self._max_members:
            return
        with self._lock:
            old = self._tables.pop(table.sha256, None)
            if old is not None:
                self._members -= len(old.members)
            self._tables[table.sha256] = table
            self._members += weight
            while len(self._tables) > self._max_entries or self._members > self._max_members:
                _, evicted = self._tables.popitem(last=False)
                self._members -= len(evicted.members)


_tables = _TableCache(TABLE_CACHE_ENTRIES, TABLE_CACHE_MEMBERS)


def doc_table(path: Path, sha256: str) -> DocTable:
    """The member table of the doc zip stored at ``path`` (cached; blocking on a miss)."""
    table = _tables.get(sha256)
    if table is None:
        table = load_table(path, sha256)
        _tables.put(table)
    return table


def cached_doc_table(sha256: str) -> DocTable | None:
    """The member table if it is cached: lets async callers skip the thread hop."""
    return _tables.get(sha256)


# --- reading members -----------------------------------------------------------------------


class MemberReader:
    """A member's bytes in chunks of at most CHUNK, inflated as they are asked for.

    Blocking: call ``read_chunk`` from a worker thread. The output is capped at the declared
    size and its CRC checked, so a zip that lies about a member cannot make us inflate more.
    Stored and deflated members are read directly; other methods (bzip2, lzma) go through
    the standard library's reader.
    """

    def __init__(self, path: Path, member: Member) -> None:
        check_member(member)
        self.member = member
        self._left = member.file_size
        self._crc = 0
        self._fallback: zipfile.ZipFile | None = None
        self._stream: IO[bytes]
        self._inflate: zlib._Decompress | None = None
        self._compressed_left = member.compress_size
        try:
            if member.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self._stream = path.open("rb")
                self._seek_data()
                if member.compress_type == zipfile.ZIP_DEFLATED:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            else:
                self._fallback = zipfile.ZipFile(path)
                self._stream = self._fallback.open(self._fallback.getinfo(member.name))
        except DocZipUnreadable:
            self.close()
            raise
        except (zipfile.BadZipFile, NotImplementedError, KeyError, OSError, ValueError) as exc:
            self.close()
            raise DocZipUnreadable(f"{member.name} cannot be read: {exc}") from exc

    def _seek_data(self) -> None:
        self._stream.seek(self.member.header_offset)
        header = self._stream.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise DocZipUnreadable(f"{self.member.name}: bad local header in the documentation zip")
        fields = _LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[-2], fields[-1]
        self._stream.seek(
            self.member.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        )

    def read_chunk(self) -> bytes:
        """The next bytes of the member, b"" at its end. Raises DocZipUnreadable if corrupt."""
        if self._left <= 0:
            return b""
        try:
            data = self._next()
        except (zlib.error, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise DocZipUnreadable(f"{self.member.name} is corrupt: {exc}") from exc
        if not data or len(data) > self._left:
            raise DocZipUnreadable(
                f"{self.member.name} does not have the size its zip entry declares"
            )
        self._left -= len(data)
        if self._fallback is None:
            self._crc = zlib.crc32(data, self._crc)
            if self._left == 0 and self._crc != self.member.crc:
                raise DocZipUnreadable(f"{self.member.name} fails its CRC check")
        return data

    def _next(self) -> bytes:
        if self._fallback is not None:
            return self._stream.read(min(CHUNK, self._left))
        inflate = self._inflate
        if inflate is None:
            data = self._stream.read(min(CHUNK, self._compressed_left))
            self._compressed_left -= len(data)
            return data
        # At most CHUNK bytes out per call, however well the input compresses (+1 to see a lie).
        limit = min(CHUNK, self._left + 1)
        while True:
            if inflate.unconsumed_tail:
                out = inflate.decompress(inflate.unconsumed_tail, limit)
            elif self._compressed_left > 0:
                data = self._stream.read(min(CHUNK, self._compressed_left))
                if not data:
                    return b""
                self._compressed_left -= len(data)
                out = inflate.decompress(data, limit)
            else:
                return inflate.flush()[:limit]
            if out or inflate.eof:
                return out

    def read_all(self) -> bytes:
        """The whole member (for small ones), then closed."""
        try:
            parts = []
            while chunk := self.read_chunk():
                parts.append(chunk)
            return b"".join(parts)
        finally:
            self.close()

    def close(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.close()
        if self._fallback is not None:
            self._fallback.close()


def read_member(path: Path, member: Member) -> bytes:
    """A whole (small) member in one call (blocking: run it in a thread)."""
    return MemberReader(path, member).read_all()
