"""Rendered simple pages on this node's disk, so that a restarted or another worker loads a page's
bytes instead of rendering and compressing them again (a cache; services/pages.py decides what
is current).

One file per (index, project, kind of rendering), replaced whenever the page's content changes,
so superseded renderings do not pile up: a header naming the content (fingerprint and serial,
store/page_rows.py), the digest and size of the plain bytes, then the gzipped bytes. A file is
written under a temporary name and renamed into place, and every load checks the header and the
digest of the decompressed bytes, so a half-written or damaged file is never served: it reads as
missing and the page is rendered again.

Bounded: when the files exceed ``max_bytes`` (checked every ``_TRIM_EVERY`` writes of a
process), the least recently used go first until three quarters of the bound are left.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

_MAGIC = b"cheeseboard-page 1\n"
_TRIM_EVERY = 32
_STALE_TEMP_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class StoredBody:
    """A rendering as stored: the plain bytes, their sha256 (hex), and the gzipped bytes."""

    plain: bytes
    digest: str
    gzipped: bytes


class PageBodies:
    """The rendered pages of one node, under ``root``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._writes = 0

    def path(self, index_id: int, project: str, kind: str) -> Path:
        name = hashlib.sha256(f"{index_id}\0{project}\0{kind}".encode()).hexdigest()[:40]
        return self.root / name[:2] / f"{name}.page"

    def load(
        self,
        index_id: int,
        project: str,
        kind: str,
        fingerprint: str,
        serial: int,
        written_after: float = 0.0,
    ) -> StoredBody | None:
        """The stored rendering of exactly this content, or None (missing, of other content,
        written before ``written_after``, or damaged). Marks it used (least recently used go
        first when trimming)."""
        path = self.path(index_id, project, kind)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        body = _parse(data, kind, fingerprint, serial, written_after)
        if body is not None:
            with contextlib.suppress(OSError):
                os.utime(path)
        return body

    def save(
        self,
        index_id: int,
        project: str,
        kind: str,
        fingerprint: str,
        serial: int,
        plain: bytes,
        gzipped: bytes,
    ) -> None:
        """Store a rendering atomically (a temporary file renamed into place)."""
        header = {
            "kind": kind,
            "fingerprint": fingerprint,
            "serial": serial,
            "sha256": hashlib.sha256(plain).hexdigest(),
            "size": len(plain),
            "written": time.time(),
        }
        path = self.path(index_id, project, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}-{time.monotonic_ns()}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(_MAGIC + json.dumps(header).encode() + b"\n")
                handle.write(gzipped)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self._writes += 1
        if self._writes % _TRIM_EVERY == 0:
            self.trim()

    def trim(self) -> int:
        """Delete the least recently used files while over the bound (and temporary files left
        by a crash); returns the bytes now stored."""
        entries: list[tuple[float, int, Path]] = []
        now = time.time()
        for directory in self.root.glob("??"):
            with os.scandir(directory) as found:
                for entry in found:
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue
                    path = Path(entry.path)
                    if entry.name.endswith(".tmp"):
                        if stat.st_mtime < now - _STALE_TEMP_SECONDS:
                            with contextlib.suppress(OSError):
                                path.unlink()
                        continue
                    entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return total
        entries.sort()
        for _, size, path in entries:
            if total <= self.max_bytes * 3 // 4:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
        return total


def _parse(
    data: bytes, kind: str, fingerprint: str, serial: int, written_after: float
) -> StoredBody | None:
    if not data.startswith(_MAGIC):
        return None
    end = data.find(b"\n", len(_MAGIC))
    if end < 0:
        return None
    try:
        header = json.loads(data[len(_MAGIC) : end])
    except ValueError:
        return None
    if (
        not isinstance(header, dict)
        or header.get("kind") != kind
        or header.get("fingerprint") != fingerprint
        or header.get("serial") != serial
        or not isinstance(header.get("written"), float | int)
        or header["written"] < written_after
    ):
        return None
    gzipped = data[end + 1 :]
    try:
        plain = gzip.decompress(gzipped)
    except (OSError, EOFError, zlib.error):
        return None
    digest = hashlib.sha256(plain).hexdigest()
    if len(plain) != header.get("size") or digest != header.get("sha256"):
        return None
    return StoredBody(plain, digest, gzipped)
