"""``cheeseboard-server import``: load a dump (ours, or devpi's through ops/dump/devpi.py).

Into a new data directory the import builds the directory beside its final place and renames it
in; into a populated one (``merge``) it writes in one database transaction and removes the blobs
it added if anything fails. Either way an error names the dump file and record, and the target
is left as it was.

An import is a restore or a migration: it keeps the source's data as it was, with one exception.
Like every path that creates a project, it applies the dependency-confusion guard (issue 17): a
project the import gives its first release file on a stage, whose name a mirror in the stage's
bases has cached (in the target or in the dump), refuses the whole import unless the stage has
``allow_upstream_names`` or the operator, having checked the names listed, passes
``--allow-upstream-names``; the import then reports them. See dump/upstream_names.py.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection

from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import is_safe_filename
from cheeseboard.core.names import InvalidName, checked_project_name, checked_segment_name
from cheeseboard.core.publishers import PublisherClaims, PublisherError
from cheeseboard.ops.datadir import DataDirError, build_datadir, is_initialised
from cheeseboard.ops.dump.format import (
    BLOBS,
    RECORDS,
    DumpError,
    contained_file,
    describe,
    iter_records,
    read_header,
)
from cheeseboard.ops.dump.upstream_names import shadowing
from cheeseboard.services import toxresults
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.groups import MAX_DESCRIPTION, MAX_GROUPS_PER_USER, MAX_MEMBERS
from cheeseboard.services.publishers import MAX_PUBLISHERS
from cheeseboard.services.users import DEVPI_SALTED_SHA256, pwhash_problem
from cheeseboard.settings import DataDirLayout
from cheeseboard.store import (
    advisory_rows,
    audit_rows,
    block_rows,
    changelog_rows,
    group_rows,
    info,
    pg_changes,
    project_rows,
    publisher_rows,
)
from cheeseboard.store.blobs import (
    BlobStoreError,
    FileBlobStore,
    check_sha256,
    copy_hashed,
    hash_file,
)
from cheeseboard.store.db import engine_for
from cheeseboard.store.s3_blobs import publish_local_blobs
from cheeseboard.store.schema import (
    advisories,
    changelog,
    files,
    indexes,
    projects,
    releases,
    users,
)
from cheeseboard.store.schema import toxresults as toxresult_table
from cheeseboard.store.serial import publish

Progress = Callable[[str, int], None]  # (what, bytes just copied)


class DumpSource(Protocol):
    """Where records and blob contents come from."""

    name: str
    serial: int  # the source's change serial; a new store continues from it (0: unknown)

    def verify(self) -> None:
        """Whole-dump checks before anything is written (raises DumpError)."""

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(where, record)`` in dependency order: users, indexes, projects, releases, blobs,
        files (then tox results, audit entries, advisories and blocks, if any); ``where`` names
        the dump file and line for messages."""

    def blob_file(self, sha256: str) -> Path:
        """The file holding a blob's bytes: KeyError if the dump has none, DumpError if it is a
        link or lies outside the dump."""


class CheeseboardDump:
    """A dump written by ``cheeseboard-server export``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = str(root)
        self.header = read_header(root)
        self.serial = self.header.serial

    def verify(self) -> None:
        """The records file is complete and unchanged, and every line is a record."""
        path = self.root / RECORDS
        try:
            digest, _ = hash_file(path)
        except OSError as error:
            raise DumpError(f"{path} is unreadable: {error}") from None
        if digest != self.header.records_sha256:
            raise DumpError(
                f"{path} does not match its header (sha256 {digest}, header says "
                f"{self.header.records_sha256}): truncated or changed"
            )
        count = sum(1 for _ in iter_records(self.root))
        if count != self.header.records:
            raise DumpError(f"{path} has {count} records, its header says {self.header.records}")

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for number, record in iter_records(self.root):
            yield f"{RECORDS} line {number}", record

    def blob_file(self, sha256: str) -> Path:
        """The blob's file; a link, or anything but a file inside the dump, is a DumpError."""
        return contained_file(self.root, f"{BLOBS}/{sha256[:2]}/{sha256}")


@dataclass
class ImportReport:
    """What an import did."""

    created: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # merge: things that existed already
    # Stage projects imported although a base mirror has the name (allowed by the operator).
    shadowing: list[str] = field(default_factory=list)
    blob_bytes: int = 0
    seconds: float = 0.0

    def count(self, kind: str) -> None:
        self.created[kind] = self.created.get(kind, 0) + 1


def _checked_names(*pairs: tuple[str, str]) -> None:
    """Each ``(kind, name)`` passes the API's own check for user and index names (a ``+api``
    user would shadow a route, ``a/b`` could never be addressed); else a DumpError."""
    for kind, name in pairs:
        try:
            checked_segment_name(kind, name)
        except InvalidName as error:
            raise DumpError(str(error)) from None


def _checked_project(name: str) -> None:
    """A project record names its project normalized, as the store keys it."""
    try:
        normalized = checked_project_name(name)
    except InvalidName as error:
        raise DumpError(str(error)) from None
    if normalized != name:
        raise DumpError(f"project name {name!r} is not normalized (PEP 503: {normalized!r})")


def _text(record: dict[str, Any], key: str, limit: int | None = None) -> str | None:
    """The record's ``key``: text (of at most ``limit`` characters, the column's size) or null."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or (limit is not None and len(value) > limit):
        size = "" if limit is None else f" of at most {limit} characters"
        raise DumpError(f"{key} is text{size} or null")
    return value


def _texts(record: dict[str, Any], key: str) -> list[str]:
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DumpError(f"{key} is a list of text")
    return value


def _row(table: Table, record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The record's values for the table's columns (unknown keys are ignored)."""
    names = {c.name for c in table.c} - {"id"}
    values = {k: v for k, v in record.items() if k in names}
    values.update(extra)
    return values


def _block_key(block: block_rows.NewBlock | block_rows.BlockRecord) -> tuple[object, ...]:
    """What makes two blocks the same block (a merge keeps the target's)."""
    return (
        block.index_id,
        block.project,
        block.specifier,
        block.filename,
        block.sha256,
        block.source,
    )


class _Loader:
    """Writes records into one open transaction and blobs into one blob store."""

    def __init__(
        self,
        conn: Connection,
        store: FileBlobStore,
        source: DumpSource,
        merge: bool,
        progress: Progress | None,
    ) -> None:
        self.conn = conn
        self.store = store
        self.source = source
        self.merge = merge
        self.progress = progress
        self.report = ImportReport()
        self.added_blobs: list[Path] = []
        self.user_ids = {r.name: r.id for r in conn.execute(select(users.c.id, users.c.name))}
        self.index_ids: dict[str, int] = {
            f"{r.owner}/{r.name}": r.id
            for r in conn.execute(
                select(indexes.c.id, indexes.c.name, users.c.name.label("owner")).join(
                    users, users.c.id == indexes.c.user_id
                )
            )
        }
        self.project_ids: dict[tuple[int, str], int] = {}
        self.blobs: set[str] = set()
        self.touched: set[tuple[int, str]] = set()
        # (index id, project) given their first release file by this import: the guard's input.
        self.first_files: set[tuple[int, str]] = set()
        self._had_files: set[tuple[int, str]] = set()
        # What the target held before (merge): kept as it is, as users and releases are.
        self._old_advisories = set(conn.scalars(select(advisories.c.id)))
        self._old_osv_ids = {key.split("#", 1)[0] for key in self._old_advisories}
        self._old_blocks = {_block_key(b) for b in block_rows.load_all(conn)}

    def _insert(self, table: Table, values: dict[str, Any]) -> int:
        """Insert a row; its new id."""
        key = self.conn.execute(insert(table).values(**values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def load(self, where: str, record: dict[str, Any]) -> None:
        try:
            getattr(self, "_" + record["kind"])(record)
        except DumpError as error:
            raise DumpError(f"{self.source.name}: {where}: {describe(record)}: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise DumpError(
                f"{self.source.name}: {where}: {describe(record)}: invalid field ({error})"
            ) from None

    def _user(self, record: dict[str, Any]) -> None:
        name = str(record["name"])
        _checked_names(("user", name))
        if name in self.user_ids:
            if not self.merge and name != "root":
                raise DumpError("the user exists twice in the dump")
            self.report.kept.append(f"user {name}")
            return
        values = _row(users, record)
        # A fresh identity for every imported account (tokens bind to it, store/schema.py), and
        # only hashes whose cost the server will ever run (services/users.py).
        values.pop("uid", None)
        pwhash = str(values.get("pwhash", ""))
        problem = None if pwhash.startswith(DEVPI_SALTED_SHA256) else pwhash_problem(pwhash)
        if problem is not None:
            raise DumpError(problem)
        values.setdefault("created", time.time())
        self.user_ids[name] = self._insert(users, values)
        self.report.count("user")

    def _index(self, record: dict[str, Any]) -> None:
        fullname = str(record["name"])
        owner, sep, name = fullname.partition("/")
        if not sep:
            raise DumpError(f"index name {fullname!r} is not 'user/index'")
        _checked_names(("user", owner), ("index", name))
        if owner not in self.user_ids:
            raise DumpError(f"no user {owner!r} for the index")
        if fullname in self.index_ids:
            if not self.merge:
                raise DumpError("the index exists twice in the dump")
            self.report.kept.append(f"index {fullname}")
            return
        values = _row(indexes, record, user_id=self.user_ids[owner], name=name)
        values.setdefault("created", time.time())
        index_id = self._insert(indexes, values)
        self.index_ids[fullname] = index_id
        self.report.count("index")

    def _index_id(self, record: dict[str, Any]) -> int:
        index_id = self.index_ids.get(str(record["index"]))
        if index_id is None:
            raise DumpError(f"no index {record['index']!r} in the dump")
        return index_id

    def _existing_project(self, index_id: int, name: str) -> int | None:
        found = self.conn.scalar(
            select(projects.c.id).where(projects.c.index_id == index_id, projects.c.name == name)
        )
        return None if found is None else int(found)

    def _project_id(self, index_id: int, name: str) -> int:
        key = (index_id, name)
        if key not in self.project_ids:
            found = self._existing_project(index_id, name)
            if found is None:
                raise DumpError(f"no project {name!r} on its index in the dump")
            self.project_ids[key] = int(found)
        return self.project_ids[key]

    def _project(self, record: dict[str, Any]) -> None:
        index_id = self._index_id(record)
        name = str(record["name"])
        _checked_project(name)
        existing = self._existing_project(index_id, name)
        if existing is not None:
            self.project_ids[(index_id, name)] = existing
            return
        values = _row(projects, record, index_id=index_id)
        values.setdefault("created", time.time())
        self.project_ids[(index_id, name)] = self._insert(projects, values)
        self.touched.add((index_id, name))
        self.report.count("project")

    def _release(self, record: dict[str, Any]) -> None:
        index_id = self._index_id(record)
        project_id = self._project_id(index_id, str(record["project"]))
        exists = self.conn.scalar(
            select(releases.c.id).where(
                releases.c.project_id == project_id,
                releases.c.canonical_version == record["canonical_version"],
            )
        )
        if exists is not None:
            self.report.kept.append(describe(record))
            return
        values = _row(releases, record, project_id=project_id)
        values.setdefault("created", time.time())
        self.conn.execute(insert(releases).values(**values))
        self.touched.add((index_id, str(record["project"])))
        self.report.count("release")

    def _blob(self, record: dict[str, Any]) -> None:
        sha256, size = check_sha256(str(record["sha256"]).lower()), int(record["size"])
        self.blobs.add(sha256)
        if not self.store.claim(sha256):  # reuse marks it in use for a concurrent gc
            self._copy_blob(sha256, size)
            self.report.count("blob")
        project_rows.add_blob(self.conn, sha256, size)

    def _copy_blob(self, sha256: str, size: int) -> None:
        try:
            source = self.source.blob_file(sha256)
        except KeyError:
            raise DumpError(f"the dump has no file for blob {sha256}") from None
        tmp = self.store.tmp_dir / f"import-{os.getpid()}-{sha256}.part"
        on_chunk = None if self.progress is None else functools.partial(self.progress, source.name)
        try:
            digest, copied = copy_hashed(source, tmp, on_chunk)
            if copied != size or digest != sha256:
                raise DumpError(
                    f"{source} is damaged: {copied} bytes with sha256 {digest}, "
                    f"expected {size} bytes with sha256 {sha256}"
                )
            self.store.install(tmp, sha256)
        except FileNotFoundError:
            raise DumpError(f"{source} is missing from the dump") from None
        finally:
            tmp.unlink(missing_ok=True)
        self.added_blobs.append(self.store.path(sha256))
        self.report.blob_bytes += copied

    def _file(self, record: dict[str, Any]) -> None:
        if not is_safe_filename(str(record["filename"])):
            raise DumpError("not a file name cheeseboard can serve")
        index_id = self._index_id(record)
        project_id = self._project_id(index_id, str(record["project"]))
        sha256 = record.get("blob_sha256")
        if sha256 and sha256 not in self.blobs and not self.store.exists(sha256):
            raise DumpError(f"its content (blob {sha256}) is not in the dump")
        existing = self.conn.execute(
            select(files.c.blob_sha256, files.c.sha256).where(
                files.c.index_id == index_id, files.c.filename == record["filename"]
            )
        ).first()
        if existing is not None:
            if not self.merge:
                raise DumpError("the file exists twice in the dump")
            if existing.sha256 != record.get("sha256"):
                raise DumpError("a different file of that name is on the index already")
            self.report.kept.append(describe(record))
            return
        project = str(record["project"])
        key = (index_id, project)
        if record["packagetype"] != "doczip" and key not in self._had_files | self.first_files:
            if project_rows.project_exists_on(self.conn, index_id, project):
                self._had_files.add(key)
            else:
                self.first_files.add(key)
        values = _row(files, record, index_id=index_id, project_id=project_id)
        values.setdefault("created", time.time())
        self.conn.execute(insert(files).values(**values))
        self.touched.add((index_id, str(record["project"])))
        self.report.count("file")

    def _toxresult(self, record: dict[str, Any]) -> None:
        """A tox result of a release file imported (or, in a merge, present) before it; one
        the target has already (same file and name) is kept."""
        index_id = self._index_id(record)
        name, data = _text(record, "name", 255) or "", _text(record, "data") or ""
        release = str(record["filename"])
        if not name.startswith(release + toxresults.MARKER) or "/" in name:
            raise DumpError("a tox result's name is its release file's name + .toxresult-…")
        if len(data.encode()) > toxresults.MAX_SIZE:
            raise DumpError(f"a tox result is at most {toxresults.MAX_SIZE} bytes")
        try:
            toxresults.parse(data.encode())
        except BadRequest as error:
            raise DumpError(error.message) from None
        digest = hashlib.sha256(data.encode()).hexdigest()
        if record.get("sha256", digest) != digest:
            raise DumpError(f"its data has sha256 {digest}, not {record.get('sha256')}")
        file_id = self.conn.scalar(
            select(files.c.id).where(files.c.index_id == index_id, files.c.filename == release)
        )
        if file_id is None:
            raise DumpError(f"no release file {release!r} on its index in the dump")
        exists = self.conn.scalar(
            select(toxresult_table.c.id).where(
                toxresult_table.c.file_id == file_id, toxresult_table.c.name == name
            )
        )
        if exists is not None:
            if not self.merge:
                raise DumpError("the tox result exists twice in the dump")
            self.report.kept.append(describe(record))
            return
        values = {
            "file_id": file_id,
            "name": name,
            "data": data,
            "sha256": digest,
            "uploaded_by": _text(record, "uploaded_by", 64),
            "created": float(record.get("created") or time.time()),
        }
        self.conn.execute(insert(toxresult_table).values(**values))
        self.report.count("toxresult")

    def _audit(self, record: dict[str, Any]) -> None:
        """An audit log entry, appended with its time (merged logs keep each entry's time;
        ids are the target's, in import order)."""
        detail = record.get("detail") or {}
        if not isinstance(detail, dict):
            raise DumpError("an audit entry's detail is a JSON object")
        text = {key: record.get(key) for key in ("actor", "target", "client")}
        for key, value in text.items():
            if value is not None and not isinstance(value, str):
                raise DumpError(f"an audit entry's {key} is a string or null")
        entry = audit_rows.AuditEntry(
            text["actor"], str(record["action"]), text["target"], detail, text["client"]
        )
        audit_rows.append(self.conn, entry, at=float(record["at"]))
        self.report.count("audit")

    def _advisory(self, record: dict[str, Any]) -> None:
        """An advisory row as the source stored it (its key is ``id``, one row per project)."""
        key = _text(record, "id", 128)
        if not key:
            raise DumpError("an advisory's id is text")
        project = str(record["project"])
        _checked_project(project)
        if not isinstance(record["affected"], dict):
            raise DumpError("an advisory's affected is a JSON object")
        values = {
            "id": key,
            "project": project,
            "summary": _text(record, "summary"),
            "details": _text(record, "details"),
            "aliases": _texts(record, "aliases"),
            "affected": record["affected"],
            "fixed": _texts(record, "fixed"),
            "link": _text(record, "link"),
            "modified": _text(record, "modified", 40),
            "withdrawn": _text(record, "withdrawn", 40),
            "imported": float(record["imported"]),
        }
        if key in self._old_advisories:
            self.report.kept.append(describe(record))
            return
        if self.conn.scalar(select(advisories.c.id).where(advisories.c.id == key)) is not None:
            raise DumpError("the advisory exists twice in the dump")
        self.conn.execute(insert(advisories).values(**values))
        self.report.count("advisory")

    def _block(self, record: dict[str, Any]) -> None:
        """A block, server-wide (``index`` null) or on an index imported before it."""
        index_id = None if record["index"] is None else self._index_id(record)
        project = _text(record, "project", 255)
        if project is not None:
            _checked_project(project)
        sha256 = _text(record, "sha256", 64)
        if sha256 is not None:
            check_sha256(sha256)
        block = block_rows.NewBlock(
            index_id=index_id,
            project=project,
            specifier=_text(record, "specifier"),  # kept as it is: the guard ignores a bad one
            filename=_text(record, "filename", 255),
            sha256=sha256,
            reason=str(_text(record, "reason") or ""),
            author=str(_text(record, "author", 64) or ""),
            source=_text(record, "source", 128) or block_rows.MANUAL,
        )
        if block.project is None and block.filename is None and block.sha256 is None:
            raise DumpError("a block names a project, a filename or a sha256")
        if not block.reason:
            raise DumpError("a block needs a reason")
        osv_id = block.source.removeprefix(advisory_rows.SOURCE_PREFIX)
        if _block_key(block) in self._old_blocks or (
            block.source.startswith(advisory_rows.SOURCE_PREFIX) and osv_id in self._old_osv_ids
        ):
            # There already, or made by an advisory the target has (its blocks stand with it).
            self.report.kept.append(describe(record))
            return
        block_rows.add(self.conn, block, float(record["created"]))
        self.report.count("block")

    def _group(self, record: dict[str, Any]) -> None:
        """A local group and its members (users imported before it, or the target's); a merge
        keeps a group the target has, as it is."""
        name = str(record["name"])
        _checked_names(("group", name))
        members = record["members"]
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise DumpError("'members' must be a list of user names")
        if len(members) > MAX_MEMBERS:
            raise DumpError(f"a group has at most {MAX_MEMBERS} members")
        missing = sorted(set(members) - set(self.user_ids))
        if missing:
            raise DumpError("no such user: " + ", ".join(missing))
        if group_rows.load_groups(self.conn, name):
            if not self.merge:
                raise DumpError("the group exists twice in the dump")
            self.report.kept.append(f"group {name}")
            return
        description = _text(record, "description", MAX_DESCRIPTION)
        created = float(record.get("created") or time.time())
        group_rows.create_group(self.conn, name, description, created)
        for member in dict.fromkeys(members):
            if group_rows.group_count(self.conn, member) >= MAX_GROUPS_PER_USER:
                raise DumpError(f"user {member} would be in more than {MAX_GROUPS_PER_USER} groups")
            group_rows.add_member(self.conn, name, member)
        self.report.count("group")

    def _publisher(self, record: dict[str, Any]) -> None:
        """A trusted publisher of a stage index (imported before it, or the target's); a merge
        keeps one the index has already (same issuer, audience and claims)."""
        index_id = self._index_id(record)
        issuer = str(_text(record, "issuer", 2000) or "")
        audience = str(_text(record, "audience", 200) or "")
        if not issuer.startswith(("https://", "http://")) or not audience:
            raise DumpError("a publisher needs an http(s) issuer and an audience")
        if not isinstance(record["claims"], dict):
            raise DumpError("'claims' must be an object")
        try:
            claims = PublisherClaims.create(record["claims"]).as_json()
        except PublisherError as error:
            raise DumpError(str(error)) from None
        for old in publisher_rows.of_index(self.conn, index_id):
            if (old.issuer, old.audience, old.claims) == (issuer, audience, claims):
                self.report.kept.append(describe(record))
                return
        if len(publisher_rows.of_index(self.conn, index_id)) >= MAX_PUBLISHERS:
            raise DumpError(f"an index has at most {MAX_PUBLISHERS} publishers")
        row = publisher_rows.PublisherRow(
            0,
            index_id,
            issuer,
            audience,
            claims,
            _text(record, "description", 200) or "",
            float(record.get("created") or time.time()),
            _text(record, "created_by", 64),
        )
        publisher_rows.add(self.conn, row)
        self.report.count("publisher")

    def record_import(self) -> None:
        """The import itself, as the target's newest audit entry (by nobody: an operator's
        command, not a user's request)."""
        detail = {"created": dict(self.report.created), "merge": self.merge}
        audit_rows.append(
            self.conn, audit_rows.AuditEntry(None, "import", self.source.name, detail)
        )

    def log_changes(self) -> None:
        """Tell running servers what a merge changed; a new store instead continues the
        source's serial, so the serials its pages carry (``_last-serial``: when the server learnt
        their content) never go back."""
        if not self.merge:
            serial = max(self.source.serial, 1)
            self.conn.execute(
                insert(changelog).values(serial=serial, created=time.time(), kind="import")
            )
            return
        changelog_rows.log_change(self.conn, None, None, ChangeKind.USER_MODIFIED)
        for index_id in sorted(self.index_ids.values()):
            changelog_rows.log_change(self.conn, index_id, None, ChangeKind.INDEX_MODIFIED)
        for index_id, project in sorted(self.touched):
            changelog_rows.log_change(self.conn, index_id, project, ChangeKind.UPLOAD)
        if self.report.created.get("advisory"):
            changelog_rows.log_change(self.conn, None, None, ChangeKind.ADVISORIES)
        if self.report.created.get("block"):
            changelog_rows.log_change(self.conn, None, None, ChangeKind.BLOCKS)
        if self.report.created.get("group"):
            changelog_rows.log_change(self.conn, None, None, ChangeKind.GROUPS)

    def guard_upstream_names(self, allow: bool) -> None:
        """Refuse (or, when ``allow``, report) stage projects that would shadow a mirror's."""
        found = [item.message() for item in shadowing(self.conn, self.first_files)]
        if found and not allow:
            more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
            shown = "; ".join(found[:5]) + more
            raise DumpError(
                f"{self.source.name}: {shown}. Set allow_upstream_names=True on the index (and "
                "mirror_whitelist if both should be visible), or import with "
                "--allow-upstream-names to keep them as the source had them."
            )
        self.report.shadowing = found

    def undo_blobs(self) -> None:
        for path in self.added_blobs:
            path.unlink(missing_ok=True)


def _load(
    conn: Connection,
    store: FileBlobStore,
    source: DumpSource,
    merge: bool,
    progress: Progress | None,
    blob_url: str | None = None,
    allow_upstream_names: bool = False,
) -> ImportReport:
    loader = _Loader(conn, store, source, merge, progress)
    try:
        for where, record in source.records():
            loader.load(where, record)
        loader.guard_upstream_names(allow_upstream_names)
        loader.record_import()
        loader.log_changes()
        if blob_url:
            # Into the bucket before the rows commit: no row may name a blob it lacks.
            try:
                asyncio.run(publish_local_blobs(blob_url, store, sorted(loader.blobs)))
            except (BlobStoreError, ValueError) as error:
                raise DumpError(f"cannot store the files in the bucket: {error}") from None
    except BaseException:
        loader.undo_blobs()
        raise
    return loader.report


def import_dump(
    source: DumpSource,
    datadir: Path,
    *,
    merge: bool = False,
    database_url: str | None = None,
    blob_url: str | None = None,
    progress: Progress | None = None,
    allow_upstream_names: bool = False,
) -> ImportReport:
    """Load ``source`` into a new data directory, or into an existing one with ``merge``;
    ``allow_upstream_names`` lets stage projects in that a base mirror has (reported)."""
    started = time.monotonic()
    source.verify()
    if is_initialised(datadir):
        if not merge:
            raise DumpError(
                f"{datadir} holds a store already; import into a new directory, or pass --merge"
            )
        report = _merge(source, datadir, database_url, blob_url, progress, allow_upstream_names)
    else:
        report = _fresh(source, datadir, database_url, blob_url, progress, allow_upstream_names)
    report.seconds = time.monotonic() - started
    return report


def _fresh(
    source: DumpSource,
    datadir: Path,
    database_url: str | None,
    blob_url: str | None,
    progress: Progress | None,
    allow_upstream_names: bool,
) -> ImportReport:
    reports: list[ImportReport] = []

    def populate(staging: Path, url: str) -> None:
        engine = engine_for(url, write=True)
        try:
            with engine.begin() as conn:
                store = FileBlobStore(DataDirLayout(staging).blobs)
                reports.append(
                    _load(conn, store, source, False, progress, blob_url, allow_upstream_names)
                )
                if "root" not in {r.name for r in conn.execute(select(users.c.name))}:
                    raise DumpError(f"{source.name}: the dump has no user root")
                info.set_info(conn, "uuid", os.urandom(16).hex())
        finally:
            engine.dispose()

    try:
        build_datadir(datadir, populate, database_url)
    except DataDirError as error:
        raise DumpError(str(error)) from None
    return reports[0]


def _merge(
    source: DumpSource,
    datadir: Path,
    database_url: str | None,
    blob_url: str | None,
    progress: Progress | None,
    allow_upstream_names: bool,
) -> ImportReport:
    layout = DataDirLayout(datadir)
    url = database_url or layout.sqlite_url
    engine = engine_for(url, write=True)
    try:
        with engine.begin() as conn:
            store = FileBlobStore(layout.blobs)
            report = _load(conn, store, source, True, progress, blob_url, allow_upstream_names)
            serial = changelog_rows.max_serial(conn)
            pg_changes.notify(conn, serial)  # the other nodes, once this commits
    finally:
        engine.dispose()
    publish(layout.serial, serial)  # this node's running servers catch up at once
    return report
