"""Reading core metadata (PEP 658) out of wheels, with limits against hostile archives."""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

MAX_METADATA_BYTES = 16 * 1024 * 1024
_DIST_INFO_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")  # fullmatch, not "$"


def extract_wheel_metadata(path: Path) -> bytes | None:
    """The exact bytes of the wheel's top-level ``*.dist-info/METADATA``, or None if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                info for info in archive.infolist() if _DIST_INFO_METADATA.fullmatch(info.filename)
            ]
            if len(candidates) != 1 or candidates[0].file_size > MAX_METADATA_BYTES:
                return None
            with archive.open(candidates[0]) as member:
                data = member.read(MAX_METADATA_BYTES + 1)
            return data if len(data) <= MAX_METADATA_BYTES else None
    except (
        OSError,
        zipfile.BadZipFile,  # also a CRC mismatch
        EOFError,
        ValueError,
        zlib.error,  # corrupt deflate data
        NotImplementedError,  # unsupported compression method
        RuntimeError,  # encrypted member
    ):
        return None
