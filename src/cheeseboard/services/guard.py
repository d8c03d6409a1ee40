"""The supply-chain guard at serving time: which files each index may offer right now.

The decisions are core/release_policy.py's; this service knows which rules and blocks apply
where. For an index ``X`` serving a file that comes from index ``O`` (``O`` is ``X`` or one of
its bases):

- the time rules (``min_release_age``, ``release_cutoff``) of every index in ``X``'s resolution
  order that inherits ``O`` (``O`` included when it is a mirror; a stage's own uploads are not
  held by its own rules);
- the blocks made server-wide, and those made on any index ``I`` in ``X``'s order that offers
  ``O``'s files (``O`` is ``I`` or one of ``I``'s bases): a block follows what it blocks down the
  inheritance, and never reaches an index that does not inherit it.

Everything is worked out once per index after a change (a ``Plan``) and kept in memory: pages
and files ask synchronously, so the hot path (http/hot.py) stays free of the database. An index
that no rule or block reaches has no plan, and costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import parse_dist_filename
from cheeseboard.core.names import normalize_project_name
from cheeseboard.core.pages import FileLink, ProjectPage, collect_versions
from cheeseboard.core.release_policy import (
    Block,
    BlockSet,
    Held,
    PolicyError,
    TimeRule,
    Verdict,
    judge,
    parse_specifier,
    rule_of,
    upload_seconds,
)
from cheeseboard.services.errors import Withheld
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.store import block_rows
from cheeseboard.store.block_rows import BlockRecord
from cheeseboard.store.db import Database
from cheeseboard.store.records import Change, FileRecord, IndexRecord

log = logging.getLogger(__name__)

OrderOf = Callable[[IndexRecord], Sequence[IndexRecord]]


def _block(record: BlockRecord) -> Block | None:
    try:
        specifier = parse_specifier(record.specifier)
    except PolicyError:
        log.warning("block %d has an invalid specifier %r: ignored", record.id, record.specifier)
        return None
    return Block(
        record.id,
        record.reason,
        project=record.project,
        specifier=specifier,
        filename=record.filename,
        sha256=record.sha256.lower() if record.sha256 else None,
    )


@dataclass(slots=True)
class Plan:
    """What applies to the files one index serves, by the index they come from."""

    index: str
    rules: dict[str, tuple[TimeRule, ...]]
    blocks: dict[str, BlockSet]  # made on indexes, by the origin they apply to
    everywhere: BlockSet  # server-wide blocks (one object shared by every plan)
    _empty: tuple[TimeRule, ...] = field(default=(), repr=False)

    def verdict(
        self,
        origin: str,
        project: str,
        version: str | None,
        filename: str,
        sha256: str | None,
        upload_time: str | None,
        now: float,
        as_of: float | None = None,
    ) -> Verdict:
        rules = self.rules.get(origin, self._empty)
        if as_of is not None:
            rules = (*rules, TimeRule(f"{self.index} as of", cutoff=as_of))
        blocks = self.everywhere.candidates(project, filename, sha256)
        scoped = self.blocks.get(origin)
        if scoped is not None:
            blocks += scoped.candidates(project, filename, sha256)
        return judge(
            project, version, filename, sha256, upload_seconds(upload_time), rules, blocks, now
        )

    def filter(
        self, page: ProjectPage, now: float, as_of: float | None = None
    ) -> tuple[ProjectPage, float | None]:
        """``page`` without the files held now (or as of ``as_of``), and when that may change."""
        kept: list[FileLink] = []
        recheck: float | None = None
        for link in page.files:
            origin = _origin(link.path)
            verdict = self.verdict(
                origin,
                page.name,
                link.version,
                link.filename,
                link.sha256,
                link.upload_time,
                as_of if as_of is not None else now,
                as_of,
            )
            if verdict.recheck_at is not None:
                recheck = (
                    verdict.recheck_at if recheck is None else min(recheck, verdict.recheck_at)
                )
            if verdict.held is None:
                kept.append(link)
        if len(kept) == len(page.files):
            return page, recheck
        return replace(page, files=tuple(kept), versions=collect_versions(kept)), recheck


def _project_of(filename: str) -> str:
    try:
        return parse_dist_filename(filename).project
    except ValueError:
        return normalize_project_name(filename.partition("-")[0])


def _origin(path: str) -> str:
    """``user/index`` of a file link's server-relative path."""
    user, _, rest = path.partition("/")
    return f"{user}/{rest.partition('/')[0]}"


class ReleaseGuard:
    """Blocks and time rules in memory, and the plan of each index."""

    def __init__(self, db: Database, registry: IndexRegistry, order_of: OrderOf) -> None:
        self._db = db
        self._registry = registry
        self._order_of = order_of
        self._records: list[BlockRecord] = []
        self._by_scope: dict[int | None, tuple[Block, ...]] = {}
        self._everywhere = BlockSet()
        self._plans: dict[int, Plan | None] = {}

    async def load(self) -> None:
        self._set_blocks(await self._db.read(block_rows.load_all))

    def _set_blocks(self, records: list[BlockRecord]) -> None:
        scoped: dict[int | None, list[Block]] = {}
        for record in records:
            block = _block(record)
            if block is not None:
                scoped.setdefault(record.index_id, []).append(block)
        self._records = records
        self._by_scope = {scope: tuple(blocks) for scope, blocks in scoped.items()}
        self._everywhere = BlockSet(self._by_scope.get(None, ()))
        self._plans.clear()

    async def on_change(self, change: Change) -> None:
        if change.kind is ChangeKind.BLOCKS or not change.kind.known:
            await self.load()
        elif change.kind.concerns_indexes:
            self._plans.clear()

    @property
    def blocks(self) -> list[BlockRecord]:
        return list(self._records)

    def plan(self, index: IndexRecord) -> Plan | None:
        """What applies to ``index``'s files; None when nothing does (the common case)."""
        try:
            return self._plans[index.id]
        except KeyError:
            pass
        plan = self._make_plan(index)
        self._plans[index.id] = plan
        return plan

    def _make_plan(self, index: IndexRecord) -> Plan | None:
        order = list(self._order_of(index))
        orders = {
            member.fullname: {ix.fullname for ix in self._order_of(member)} for member in order
        }
        rules = {member.fullname: rule_of(member.fullname, member.config) for member in order}
        everywhere = self._everywhere
        plan_rules: dict[str, tuple[TimeRule, ...]] = {}
        plan_blocks: dict[str, BlockSet] = {}
        for origin in order:
            name = origin.fullname
            applying = [
                rules[member.fullname]
                for member in order
                if name in orders[member.fullname]
                and not rules[member.fullname].empty
                and (member.fullname != name or member.type == "mirror")
            ]
            if applying:
                plan_rules[name] = tuple(applying)
            blocks = [
                block
                for member in order
                if name in orders[member.fullname]
                for block in self._by_scope.get(member.id, ())
            ]
            if blocks:
                plan_blocks[name] = BlockSet(blocks)
        if not plan_rules and not plan_blocks and not everywhere:
            return None
        return Plan(index.fullname, plan_rules, plan_blocks, everywhere)

    def withholds(self, index: IndexRecord, record: FileRecord, project: str | None = None) -> bool:
        """Whether a direct request for this file of ``index`` is refused now (for the hot path:
        then the route answers, saying why)."""
        return self.held(index, record, project) is not None

    def held(
        self, index: IndexRecord, record: FileRecord, project: str | None = None
    ) -> Held | None:
        """Why ``index`` may not hand out its file ``record`` now. A direct file URL names the
        file's own index, so that index's rules and blocks decide (``project`` defaults to the
        name in the file name)."""
        plan = self.plan(index)
        if plan is None:
            return None
        name = project if project is not None else _project_of(record.filename)
        return plan.verdict(
            index.fullname,
            name,
            record.version,
            record.filename,
            record.sha256,
            record.upload_time,
            time.time(),
        ).held

    def check_download(self, index: IndexRecord, record: FileRecord, project: str) -> None:
        """Raise Withheld when the guard refuses this file (the message says why)."""
        held = self.held(index, record, project)
        if held is not None:
            raise Withheld(held.message(record.filename))

    def needs_upload_times(self, mirror: IndexRecord) -> bool:
        """Whether some index judges this mirror's files by age (its own cooldown or cut-off,
        or one of an index inheriting it): then its pages wait for upload times."""
        for index in self._registry.all():
            plan = self.plan(index)
            if plan is not None and plan.rules.get(mirror.fullname):
                return True
        return False
