"""The dump format, version 1: a directory with a header, JSON-lines records and blobs.

    DUMP/cheeseboard-dump.json   header, written last: format, version, counts, records sha256
    DUMP/records.jsonl           one JSON object per line, each with a "kind"
    DUMP/blobs/ab/<sha256>       file contents, named by their sha256

Records refer to each other by natural keys (user name, ``user/index``, project name), never by
database ids, so a dump imports into any store and merges into a populated one. Kinds, in the
order they are written: ``user``, ``index``, ``project``, ``release``, ``blob``, ``file``,
``toxresult`` (a tox result of the release file ``filename``, issue 22), ``audit`` (the audit
log's entries, oldest first), ``advisory`` (imported OSV advisories, one per stored row),
``block`` (server-wide, ``index`` null, or on a ``user/index``). Dumps written before issue 21
have no ``audit``, ``advisory`` or ``block``, those before issue 22 no ``toxresult``; both
import as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

FORMAT = "cheeseboard-dump"
VERSION = 1
HEADER = "cheeseboard-dump.json"
RECORDS = "records.jsonl"
BLOBS = "blobs"
KINDS = (
    "user",
    "index",
    "project",
    "release",
    "blob",
    "file",
    "toxresult",
    "audit",
    "advisory",
    "block",
    "group",
    "publisher",
)

# The fields each kind must carry (more are allowed and kept where the schema has a column).
REQUIRED: dict[str, tuple[str, ...]] = {
    "user": ("name", "pwhash"),
    "index": ("name", "type", "config"),
    "project": ("index", "name", "display_name"),
    "release": ("index", "project", "version", "canonical_version", "metadata"),
    "blob": ("sha256", "size"),
    "file": ("index", "project", "filename", "packagetype"),
    "toxresult": ("index", "filename", "name", "data"),
    "audit": ("at", "action"),
    "advisory": ("id", "project", "aliases", "affected", "fixed", "imported"),
    "block": ("index", "reason", "author", "created"),  # index: null for a server-wide block
    "group": ("name", "members"),
    "publisher": ("index", "issuer", "audience", "claims"),
}


class DumpError(Exception):
    """A dump that cannot be read or imported; the message names the file and the record."""


def blob_path(root: Path, sha256: str) -> Path:
    return root / BLOBS / sha256[:2] / sha256


def contained_file(root: Path, relpath: str) -> Path:
    """``root / relpath`` if it is a regular file reached without a link and lying inside
    ``root``; else a DumpError saying what it is.

    A dump is read with the importing user's rights: a symbolic link in it to, say, the data
    directory's ``secret`` would otherwise be imported as a release file and then served to
    anyone (issue 17, item 11). ``root`` itself may be reached through links.
    """
    relative = PurePosixPath(relpath)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise DumpError(f"{relpath!r} points outside the export")
    current = root
    for part in relative.parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            raise DumpError(f"{relpath} is missing from the export") from None
        except OSError as error:
            raise DumpError(f"{relpath} is unreadable: {error}") from None
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(current)
            raise DumpError(
                f"{relpath} is a link ({current.relative_to(root)} -> {target}); an export holds "
                "files, not links to them: refused"
            )
    if not stat.S_ISREG(info.st_mode):
        raise DumpError(f"{relpath} is not a regular file")
    if not current.resolve().is_relative_to(root.resolve()):
        raise DumpError(f"{relpath} lies outside the export directory: refused")
    return current


@dataclass(frozen=True)
class Header:
    version: int
    created: float
    cheeseboard: str
    records: int
    blobs: int
    blob_bytes: int
    records_sha256: str
    mirrored_files: bool
    source: str = "cheeseboard"
    serial: int = 0  # the store's change serial at the snapshot; an import continues from it

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.__dict__}


def read_header(root: Path) -> Header:
    """The header of the dump at ``root``; a missing or foreign header is a DumpError."""
    path = root / HEADER
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DumpError(f"{path} is missing: not a cheeseboard dump, or unfinished") from None
    except (OSError, ValueError) as error:
        raise DumpError(f"{path} is unreadable: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DumpError(f"{path} is not a cheeseboard dump header")
    if data.get("version") != VERSION:
        raise DumpError(
            f"{path}: dump format version {data.get('version')!r}; this cheeseboard reads {VERSION}"
        )
    try:
        return Header(
            version=int(data["version"]),
            created=float(data["created"]),
            cheeseboard=str(data["cheeseboard"]),
            records=int(data["records"]),
            blobs=int(data["blobs"]),
            blob_bytes=int(data["blob_bytes"]),
            records_sha256=str(data["records_sha256"]),
            mirrored_files=bool(data["mirrored_files"]),
            source=str(data.get("source", "cheeseboard")),
            serial=int(data.get("serial", 0)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise DumpError(f"{path}: header field missing or invalid: {error}") from None


def iter_records(root: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of ``records.jsonl``; a malformed line is a DumpError."""
    path = root / RECORDS
    try:
        handle = path.open("rb")
    except OSError as error:
        raise DumpError(f"{path} is unreadable: {error}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            yield number, parse_record(path, number, line)


def parse_record(path: Path, number: int, line: bytes) -> dict[str, Any]:
    where = f"{path.name} line {number}"
    try:
        record = json.loads(line)
    except ValueError as error:
        raise DumpError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        raise DumpError(f"{where}: not a record (needs a 'kind' of {', '.join(KINDS)})")
    missing = [key for key in REQUIRED[record["kind"]] if key not in record]
    if missing:
        raise DumpError(f"{where}: {record['kind']} record without {', '.join(missing)}")
    return record


def describe(record: dict[str, Any]) -> str:
    """A short name of a record for messages: ``file alice/dev pkg-1.0.tar.gz``."""
    kind = record.get("kind")
    if kind == "file":
        return f"file {record.get('index')} {record.get('filename')}"
    if kind == "release":
        return f"release {record.get('index')} {record.get('project')} {record.get('version')}"
    if kind == "project":
        return f"project {record.get('index')} {record.get('name')}"
    if kind == "blob":
        return f"blob {record.get('sha256')}"
    if kind == "toxresult":
        return f"tox result {record.get('index')} {record.get('name')}"
    if kind == "audit":
        return f"audit entry {record.get('action')} at {record.get('at')}"
    if kind == "advisory":
        return f"advisory {record.get('id')}"
    if kind == "block":
        scope = record.get("index") or "server-wide"
        named = record.get("project") or record.get("filename") or record.get("sha256")
        return f"block {scope} {named}"
    return f"{kind} {record.get('name')}"


class RecordWriter:
    """Appends records to ``records.jsonl`` while hashing what it writes."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        self._handle.write(line)
        self._hash.update(line)
        self.count += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
