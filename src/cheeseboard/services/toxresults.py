"""Tox results (``devpi test``): posted as JSON to a release file's URL, stored with it (and
removed with it), listed in devpi's versiondata as ``toxresult`` links and served at their own
URL in the file's ``+f`` directory (docs/devpi-protocol.md §2).

Who may post is the index's ``acl_toxresult_upload`` (``:ANONYMOUS:`` by default, as in devpi),
so each result is bounded in size and each file in how many it keeps: an anonymous poster can
fill neither the database nor a page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.json_text import has_lone_surrogate
from cheeseboard.services.accounts import Conflict
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.pages import file_path
from cheeseboard.store import project_rows, toxresult_rows
from cheeseboard.store.db import Database
from cheeseboard.store.docs import DOCZIP
from cheeseboard.store.records import FileRecord, IndexRecord, ToxResultRecord

MAX_SIZE = 1024 * 1024
"""Bytes per result: tox's JSON of a large matrix is a few hundred KiB at most."""
MAX_PER_FILE = 64
"""Results one release file keeps; more are refused (409) rather than replacing older ones."""
MARKER = ".toxresult-"


def acl_of(index: IndexRecord) -> list[str]:
    """The index's ``acl_toxresult_upload`` (devpi's default for indexes stored without one)."""
    value = index.config.get("acl_toxresult_upload")
    return [str(v) for v in value] if isinstance(value, list) else [acl.ANONYMOUS]


def is_toxresult_name(filename: str) -> bool:
    return MARKER in filename


def result_name(release: str, when: float, number: int) -> str:
    """devpi's name: ``<release file>.toxresult-<YYYYmmddHHMMSS>-<n>``."""
    return f"{release}{MARKER}{time.strftime('%Y%m%d%H%M%S', time.gmtime(when))}-{number}"


def result_path(index: IndexRecord, record: FileRecord, result: ToxResultRecord) -> str:
    """Server-relative path of a result: in its release file's ``+f`` directory."""
    return f"{file_path(index, record).rsplit('/', 1)[0]}/{result.name}"


def parse(body: bytes) -> None:
    """Refuse a body that is not a JSON object (tox's ``--result-json`` is one)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"tox result is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise BadRequest("tox result must be a JSON object")
    if has_lone_surrogate(body, data):
        raise BadRequest("tox result is not valid JSON: a string holds a lone UTF-16 surrogate")


@dataclass(frozen=True, slots=True)
class ToxSummary:
    """What a result says, for the version page: where it ran and each environment's outcome."""

    host: str
    platform: str
    envs: list[tuple[str, str]]  # (name, "passed" | "failed" | "setup failed" | "no tests run")


def _failed(commands: object) -> bool:
    if not isinstance(commands, list):
        return False
    return any(isinstance(c, dict) and c.get("retcode") not in (None, 0, "0") for c in commands)


def summarize(data: str) -> ToxSummary:
    """The summary of a stored result (what ``devpi list -f`` prints); lenient, since any JSON
    object is accepted."""
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {}
    parsed = parsed if isinstance(parsed, dict) else {}
    envs = []
    testenvs = parsed.get("testenvs")
    for name, env in sorted(testenvs.items() if isinstance(testenvs, dict) else []):
        env = env if isinstance(env, dict) else {}
        if _failed(env.get("setup")):
            outcome = "setup failed"
        elif not env.get("test"):
            outcome = "no tests run"
        else:
            outcome = "failed" if _failed(env.get("test")) else "passed"
        envs.append((str(name), outcome))
    return ToxSummary(str(parsed.get("host", "")), str(parsed.get("platform", "")), envs)


class ToxResultService:
    """Store, list and find tox results."""

    def __init__(self, db: Database, changes: ChangeFeed) -> None:
        self._db = db
        self._changes = changes

    async def release_file(self, index: IndexRecord, filename: str, sha256: str) -> FileRecord:
        """The release file (not a doc zip) ``filename`` on the stage ``index`` whose sha256
        starts with ``sha256``; NotFound otherwise."""
        found = None
        if index.type == "stage":
            found = await self._db.read(project_rows.file_by_filename, index.id, filename)
        if found is None or found[0].packagetype == DOCZIP:
            raise NotFound(f"no release file {filename!r} on {index.fullname}")
        record = found[0]
        if not sha256 or not (record.sha256 or "").startswith(sha256):
            raise NotFound(f"no release file {filename!r} with hash prefix {sha256[:16]}")
        return record

    async def store(
        self, identity: Identity, index: IndexRecord, record: FileRecord, body: bytes
    ) -> ToxResultRecord:
        """Attach the JSON ``body`` to the release file ``record``; the stored result."""
        decision = acl.may_upload_toxresult(identity, acl_of(index))
        if not decision.allowed:
            refusal = Unauthorized if identity.anonymous else Forbidden
            raise refusal(decision.reason)
        if len(body) > MAX_SIZE:
            raise BadRequest(f"tox result of {len(body)} bytes is larger than {MAX_SIZE} bytes")
        parse(body)
        data = body.decode("utf-8")
        now = time.time()

        def write(tx: Transaction) -> ToxResultRecord:
            count = toxresult_rows.count_for_file(tx.conn, record.id)
            if count >= MAX_PER_FILE:
                raise Conflict(
                    f"{record.filename} has {count} tox results already, the most a file keeps"
                )
            result = ToxResultRecord(
                0,
                record.id,
                result_name(record.filename, now, count),
                data,
                hashlib.sha256(body).hexdigest(),
                identity.user,
                now,
            )
            new_id = toxresult_rows.add(tx.conn, result)
            project = project_rows.project_name(tx.conn, record.project_id)
            tx.log(index.id, project, ChangeKind.TOXRESULT)
            return dataclasses.replace(result, id=new_id)

        return await self._changes.write(write)

    async def find(self, index: IndexRecord, name: str, sha256: str) -> ToxResultRecord:
        """The result called ``name`` on ``index`` whose release file's sha256 starts with
        ``sha256``; NotFound otherwise."""
        release = name.split(MARKER, 1)[0]
        record = await self.release_file(index, release, sha256)
        found = await self._db.read(toxresult_rows.by_name, index.id, name)
        if found is None or found.file_id != record.id:
            raise NotFound(f"no tox result {name!r} on {index.fullname}")
        return found

    async def for_files(self, file_ids: list[int]) -> dict[int, list[ToxResultRecord]]:
        if not file_ids:
            return {}
        return await self._db.read(toxresult_rows.for_files, file_ids)
