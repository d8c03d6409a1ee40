"""Import OSV advisories: ``cheeseboard-server advisories import`` and the scheduled re-import.

A source is a directory of ``*.json`` (searched recursively, as OSV's git repositories nest
them), a zip as OSV publishes them (``all.zip``), one JSON document, or an http(s) URL of either
(downloaded to a temporary file first, with a size cap and a timeout). Everything is written in
one transaction: an advisory seen replaces its rows (and, for ``MAL-``, its blocks); a withdrawn
one loses both; one unchanged since the last import (same ``modified``) is left alone, so
importing the same feed again changes nothing. Advisories not in the source are kept: a partial
feed never drops another's entries.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import Connection

from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.osv import MAX_DOCUMENT_BYTES, Advisory, OsvError, parse
from cheeseboard.store import advisory_rows, audit_rows, block_rows, changelog_rows, info
from cheeseboard.store.audit_rows import AuditEntry
from cheeseboard.tls import client_context

log = logging.getLogger(__name__)

MAX_DOCUMENTS = 500_000  # files of one source (OSV's PyPI zip: about 20,000)
MAX_DOWNLOAD_BYTES = 1024**3  # a URL's body (OSV's PyPI zip: about 30 MB; all ecosystems: 1 GB)
DOWNLOAD_TIMEOUT = 60.0  # seconds without progress before a download fails
_PER_PROJECT_LOG = 200  # changed projects logged one by one; more: one row for everything
_SHOWN_SKIPS = 20
AUTHOR = "osv-import"
LAST_IMPORT_KEY = "advisories-imported-at"  # server_info: when the last import committed

Log = Callable[[int | None, str | None, ChangeKind], int]


class AdvisorySourceError(Exception):
    """The source cannot be read at all (missing, not a zip, download failed)."""


@dataclass
class AdvisoryImport:
    """What an import read and did."""

    read: int = 0  # documents
    pypi: int = 0  # with at least one PyPI project
    malicious: int = 0  # PyPI ones with a MAL- id (withdrawn included)
    withdrawn: int = 0
    unchanged: int = 0
    stored: int = 0  # advisories written (new or changed)
    removed: int = 0  # withdrawn ones whose rows were deleted
    blocks_added: int = 0
    blocks_removed: int = 0
    skipped: list[str] = field(default_factory=list)  # "name: reason"
    skip_reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def skip(self, name: str, reason: str) -> None:
        self.skip_reasons[reason.split(":", 1)[-1].strip()[:60]] += 1
        if len(self.skipped) < _SHOWN_SKIPS:
            self.skipped.append(f"{name}: {reason}")

    @property
    def skipped_count(self) -> int:
        return sum(self.skip_reasons.values())

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "pypi": self.pypi,
            "malicious": self.malicious,
            "withdrawn": self.withdrawn,
            "unchanged": self.unchanged,
            "stored": self.stored,
            "removed": self.removed,
            "blocks_added": self.blocks_added,
            "blocks_removed": self.blocks_removed,
            "skipped": self.skipped_count,
        }

    def describe(self) -> str:
        line = (
            f"read {self.read} advisories ({self.pypi} for PyPI, {self.malicious} malicious); "
            f"stored {self.stored}, unchanged {self.unchanged}, removed {self.removed} withdrawn; "
            f"blocks +{self.blocks_added} -{self.blocks_removed}; skipped {self.skipped_count}"
        )
        if self.skipped:
            line += "\n  " + "\n  ".join(self.skipped)
            if self.skipped_count > len(self.skipped):
                line += f"\n  ... and {self.skipped_count - len(self.skipped)} more"
        return line


# --- reading ---------------------------------------------------------------------------------


def _bounded_read(handle: IO[bytes]) -> bytes | None:
    data = handle.read(MAX_DOCUMENT_BYTES + 1)
    return None if len(data) > MAX_DOCUMENT_BYTES else data


def _from_zip(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """Members ending in ``.json``, read one at a time (None: too large). Names are only
    labels: nothing is extracted, so no member can write anywhere."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise AdvisorySourceError(f"{path}: not a readable zip ({error})") from None
    with archive:
        members = [m for m in archive.infolist() if m.filename.endswith(".json")]
        if len(members) > MAX_DOCUMENTS:
            raise AdvisorySourceError(f"{path}: more than {MAX_DOCUMENTS} documents")
        for member in members:
            if member.file_size > MAX_DOCUMENT_BYTES:
                yield member.filename, None
                continue
            try:
                with archive.open(member) as handle:
                    yield member.filename, _bounded_read(handle)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
                raise AdvisorySourceError(f"{path}: member {member.filename}: {error}") from None


def _from_directory(path: Path) -> Iterator[tuple[str, bytes | None]]:
    count = 0
    for file in sorted(path.rglob("*.json")):
        if not file.is_file():
            continue
        count += 1
        if count > MAX_DOCUMENTS:
            raise AdvisorySourceError(f"{path}: more than {MAX_DOCUMENTS} documents")
        with file.open("rb") as handle:
            yield str(file.relative_to(path)), _bounded_read(handle)


def _from_file(path: Path) -> Iterator[tuple[str, bytes | None]]:
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(b"PK"):
        yield from _from_zip(path)
        return
    with path.open("rb") as handle:
        yield path.name, _bounded_read(handle)


def download(
    url: str, target: Path, timeout: float = DOWNLOAD_TIMEOUT, ca_bundle: str | None = None
) -> None:
    """Save ``url``'s body to ``target``; AdvisorySourceError beyond MAX_DOWNLOAD_BYTES or on
    any failure. Only http(s): urllib would open file:// and ftp:// URLs too. ``ca_bundle``
    (``--ca-bundle``) adds CAs to the system's for https (tls.py)."""
    if not url.startswith(("http://", "https://")):
        raise AdvisorySourceError(f"{url}: only http:// and https:// URLs are fetched")
    headers = {"User-Agent": "cheeseboard-advisories"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked above
    try:
        with (
            urllib.request.urlopen(  # noqa: S310
                request, timeout=timeout, context=client_context(ca_bundle)
            ) as response,
            target.open("wb") as out,
        ):
            total = 0
            while chunk := response.read(256 * 1024):
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    raise AdvisorySourceError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes")
                out.write(chunk)
    except OSError as error:  # URLError, HTTPError, timeouts, resets
        raise AdvisorySourceError(f"cannot download {url}: {error}") from None


@contextlib.contextmanager
def opened(
    source: str, ca_bundle: str | None = None
) -> Iterator[Iterator[tuple[str, bytes | None]]]:
    """The documents of ``source`` (a path or an http(s) URL) as (name, bytes or None when too
    large); a URL is downloaded into a temporary directory removed afterwards."""
    if source.startswith(("http://", "https://")):
        workdir = Path(tempfile.mkdtemp(prefix="cheeseboard-osv-"))
        try:
            target = workdir / "download"
            download(source, target, ca_bundle=ca_bundle)
            yield _from_file(target)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    path = Path(source)
    if path.is_dir():
        yield _from_directory(path)
    elif path.is_file():
        yield _from_file(path)
    else:
        raise AdvisorySourceError(f"{source}: no such file, directory or http(s) URL")


def parsed(
    documents: Iterator[tuple[str, bytes | None]], report: AdvisoryImport
) -> Iterator[Advisory]:
    """The PyPI advisories among ``documents``, counting and skipping the rest."""
    for name, data in documents:
        report.read += 1
        if data is None:
            report.skip(name, f"larger than {MAX_DOCUMENT_BYTES} bytes")
            continue
        try:
            advisory = parse(data)
        except OsvError as error:
            report.skip(name, str(error))
            continue
        if not advisory.affected:
            continue  # another ecosystem
        report.pypi += 1
        report.malicious += advisory.kind == "malicious"
        yield advisory


# --- writing ---------------------------------------------------------------------------------


def _rows(advisory: Advisory, now: float) -> list[dict[str, Any]]:
    return [
        {
            "id": advisory_rows.row_key(advisory.id, position, entry.project),
            "project": entry.project,
            "summary": advisory.summary,
            "details": advisory.details,
            "aliases": list(advisory.aliases),
            "affected": entry.to_json(),
            "fixed": list(entry.fixed),
            "link": advisory.link,
            "modified": advisory.modified,
            "withdrawn": advisory.withdrawn,
            "imported": now,
        }
        for position, entry in enumerate(advisory.affected)
    ]


def _blocks(advisory: Advisory) -> list[block_rows.NewBlock]:
    summary = advisory.summary or "no summary given"
    reason = f"malicious package ({advisory.id}): {summary}"[:1000]
    return [
        block_rows.NewBlock(
            index_id=None,
            project=entry.project,
            specifier=specifier,
            filename=None,
            sha256=None,
            reason=reason,
            author=AUTHOR,
            source=advisory_rows.source_of(advisory.id),
        )
        for entry in advisory.affected
        for specifier in entry.block_specifiers()
    ]


def apply(
    conn: Connection,
    log_change: Log,
    advisories: Iterator[Advisory],
    report: AdvisoryImport,
    actor: str | None = None,
) -> AdvisoryImport:
    """Write ``advisories`` in the caller's transaction, logging the changes with
    ``log_change`` so running servers drop what they cached."""
    now = time.time()
    stored = advisory_rows.modified_by_id(conn)
    seen: set[str] = set()
    changed_projects: set[str] = set()
    rows: list[dict[str, Any]] = []
    new_blocks: list[block_rows.NewBlock] = []
    replaced: list[str] = []
    for advisory in advisories:
        if advisory.id in seen:
            report.skip(advisory.id, "seen twice in this source (first kept)")
            continue
        seen.add(advisory.id)
        report.withdrawn += advisory.withdrawn is not None
        known = advisory.id in stored
        if known and advisory.withdrawn is None and stored[advisory.id] == advisory.modified:
            report.unchanged += 1
            continue
        if advisory.withdrawn is not None and not known:
            continue  # nothing of it stored (blocks too: they are written with the rows)
        replaced.append(advisory.id)
        changed_projects.update(advisory.projects)
        if advisory.withdrawn is not None:
            report.removed += 1
            continue
        report.stored += 1
        rows.extend(_rows(advisory, now))
        if advisory.kind == "malicious":
            new_blocks.extend(_blocks(advisory))
    report.blocks_removed = advisory_rows.remove(conn, replaced)
    advisory_rows.insert_rows(conn, rows)
    for block in new_blocks:
        block_rows.add(conn, block, now)
    report.blocks_added = len(new_blocks)
    _log_changes(log_change, changed_projects, report)
    audit_rows.append(
        conn, AuditEntry(actor=actor, action="advisories-import", detail=report.counts())
    )
    info.set_info(conn, LAST_IMPORT_KEY, repr(now))
    return report


def _log_changes(log_change: Log, projects: set[str], report: AdvisoryImport) -> None:
    if len(projects) <= _PER_PROJECT_LOG:
        for project in sorted(projects):
            log_change(None, project, ChangeKind.ADVISORIES)
    else:
        log_change(None, None, ChangeKind.ADVISORIES)
    if report.blocks_added or report.blocks_removed:
        log_change(None, None, ChangeKind.BLOCKS)


def import_offline(
    source: str, db_url: str, serial_path: Path | None, ca_bundle: str | None = None
) -> AdvisoryImport:
    """Import ``source`` into the database at ``db_url`` from outside the server; the running
    server processes learn of it from the changelog (the serial file ``serial_path`` wakes those
    of this node at once, PostgreSQL's notification the other nodes)."""
    from cheeseboard.store import pg_changes
    from cheeseboard.store.db import engine_for
    from cheeseboard.store.serial import publish

    started = time.monotonic()
    report = AdvisoryImport()
    serials: list[int] = []
    engine = engine_for(db_url, write=True)
    try:
        with opened(source, ca_bundle) as documents, engine.begin() as conn:

            def log_change(index_id: int | None, project: str | None, kind: ChangeKind) -> int:
                serial = changelog_rows.log_change(conn, index_id, project, kind)
                serials.append(serial)
                return serial

            apply(conn, log_change, parsed(documents, report), report)
            if serials:
                pg_changes.notify(conn, serials[-1])
    finally:
        engine.dispose()
    if serials and serial_path is not None:
        publish(serial_path, serials[-1])
    report.seconds = time.monotonic() - started
    return report
