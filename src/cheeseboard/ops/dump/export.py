"""``cheeseboard-server export``: write a store as a dump (see ops/dump/format.py).

Everything is read in one database transaction, so the dump is a consistent snapshot even while
a server writes; records stream to disk as they are read and blobs are copied in chunks, so a dump
of many gigabytes needs little memory. The dump is built beside ``OUT`` and renamed in when
complete: an interrupted export leaves no directory that looks like a dump. It holds password
hashes, so it is created for its owner alone (directories 0700, files 0600), as backups are.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from cheeseboard import __version__
from cheeseboard.ops.backup import owner_only
from cheeseboard.ops.dump.format import (
    BLOBS,
    HEADER,
    RECORDS,
    DumpError,
    Header,
    RecordWriter,
    blob_path,
)
from cheeseboard.settings import DataDirLayout, staging_dir
from cheeseboard.store import audit_rows, block_rows, changelog_rows, group_rows, publisher_rows
from cheeseboard.store.blobs import FileBlobStore, copy_hashed
from cheeseboard.store.db import engine_for
from cheeseboard.store.schema import (
    advisories,
    files,
    indexes,
    projects,
    releases,
    toxresults,
    users,
)

Progress = Callable[[str, int], None]  # (what, bytes just copied)
# Database ids, and the account identity tokens are bound to (users.uid): an imported user is a
# new account, so tokens issued before (say, to a user deleted since) stay dead.
_SKIP = {"id", "user_id", "index_id", "project_id", "uid"}


def columns(table: Table, row: Any) -> dict[str, Any]:
    """A row's columns without database ids."""
    return {c.name: row._mapping[c.name] for c in table.c if c.name not in _SKIP}


def _prepare(out: Path) -> Path:
    out = out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DumpError(f"{out} exists and is not empty; export into a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out, "export")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / BLOBS).mkdir(parents=True)
    return staging


def _index_names(conn: Connection) -> dict[int, tuple[str, str]]:
    """index id -> (``user/index``, type)."""
    rows = conn.execute(
        select(indexes.c.id, users.c.name.label("owner"), indexes.c.name, indexes.c.type).join(
            users, users.c.id == indexes.c.user_id
        )
    )
    return {r.id: (f"{r.owner}/{r.name}", r.type) for r in rows}


def _stream(conn: Connection, query: Any) -> Iterator[Any]:
    yield from conn.execution_options(stream_results=True, yield_per=1000).execute(query)


class _Exporter:
    def __init__(
        self, conn: Connection, store: FileBlobStore, staging: Path, mirrored: bool
    ) -> None:
        self.conn = conn
        self.store = store
        self.staging = staging
        self.mirrored = mirrored
        self.names = _index_names(conn)
        self.wanted = {
            index_id for index_id, (_, kind) in self.names.items() if kind != "mirror" or mirrored
        }
        self.project_names: dict[int, tuple[str, str]] = {}  # project id -> (index, name)
        self.blobs = 0
        self.blob_bytes = 0

    def users(self, writer: RecordWriter) -> None:
        for row in _stream(self.conn, select(users).order_by(users.c.id)):
            writer.write({"kind": "user", **columns(users, row)})

    def indexes(self, writer: RecordWriter) -> None:
        for row in _stream(self.conn, select(indexes).order_by(indexes.c.id)):
            record = columns(indexes, row)
            record["name"] = self.names[row.id][0]
            writer.write({"kind": "index", **record})

    def projects(self, writer: RecordWriter) -> None:
        for row in _stream(self.conn, select(projects).order_by(projects.c.id)):
            if row.index_id not in self.wanted:
                continue
            index = self.names[row.index_id][0]
            self.project_names[row.id] = (index, row.name)
            writer.write({"kind": "project", **columns(projects, row), "index": index})

    def releases(self, writer: RecordWriter) -> None:
        for row in _stream(self.conn, select(releases).order_by(releases.c.id)):
            owner = self.project_names.get(row.project_id)
            if owner is not None:
                record = columns(releases, row)
                writer.write({"kind": "release", **record, "index": owner[0], "project": owner[1]})

    def _file_rows(self) -> Iterator[Any]:
        for row in _stream(self.conn, select(files).order_by(files.c.id)):
            if row.project_id in self.project_names:
                yield row

    def blob_records(self, writer: RecordWriter, progress: Progress | None) -> None:
        seen: set[str] = set()
        for row in self._file_rows():
            where = f"{self.names[row.index_id][0]} {row.filename}"
            for sha256, required in ((row.blob_sha256, True), (row.core_metadata_sha256, False)):
                if not sha256 or sha256 in seen:
                    continue
                if not self.store.exists(sha256):
                    if required:
                        raise DumpError(f"blob {sha256} of file {where} is missing from the store")
                    continue
                seen.add(sha256)
                size = self._copy(sha256, where, progress)
                writer.write({"kind": "blob", "sha256": sha256, "size": size})

    def _copy(self, sha256: str, where: str, progress: Progress | None) -> int:
        target = blob_path(self.staging, sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        on_chunk = None if progress is None else functools.partial(progress, where)
        digest, size = copy_hashed(self.store.path(sha256), target, on_chunk, exclusive=True)
        if digest != sha256:
            raise DumpError(f"blob {sha256} of file {where} is corrupt in the store ({digest})")
        self.blobs += 1
        self.blob_bytes += size
        return size

    def files(self, writer: RecordWriter) -> None:
        for row in self._file_rows():
            index, project = self.project_names[row.project_id]
            record = {**columns(files, row), "index": index, "project": project}
            writer.write({"kind": "file", **record})

    def toxresults(self, writer: RecordWriter) -> None:
        """Tox results with their release file's name (a merge may give the file a new id)."""
        query = (
            select(toxresults, files.c.filename, files.c.project_id, files.c.index_id)
            .join(files, files.c.id == toxresults.c.file_id)
            .order_by(toxresults.c.id)
        )
        for row in _stream(self.conn, query):
            if row.project_id not in self.project_names:
                continue
            record = {c.name: row._mapping[c.name] for c in toxresults.c if c.name not in _SKIP}
            del record["file_id"]
            index = self.names[row.index_id][0]
            writer.write({"kind": "toxresult", **record, "index": index, "filename": row.filename})

    def audit(self, writer: RecordWriter) -> None:
        """The audit log, oldest first; ``at`` as the stored number (no precision lost)."""
        for row in audit_rows.every(self.conn):
            entry = {**row.to_json(), "at": row.at}
            del entry["id"]
            writer.write({"kind": "audit", **entry})

    def advisory_records(self, writer: RecordWriter) -> None:
        """Every advisory row as stored, its key (``id``: the OSV id, or ``<id>#<project>``)
        included: it is no database id, and re-imports of OSV files compare ``modified`` by it."""
        for row in _stream(self.conn, select(advisories).order_by(advisories.c.id)):
            writer.write(
                {"kind": "advisory", **{c.name: row._mapping[c.name] for c in advisories.c}}
            )

    def block_records(self, writer: RecordWriter) -> None:
        """Every block, hand-made or an advisory's (``source``), on its index by name; after the
        indexes and advisories, so that an import resolves both."""
        for block in block_rows.load_all(self.conn):
            record = {
                "index": block.index,
                "project": block.project,
                "specifier": block.specifier,
                "filename": block.filename,
                "sha256": block.sha256,
                "reason": block.reason,
                "author": block.author,
                "source": block.source,
                "created": block.created,
            }
            writer.write({"kind": "block", **record})

    def group_records(self, writer: RecordWriter) -> None:
        """Every local group with its members by name (after the users they name)."""
        for group in group_rows.load_groups(self.conn):
            record = {
                "name": group.name,
                "description": group.description,
                "created": group.created,
                "members": list(group.members),
            }
            writer.write({"kind": "group", **record})

    def publisher_records(self, writer: RecordWriter) -> None:
        """Every trusted publisher, on its index by name (after the indexes)."""
        for fullname, row in publisher_rows.load_all(self.conn):
            record = {
                "index": fullname,
                "issuer": row.issuer,
                "audience": row.audience,
                "claims": row.claims,
                "description": row.description,
                "created": row.created,
                "created_by": row.created_by,
            }
            writer.write({"kind": "publisher", **record})


def export_store(
    datadir: Path,
    out: Path,
    *,
    database_url: str | None = None,
    mirrored_files: bool = False,
    progress: Progress | None = None,
) -> Header:
    """Write the store in ``datadir`` as a dump at ``out`` (owner-only modes); returns the
    header written."""
    out.absolute().parent.mkdir(parents=True, exist_ok=True)  # the operator's, normal modes
    with owner_only():
        return _export(datadir, out, database_url, mirrored_files, progress)


def _export(
    datadir: Path,
    out: Path,
    database_url: str | None,
    mirrored_files: bool,
    progress: Progress | None,
) -> Header:
    staging = _prepare(out)
    layout = DataDirLayout(datadir)
    url = database_url or layout.sqlite_url
    engine = engine_for(url)
    try:
        with engine.connect() as conn, conn.begin(), (staging / RECORDS).open("wb") as handle:
            exporter = _Exporter(conn, FileBlobStore(layout.blobs), staging, mirrored_files)
            writer = RecordWriter(handle)
            exporter.users(writer)
            exporter.indexes(writer)
            exporter.projects(writer)
            exporter.releases(writer)
            exporter.blob_records(writer, progress)
            exporter.files(writer)
            exporter.toxresults(writer)
            exporter.audit(writer)
            exporter.advisory_records(writer)
            exporter.block_records(writer)
            exporter.group_records(writer)
            exporter.publisher_records(writer)
            serial = changelog_rows.max_serial(conn)
            handle.flush()
            os.fsync(handle.fileno())
        header = Header(
            version=1,
            created=time.time(),
            cheeseboard=__version__,
            records=writer.count,
            blobs=exporter.blobs,
            blob_bytes=exporter.blob_bytes,
            records_sha256=writer.hexdigest(),
            mirrored_files=mirrored_files,
            serial=serial,
        )
        (staging / HEADER).write_text(json.dumps(header.to_json(), indent=2) + "\n")
        os.replace(staging, out.absolute())  # also over an empty directory
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        engine.dispose()
    return header
