"""Which rules and blocks judge which files (services/guard.py), on real services in process.

Stage uploads are made now, so a one-hour cooldown holds them wherever it applies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import BadRequest, Withheld
from tests.support.packages import build_wheel
from tests.unit.services.support import ALICE, ROOT, filenames, stage, upload


async def _setup(app: AppServices, tmp_path: Path) -> tuple[str, str]:
    base = await stage(app, "base")
    await stage(app, "held", bases="alice/base", min_release_age="1h")
    one = build_wheel(tmp_path, "pkg", "1.0")
    two = build_wheel(tmp_path, "pkg", "2.0")
    await upload(app, base, one)
    await upload(app, base, two)
    return one.filename, two.filename


async def _names(app: AppServices, index: str) -> list[str]:
    user, _, name = index.partition("/")
    record = app.indexes.get(user, name)
    assert record is not None
    return filenames(await app.pages.project_page(record, "pkg"))


async def test_a_cooldown_holds_what_an_index_inherits_not_its_own_uploads(
    services: AppServices, tmp_path: Path
) -> None:
    one, two = await _setup(services, tmp_path)
    assert await _names(services, "alice/base") == [one, two]
    assert await _names(services, "alice/held") == []  # both uploaded just now
    own = await stage(services, "own", min_release_age="1h")
    await upload(services, own, build_wheel(tmp_path / "own", "pkg", "3.0"))
    assert await _names(services, "alice/own") == ["pkg-3.0-py3-none-any.whl"]


async def test_an_exemption_lets_one_version_through(services: AppServices, tmp_path: Path) -> None:
    one, _ = await _setup(services, tmp_path)
    await services.accounts.patch_index(
        ALICE, "alice", "held", ["release_age_exempt+=pkg==1.0; reason=needed today"]
    )
    assert await _names(services, "alice/held") == [one]
    stored = services.indexes.get("alice", "held")
    assert stored is not None
    entry = stored.config["release_age_exempt"][0]  # type: ignore[index]
    assert (entry["entry"], entry["author"], entry["reason"]) == (  # type: ignore[index]
        "pkg==1.0",
        "alice",
        "needed today",
    )


async def test_blocks_follow_inheritance_down_and_never_up(
    services: AppServices, tmp_path: Path
) -> None:
    one, two = await _setup(services, tmp_path)
    base = services.indexes.get("alice", "base")
    await stage(services, "child", bases="alice/base")
    await stage(services, "sibling", bases="alice/base")
    child = services.indexes.get("alice", "child")
    assert base is not None and child is not None
    body = {"project": "pkg", "version": "2.0", "reason": "broken"}
    await services.blocks.add(ALICE, child, body, None)
    assert await _names(services, "alice/child") == [one]
    assert await _names(services, "alice/sibling") == [one, two]  # not inheriting child
    assert await _names(services, "alice/base") == [one, two]
    block = await services.blocks.add(ALICE, base, {"project": "pkg", "reason": "all bad"}, None)
    assert await _names(services, "alice/sibling") == []
    record = services.files.peek_entry(base, two) or await services.files.lookup_entry(base, two)
    with pytest.raises(Withheld, match="blocked: all bad"):
        services.guard.check_download(base, record[0], record[1])
    await services.blocks.remove(ALICE, base, block.id, None)
    assert await _names(services, "alice/sibling") == [one, two]


async def test_server_wide_blocks_are_roots_and_apply_everywhere(
    services: AppServices, tmp_path: Path
) -> None:
    one, two = await _setup(services, tmp_path)
    with pytest.raises(Forbidden):
        await services.blocks.add(ALICE, None, {"sha256": "a" * 64, "reason": "x"}, None)
    with pytest.raises(Unauthorized):
        await services.blocks.add(Identity(None), None, {"project": "pkg", "reason": "x"}, None)
    base = services.indexes.get("alice", "base")
    assert base is not None
    record, _ = await services.files.lookup_entry(base, two)
    assert record.sha256 is not None
    await services.blocks.add(ROOT, None, {"sha256": record.sha256, "reason": "bad hash"}, None)
    assert await _names(services, "alice/base") == [one]
    assert [b.reason for b in services.blocks.listed(None)] == ["bad hash"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"project": "pkg"}, "needs a 'reason'"),
        ({"reason": "x"}, "names a 'project'"),
        ({"project": "pkg", "specifier": "=>1", "reason": "x"}, "PEP 440"),
        ({"specifier": "==1", "reason": "x"}, "needs a 'project'"),
        ({"sha256": "xyz", "reason": "x"}, "64 hexadecimal"),
        ({"filename": "../etc/passwd", "reason": "x"}, "not a distribution file name"),
        ({"project": "pkg", "reason": "x", "colour": "red"}, "unknown block fields"),
        ({"project": "pkg", "reason": "x" * 2000}, "at most 1000"),
        (["pkg"], "JSON object"),
    ],
)
async def test_bad_blocks_are_refused_with_a_reason(
    services: AppServices, body: object, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        await services.blocks.add(ROOT, None, body, None)
