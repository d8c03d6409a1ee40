"""The change serial: every committed write moves it, reads and refused writes do not; other
workers learn of writes through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.services.container import AppServices, open_services
from cheeseboard.services.errors import BadRequest
from cheeseboard.settings import Settings
from tests.support.packages import build_wheel
from tests.unit.services.support import ALICE, ROOT, filenames, mirror, stage, upload


async def test_each_write_moves_the_serial(services: AppServices, tmp_path: Path) -> None:
    serials = [services.changes.serial]
    dev = await stage(services)  # a user and an index: two changes
    serials.append(services.changes.serial)
    await upload(services, dev, build_wheel(tmp_path, "private-pkg", "1.0"))
    serials.append(services.changes.serial)
    await services.releases.yank(ALICE, dev, "private-pkg", "1.0", "")
    serials.append(services.changes.serial)
    await services.accounts.patch_index(ALICE, "alice", "dev", ["title=t"])
    serials.append(services.changes.serial)
    await services.pages.project_page(mirror(services), "app")  # a mirror page stored
    serials.append(services.changes.serial)
    assert serials == sorted(set(serials)), serials
    assert serials[1] == serials[0] + 2
    assert services.changes.applied == services.changes.serial
    assert not services.changes.behind()


async def test_reads_and_refused_writes_leave_the_serial(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await stage(services)
    await upload(services, dev, build_wheel(tmp_path, "private-pkg", "1.0"))
    serial = services.changes.serial
    await services.pages.project_page(dev, "private-pkg")
    await services.pages.project_list(dev)
    await services.releases.project_config(dev, "private-pkg", "http://x.test/")
    services.accounts.all_users(ROOT)
    with pytest.raises(BadRequest):
        await services.accounts.patch_index(ALICE, "alice", "dev", ["bases=alice/dev"])
    assert services.changes.serial == serial


async def test_a_second_worker_sees_the_first_ones_writes(
    services: AppServices, settings: Settings, tmp_path: Path
) -> None:
    """Two service sets over one data directory, as two worker processes have: the second
    catches up through the serial and drops what it had cached."""
    dev = await stage(services)
    await upload(services, dev, build_wheel(tmp_path, "private-pkg", "1.0"))
    async with open_services(settings) as other:
        other_dev = other.indexes.get("alice", "dev")
        assert other_dev is not None
        assert len(filenames(await other.pages.project_page(other_dev, "private-pkg"))) == 1
        await upload(services, dev, build_wheel(tmp_path, "private-pkg", "2.0"))
        assert other.changes.behind()
        await other.changes.catch_up()
        assert other.changes.applied == services.changes.serial
        assert len(filenames(await other.pages.project_page(other_dev, "private-pkg"))) == 2
        await services.accounts.patch_index(ALICE, "alice", "dev", ["title=from the first"])
        await other.changes.catch_up()
        title = other.accounts.get_index("alice", "dev").config["title"]
        assert title == "from the first"
