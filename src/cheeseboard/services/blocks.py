"""Blocks (issue 21): root blocks anything server-wide, an index owner for their index (and so
for every index inheriting it). A block names a project (optionally a version range), a
filename or a sha256, with a reason; blocked files disappear from pages and their downloads get
403 with the reason (services/guard.py enforces). Every block and unblock is one write
transaction with its changelog row (so every worker and node drops its pages) and its audit
entry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import is_safe_filename
from cheeseboard.core.names import InvalidName, checked_project_name, normalize_project_name
from cheeseboard.core.release_policy import (
    MAX_REASON,
    PolicyError,
    format_time,
    parse_specifier,
)
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.guard import ReleaseGuard
from cheeseboard.store import audit_rows, block_rows
from cheeseboard.store.audit_rows import AuditEntry
from cheeseboard.store.block_rows import BlockRecord, NewBlock
from cheeseboard.store.records import IndexRecord

MAX_BLOCKS = 100_000
"""Blocks in all (advisory imports included): each is checked against every file a guarded
page lists, so the count stays far from what would make a page build slow."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIELDS = frozenset({"project", "specifier", "version", "filename", "sha256", "reason"})


def block_json(record: BlockRecord) -> dict[str, Any]:
    """A block as the API shows it."""
    return {
        "id": record.id,
        "index": record.index,
        "project": record.project,
        "specifier": record.specifier,
        "filename": record.filename,
        "sha256": record.sha256,
        "reason": record.reason,
        "author": record.author,
        "source": record.source,
        "created": format_time(record.created),
    }


def _text(body: Mapping[str, object], key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"'{key}' must be text of at most {limit} characters")
    return value.strip()


def parse_block(body: object, index: IndexRecord | None, author: str) -> NewBlock:
    """A block from a request body: ``project`` (with ``specifier`` or ``version``),
    ``filename`` and/or ``sha256``, and a ``reason`` (required)."""
    if not isinstance(body, Mapping):
        raise BadRequest("a block is a JSON object with 'project', 'filename' or 'sha256'")
    unknown = sorted(str(key)[:40] for key in body if key not in _FIELDS)
    if unknown:
        raise BadRequest(f"unknown block fields: {', '.join(unknown[:10])}")
    project = _text(body, "project", 255)
    if project is not None:
        try:
            project = normalize_project_name(checked_project_name(project))
        except InvalidName as exc:
            raise BadRequest(f"block: {exc}") from None
    specifier = _text(body, "specifier", 500)
    version = _text(body, "version", 128)
    if version is not None:
        if specifier is not None:
            raise BadRequest("give 'version' or 'specifier', not both")
        specifier = f"=={version}"
    if specifier is not None:
        if project is None:
            raise BadRequest("a version range needs a 'project'")
        try:
            parse_specifier(specifier)
        except PolicyError as exc:
            raise BadRequest(str(exc)) from None
    filename = _text(body, "filename", 255)
    if filename is not None and not is_safe_filename(filename):
        raise BadRequest(f"{filename[:80]!r} is not a distribution file name")
    sha256 = _text(body, "sha256", 64)
    if sha256 is not None:
        sha256 = sha256.lower()
        if not _SHA256.fullmatch(sha256):
            raise BadRequest("'sha256' must be 64 hexadecimal digits")
    if project is None and filename is None and sha256 is None:
        raise BadRequest("a block names a 'project', a 'filename' or a 'sha256'")
    reason = _text(body, "reason", MAX_REASON)
    if not reason:
        raise BadRequest("a block needs a 'reason' (it is shown to whoever is refused)")
    return NewBlock(
        index.id if index is not None else None,
        project,
        specifier,
        filename,
        sha256,
        " ".join(reason.split()),
        author,
    )


@dataclass(frozen=True, slots=True)
class _Scope:
    index: IndexRecord | None

    @property
    def name(self) -> str:
        return self.index.fullname if self.index is not None else "the whole server"

    @property
    def id(self) -> int | None:
        return self.index.id if self.index is not None else None


class BlockService:
    """Adding, listing and removing blocks; the guard holds them in memory."""

    def __init__(self, changes: ChangeFeed, guard: ReleaseGuard) -> None:
        self._changes = changes
        self._guard = guard

    def listed(self, index: IndexRecord | None) -> list[BlockRecord]:
        """The blocks made on ``index`` (None: the server-wide ones)."""
        scope = index.id if index is not None else None
        return [block for block in self._guard.blocks if block.index_id == scope]

    @staticmethod
    def permit(identity: Identity, index: IndexRecord | None) -> None:
        """Owner or root for an index's blocks; root for the server-wide ones."""
        if index is None:
            decision = acl.Decision(identity.user == acl.ROOT, "only root blocks server-wide")
        else:
            decision = acl.may_modify_index(identity.user, index.user)
        if not decision.allowed:
            if identity.anonymous:
                raise Unauthorized("blocks: authentication required")
            raise Forbidden(f"blocks: {decision.reason}")

    async def add(
        self, identity: Identity, index: IndexRecord | None, body: object, client: str | None
    ) -> BlockRecord:
        self.permit(identity, index)
        block = parse_block(body, index, identity.user or "")
        if len(self._guard.blocks) >= MAX_BLOCKS:
            raise BadRequest(f"the server holds {MAX_BLOCKS} blocks already")
        scope = _Scope(index)
        entry = AuditEntry(identity.user, "block-add", scope.name, client=client)
        block_id = await self._changes.write(_add, block, entry)
        await self._guard.load()  # this worker at once; the others through the changelog
        for record in self._guard.blocks:
            if record.id == block_id:
                return record
        raise NotFound(f"block {block_id} was removed meanwhile")

    async def remove(
        self, identity: Identity, index: IndexRecord | None, block_id: int, client: str | None
    ) -> BlockRecord:
        self.permit(identity, index)
        scope = _Scope(index)
        found = next(
            (b for b in self._guard.blocks if b.id == block_id and b.index_id == scope.id), None
        )
        if found is None:
            raise NotFound(f"no block {block_id} on {scope.name}")
        entry = AuditEntry(identity.user, "block-remove", scope.name, client=client)
        await self._changes.write(_remove, found, entry)
        await self._guard.load()
        return found


def _add(tx: Transaction, block: NewBlock, entry: AuditEntry) -> int:
    block_id = block_rows.add(tx.conn, block, time.time())
    tx.log(block.index_id, block.project, ChangeKind.BLOCKS)
    detail = {
        "id": block_id,
        "project": block.project,
        "specifier": block.specifier,
        "filename": block.filename,
        "sha256": block.sha256,
        "reason": block.reason,
    }
    audit_rows.append(
        tx.conn, AuditEntry(entry.actor, entry.action, entry.target, detail, entry.client)
    )
    return block_id


def _remove(tx: Transaction, block: BlockRecord, entry: AuditEntry) -> None:
    if not block_rows.remove(tx.conn, block.id):
        raise NotFound(f"no block {block.id}")
    tx.log(block.index_id, block.project, ChangeKind.BLOCKS)
    detail = {
        "id": block.id,
        "project": block.project,
        "reason": block.reason,
        "source": block.source,
    }
    audit_rows.append(
        tx.conn, AuditEntry(entry.actor, entry.action, entry.target, detail, entry.client)
    )
