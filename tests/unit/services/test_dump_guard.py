"""ops/dump: the supply-chain guard's state (blocks, advisories, the cooldown settings and their
exemptions) survives an export and an import, and the imported store's guard enforces it."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cheeseboard.core.changes import ChangeKind
from cheeseboard.ops.advisories import import_offline
from cheeseboard.ops.dump.export import export_store
from cheeseboard.ops.dump.format import HEADER, RECORDS, DumpError
from cheeseboard.ops.dump.importer import CheeseboardDump, ImportReport, import_dump
from cheeseboard.services.container import AppServices, open_services
from cheeseboard.settings import DataDirLayout, Settings
from cheeseboard.store import block_rows, changelog_rows
from cheeseboard.store.db import engine_for
from cheeseboard.store.schema import advisories, indexes
from tests.support.packages import Dist
from tests.unit.services.support import ALICE, ROOT, filenames, stage, upload

EXEMPT = {"entry": "lib-a==1.0", "reason": "needed for the release", "expires": "2031-01-01T00:00Z"}
MAL = {
    "id": "MAL-2024-7",
    "modified": "2024-05-01T10:00:00Z",
    "summary": "Malicious code in lib-c (PyPI)",
    "aliases": ["GHSA-xxxx-yyyy-zzzz"],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "lib-c"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
        }
    ],
}


def _sdist(dists: dict[str, list[Dist]], name: str) -> Dist:
    return next(d for d in dists[name] if d.kind != "wheel")


async def _guarded_store(
    services: AppServices, settings: Settings, dists: dict[str, list[Dist]], tmp_path: Path
) -> None:
    """alice/dev with a cooldown, a cut-off and an exemption; lib-a and lib_b uploaded; a
    server-wide block of lib-a's sdist, a block of lib-b<2 on alice/dev, a MAL- advisory."""
    dev = await stage(
        services,
        min_release_age="7d",
        release_cutoff="2030-01-01T00:00:00Z",
        release_age_exempt=[EXEMPT],
    )
    for dist in dists["lib-a"] + dists["lib_b"]:
        await upload(services, dev, dist)
    sdist = _sdist(dists, "lib-a").filename
    await services.blocks.add(ROOT, None, {"filename": sdist, "reason": "bad sdist"}, None)
    body = {"project": "lib-b", "specifier": "<2", "reason": "compromised"}
    await services.blocks.add(ALICE, dev, body, None)
    feed = tmp_path / "osv.json"
    feed.write_text(json.dumps(MAL))
    import_offline(str(feed), settings.db_url, None)
    await services.guard.load()


def _state(datadir: Path) -> dict[str, Any]:
    """The rows the guard works from, without database ids."""
    engine = engine_for(DataDirLayout(datadir).sqlite_url)
    try:
        with engine.connect() as conn:
            blocks = [
                {k: v for k, v in vars_of(b).items() if k not in ("id", "index_id")}
                for b in block_rows.load_all(conn)
            ]
            rows = [dict(r._mapping) for r in conn.execute(select(advisories))]
            configs = {r.name: r.config for r in conn.execute(select(indexes))}
            kinds = [c.kind for c in changelog_rows.changes_since(conn, 0)]
    finally:
        engine.dispose()
    return {"blocks": blocks, "advisories": rows, "dev": configs.get("dev"), "kinds": kinds}


def vars_of(block: block_rows.BlockRecord) -> dict[str, Any]:
    return {name: getattr(block, name) for name in block.__slots__}


def _export(datadir: Path, tmp_path: Path) -> Path:
    dump = tmp_path / "dump"
    export_store(datadir, dump)
    return dump


async def test_round_trip_keeps_blocks_advisories_and_the_cooldown(
    services: AppServices,
    settings: Settings,
    datadir: Path,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
) -> None:
    await _guarded_store(services, settings, dists, tmp_path)
    dev = services.indexes.by_name("alice/dev")
    assert dev is not None
    before = filenames(await services.pages.project_page(dev, "lib-a"))
    sdist = _sdist(dists, "lib-a").filename
    assert sdist not in before and before  # the server-wide block hides it
    assert filenames(await services.pages.project_page(dev, "lib-b")) == []  # both uploads
    old = _state(datadir)
    assert len(old["blocks"]) == 3 and len(old["advisories"]) == 1

    dump = _export(datadir, tmp_path)
    kinds = [json.loads(line)["kind"] for line in (dump / RECORDS).read_bytes().splitlines()]
    assert kinds.count("block") == 3 and kinds.count("advisory") == 1
    target = tmp_path / "restored"
    report = import_dump(CheeseboardDump(dump), target)
    assert report.created["block"] == 3 and report.created["advisory"] == 1

    new = _state(target)
    assert new["blocks"] == old["blocks"]
    assert {b["index"] for b in new["blocks"]} == {None, "alice/dev"}
    assert new["advisories"] == old["advisories"]
    assert new["dev"] == old["dev"]
    (exemption,) = new["dev"]["release_age_exempt"]
    assert exemption["author"] == "root" and exemption["expires"] == "2031-01-01T00:00:00Z"
    assert exemption["added"] == old["dev"]["release_age_exempt"][0]["added"]
    assert new["dev"]["min_release_age"] == 7 * 86400
    assert new["dev"]["release_cutoff"] == "2030-01-01T00:00:00Z"
    # One "import" change: a kind no subscriber knows, so every cache (blocks included) reloads.
    assert new["kinds"] == ["import"] and not ChangeKind("import").known

    async with open_services(Settings(datadir=target, offline=True)) as restored:
        assert len(restored.guard.blocks) == 3
        restored_dev = restored.indexes.by_name("alice/dev")
        assert restored_dev is not None
        assert filenames(await restored.pages.project_page(restored_dev, "lib-a")) == before
        assert filenames(await restored.pages.project_page(restored_dev, "lib-b")) == []
        assert {b.source for b in restored.guard.blocks} == {"manual", "osv:MAL-2024-7"}


async def test_merge_adds_them_once_and_tells_running_servers(
    services: AppServices,
    settings: Settings,
    datadir: Path,
    template_datadir: Path,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
) -> None:
    await _guarded_store(services, settings, dists, tmp_path)
    dump = _export(datadir, tmp_path)
    target = tmp_path / "target"
    shutil.copytree(template_datadir, target)
    serial = len(_state(target)["kinds"])

    async with open_services(Settings(datadir=target, offline=True)) as running:
        assert running.guard.blocks == []
        report = import_dump(CheeseboardDump(dump), target, merge=True)
        assert report.created["block"] == 3 and report.created["advisory"] == 1
        await running.changes.catch_up()  # as the serial file or PostgreSQL would wake it
        assert len(running.guard.blocks) == 3
    merged = _state(target)
    assert merged["blocks"] == _state(datadir)["blocks"]
    assert {ChangeKind.BLOCKS, ChangeKind.ADVISORIES} <= set(merged["kinds"][serial:])

    again = import_dump(CheeseboardDump(dump), target, merge=True)
    assert "block" not in again.created and "advisory" not in again.created
    assert sum(item.startswith(("block ", "advisory ")) for item in again.kept) == 4
    latest = _state(target)
    assert latest["blocks"] == merged["blocks"] and latest["advisories"] == merged["advisories"]
    assert ChangeKind.BLOCKS not in latest["kinds"][len(merged["kinds"]) :]


def _rewrite(dump: Path, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Rewrite the records and fix the header up, as a dump written that way would have it."""
    records = [json.loads(line) for line in (dump / RECORDS).read_bytes().splitlines()]
    lines = [json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in change(records)]
    data = "".join(lines).encode()
    (dump / RECORDS).write_bytes(data)
    header = json.loads((dump / HEADER).read_text())
    header.update(records=len(lines), records_sha256=hashlib.sha256(data).hexdigest())
    (dump / HEADER).write_text(json.dumps(header))


async def test_a_dump_from_before_the_guard_still_imports(
    services: AppServices,
    settings: Settings,
    datadir: Path,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
) -> None:
    await _guarded_store(services, settings, dists, tmp_path)
    dump = _export(datadir, tmp_path)
    older = ("audit", "advisory", "block")
    _rewrite(dump, lambda records: [r for r in records if r["kind"] not in older])
    report = import_dump(CheeseboardDump(dump), tmp_path / "restored")
    assert isinstance(report, ImportReport) and report.created["file"] == 4
    state = _state(tmp_path / "restored")
    assert state["blocks"] == [] and state["advisories"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"index": "alice/nothing"}, "no index 'alice/nothing' in the dump"),
        ({"project": None, "filename": None, "sha256": None}, "names a project, a filename"),
        ({"project": "Lib_B"}, "not normalized"),
        ({"sha256": "abc"}, "not a sha256"),
        ({"reason": ""}, "needs a reason"),
        ({"author": 7}, "author is text"),
    ],
)
async def test_a_bad_block_record_is_refused_with_its_line(
    services: AppServices,
    settings: Settings,
    datadir: Path,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
    change: dict[str, Any],
    message: str,
) -> None:
    await _guarded_store(services, settings, dists, tmp_path)
    dump = _export(datadir, tmp_path)

    def spoil(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**r, **change} if r.get("index") == "alice/dev" and r["kind"] == "block" else r
            for r in records
        ]

    _rewrite(dump, spoil)
    with pytest.raises(DumpError, match=r"records\.jsonl line \d+: block ") as caught:
        import_dump(CheeseboardDump(dump), tmp_path / "restored")
    assert message in str(caught.value)
    assert not (tmp_path / "restored").exists()
