"""Index configuration through AccountService: what a change does to the registry and pages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cheeseboard.services.accounts import Conflict
from cheeseboard.services.auth import Forbidden
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import BadRequest, NotFound
from tests.support.packages import build_wheel
from tests.support.upstream import UpstreamServer
from tests.unit.services.support import ALICE, ROOT, filenames, new_user, stage, upload


async def test_created_index_has_devpi_defaults(services: AppServices) -> None:
    dev = await stage(services, bases="root/pypi")
    assert dev.type == "stage" and dev.fullname == "alice/dev"
    assert dev.config["bases"] == ["root/pypi"]
    assert dev.config["acl_upload"] == ["alice"]
    assert services.indexes.by_name("alice/dev") == dev
    with pytest.raises(Conflict, match="index 'alice/dev' exists"):
        await stage(services, bases="root/pypi")


async def test_invalid_configs_are_refused(services: AppServices) -> None:
    await stage(services)
    with pytest.raises(BadRequest):
        await services.accounts.create_index(ROOT, "alice", "x", {"bases": "nobody/nothing"})
    with pytest.raises(BadRequest):
        await services.accounts.patch_index(ROOT, "alice", "dev", ["bases=alice/dev"])
    with pytest.raises(BadRequest, match="would not change anything"):
        await services.accounts.patch_index(ALICE, "alice", "dev", ["volatile=True"], True)
    assert services.indexes.get("alice", "x") is None


async def test_patch_updates_the_registry_and_the_view(services: AppServices) -> None:
    await stage(services)
    patched = await services.accounts.patch_index(ALICE, "alice", "dev", ["title=Dev builds"])
    assert patched.config["title"] == "Dev builds"
    assert services.indexes.get("alice", "dev") == patched
    view = await services.accounts.index_view(patched, with_projects=True)
    assert view["title"] == "Dev builds" and view["projects"] == []


async def test_adding_and_removing_a_base_changes_the_stage_page(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    dev = await stage(services)
    with pytest.raises(NotFound):
        await services.pages.project_page(dev, "lib-a")
    dev = await services.accounts.patch_index(ALICE, "alice", "dev", ["bases+=root/pypi"])
    assert len(filenames(await services.pages.project_page(dev, "lib-a"))) == 2
    dev = await services.accounts.patch_index(ALICE, "alice", "dev", ["bases-=root/pypi"])
    with pytest.raises(NotFound):
        await services.pages.project_page(dev, "lib-a")


async def test_acl_upload_change_lets_another_user_upload(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await stage(services)
    bob = await new_user(services, "bob")
    wheel = build_wheel(tmp_path, "private-pkg", "1.0")
    with pytest.raises(Forbidden):
        await upload(services, dev, wheel, identity=bob)
    dev = await services.accounts.patch_index(ALICE, "alice", "dev", ["acl_upload+=bob"])
    assert (await upload(services, dev, wheel, identity=bob)).stored


async def test_only_root_points_a_mirror_elsewhere(services: AppServices) -> None:
    await stage(services)
    with pytest.raises(Forbidden):
        await services.accounts.patch_index(ALICE, "root", "pypi", ["mirror_url=http://x.test/"])
    with pytest.raises(Forbidden):
        await services.accounts.create_index(
            ALICE, "alice", "mine", {"type": "mirror", "mirror_url": "http://x.test/simple/"}
        )


async def test_mirror_expiry_from_the_index_config(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    """``mirror_cache_expiry`` on the index applies at once: pages older than it are fetched
    again (here: a page checked 1 s ago with an expiry of 1 s)."""
    pypi = await services.accounts.patch_index(ROOT, "root", "pypi", ["mirror_cache_expiry=1"])
    assert pypi.config["mirror_cache_expiry"] == 1
    await services.pages.project_page(pypi, "app")
    await asyncio.sleep(1.05)
    await services.pages.project_page(pypi, "app")
    assert html_upstream.count("/simple/app/") == 2


async def test_delete_index(services: AppServices, tmp_path: Path) -> None:
    base = await stage(services, "base")
    await stage(services, "dev", bases="alice/base")
    await upload(services, base, build_wheel(tmp_path, "private-pkg", "1.0"))
    await services.accounts.delete_index(ALICE, "alice", "base", force=True)
    assert services.indexes.get("alice", "base") is None
    dev = services.accounts.get_index("alice", "dev")
    assert dev.config["bases"] == []  # force took it out of the bases that listed it
    with pytest.raises(NotFound):
        await services.pages.project_page(dev, "private-pkg")
    with pytest.raises(Forbidden, match="non-volatile, cannot delete"):
        await services.accounts.delete_index(ROOT, "root", "pypi")
