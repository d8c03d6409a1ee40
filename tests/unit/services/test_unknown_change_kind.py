"""A changelog row of a kind this version does not know (a newer node wrote it during a rolling
upgrade): catching up applies it as a change to everything, with one warning, and never stops."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from cheeseboard.core import metrics
from cheeseboard.core.changes import ChangeKind
from cheeseboard.services.container import AppServices
from cheeseboard.settings import Settings
from cheeseboard.store import accounts, changelog_rows
from cheeseboard.store.schema import changelog
from cheeseboard.store.serial import SerialFile
from tests.support.packages import build_wheel
from tests.unit.services.support import filenames, stage, upload

FUTURE = "from-the-future"


def test_an_unknown_stored_kind_reads_as_a_change_to_everything() -> None:
    kind = ChangeKind(FUTURE)
    assert not kind.known and kind.value == FUTURE
    assert kind.concerns_accounts and kind.concerns_indexes and kind.changes_project_lists
    assert not kind.only_caches_bytes
    assert kind not in list(ChangeKind)  # not a member: the known kinds stay as they are
    assert all(known.known for known in ChangeKind)
    assert ChangeKind("upload") is ChangeKind.UPLOAD
    with pytest.raises(ValueError):
        ChangeKind("")


def _newer_node_writes(conn: Connection, user: str, index_id: int) -> int:
    """What a newer node might commit: rows of ours changed without a kind we know."""
    accounts.create_user(conn, user, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")
    accounts.update_index_config(
        conn, index_id, {"type": "stage", "bases": [], "volatile": True, "title": "newer"}
    )
    serial = 0
    for _ in range(2):
        result = conn.execute(insert(changelog).values(created=time.time(), kind=FUTURE))
        serial = int(result.inserted_primary_key[0])  # type: ignore[index]
    return serial


async def test_catch_up_over_an_unknown_kind_drops_every_cache(
    services: AppServices,
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dev = await stage(services)
    await upload(services, dev, build_wheel(tmp_path, "private-pkg", "1.0"))
    assert filenames(await services.pages.project_page(dev, "private-pkg"))  # cached now
    serial = await services.db.write(_newer_node_writes, "zed", dev.id)
    rows = await services.db.read(changelog_rows.changes_since, serial - 2)
    assert [row.kind.value for row in rows] == [FUTURE, FUTURE]
    announced = SerialFile(settings.layout.serial)  # the newer node publishing its commit
    try:
        announced.advance(serial)
    finally:
        announced.close()
    assert services.changes.behind()
    with caplog.at_level(logging.WARNING, logger="cheeseboard.services.changes"):
        await services.changes.catch_up()
    assert services.changes.applied == serial and not services.changes.behind()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once, though two rows had the kind
    assert FUTURE in warnings[0]
    # Everything was reloaded or dropped: accounts, indexes and pages.
    assert services.auth.user("zed") is not None
    index = services.indexes.get("alice", "dev")
    assert index is not None and index.config["title"] == "newer"
    builds = metrics.counters["page_builds_total"]
    assert filenames(await services.pages.project_page(index, "private-pkg"))
    assert metrics.counters["page_builds_total"] == builds + 1
