"""Reading core metadata (PEP 658) out of wheels, with limits against hostile archives."""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from pathlib import Path

MAX_METADATA_BYTES = 16 * 1024 * 1024
_DIST_INFO_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")  # fullmatch, not "$"
_MAX_REASON = 100  # characters of a library's error message kept in a reason


class UnreadableArchive(Exception):
    """Raised when an archive's metadata cannot be read; the message says why, for the uploader.

    Messages never hold a filesystem path: they are shown to clients.
    """


def archive_error_reason(exc: BaseException) -> str:
    """Why reading failed, from what a reader raised, in words fit for the uploader."""
    if isinstance(exc, UnreadableArchive):
        return str(exc)
    if isinstance(exc, zipfile.BadZipFile):  # also a CRC mismatch and overlapping entries
        return f"not a valid zip archive ({str(exc)[:_MAX_REASON]})"
    if isinstance(exc, EOFError):
        return "the archive is cut short"
    if isinstance(exc, NotImplementedError):
        return "a member uses an unsupported compression method"
    if isinstance(exc, RuntimeError):
        return "a member is encrypted"
    # zlib.error, lzma.LZMAError, gzip.BadGzipFile and bz2's OSError; their messages may name
    # the staged file's path, so none is repeated.
    return "corrupt or truncated archive data"


# What zipfile and the decompressors raise for corrupt input; each becomes a reason above.
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    UnreadableArchive,
    OSError,
    zipfile.BadZipFile,
    EOFError,
    ValueError,
    zlib.error,
    NotImplementedError,  # unsupported compression method
    RuntimeError,  # encrypted member
)


def check_zip_entries(archive: zipfile.ZipFile) -> None:
    """Refuse zips that installers may read differently from us, as PyPI does for uploads.

    Two members with one name (which one is "the" file depends on the reader), symbolic links
    (an unpacker that honours them writes where the link points), and members whose data overlap
    the next member (the "overlapping files" zip bomb, where many names inflate one stream). Only
    the central directory is read: this costs nothing whatever the archive's size.
    """
    seen: set[str] = set()
    for info in archive.infolist():
        if info.filename in seen:
            raise UnreadableArchive(f"the archive has two members named {info.filename[:100]!r}")
        seen.add(info.filename)
        # Unix writers (create_system 3) keep st_mode in the high 16 bits of external_attr.
        if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
            raise UnreadableArchive(
                f"member {info.filename[:100]!r} is a symbolic link: links are refused"
            )
    ordered = sorted(archive.infolist(), key=lambda info: info.header_offset)
    ends = [*(info.header_offset for info in ordered[1:]), archive.start_dir]
    for info, end in zip(ordered, ends, strict=True):
        # The local header is 30 bytes and the name, then the data: a lower bound of its end.
        if info.header_offset + 30 + len(info.orig_filename) + info.compress_size > end:
            raise UnreadableArchive(
                f"member {info.filename[:100]!r} overlaps the next one (a zip bomb?)"
            )


def read_wheel_metadata(path: Path, *, strict: bool = False) -> bytes:
    """The exact bytes of the wheel's top-level ``*.dist-info/METADATA``.

    Raises UnreadableArchive (whatever the archive holds) with the reason when there is not
    exactly one, when it is larger than MAX_METADATA_BYTES, or when the zip is corrupt; with
    ``strict`` (uploads) also for duplicate or overlapping members (``check_zip_entries``).
    """
    limit = MAX_METADATA_BYTES
    try:
        with zipfile.ZipFile(path) as archive:
            if strict:
                check_zip_entries(archive)
            candidates = [
                info for info in archive.infolist() if _DIST_INFO_METADATA.fullmatch(info.filename)
            ]
            if not candidates:
                raise UnreadableArchive("the wheel has no <name>.dist-info/METADATA")
            if len(candidates) > 1:
                raise UnreadableArchive("the wheel has more than one .dist-info/METADATA")
            if candidates[0].file_size > limit:
                raise UnreadableArchive(f"METADATA is larger than {limit} bytes")
            with archive.open(candidates[0]) as member:
                data = member.read(limit + 1)
            if len(data) > limit:
                raise UnreadableArchive(f"METADATA is larger than {limit} bytes")
            return data
    except ARCHIVE_ERRORS as exc:
        raise UnreadableArchive(archive_error_reason(exc)) from exc


def extract_wheel_metadata(path: Path) -> bytes | None:
    """The exact bytes of the wheel's top-level ``*.dist-info/METADATA``, or None if unreadable."""
    try:
        return read_wheel_metadata(path)
    except UnreadableArchive:
        return None
