"""Releases on a stage through ReleaseService: yank and un-yank, remove a version or a project,
and what the pages and devpi's JSON show afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.services.auth import ANONYMOUS, Forbidden, Unauthorized
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import NotFound
from cheeseboard.store.records import IndexRecord
from tests.support.packages import build_sdist, build_wheel
from tests.unit.services.support import ALICE, filenames, new_user, stage, upload

BASE_URL = "http://example.test/"


async def _two_versions(services: AppServices, tmp_path: Path, **config: object) -> IndexRecord:
    dev = await stage(services, **config)
    for version in ("1.0", "2.0"):
        await upload(services, dev, build_wheel(tmp_path, "private-pkg", version))
        await upload(services, dev, build_sdist(tmp_path, "private-pkg", version))
    return dev


async def test_versions_and_version_data(services: AppServices, tmp_path: Path) -> None:
    dev = await _two_versions(services, tmp_path)
    config = await services.releases.project_config(dev, "private-pkg", BASE_URL)
    assert list(config) == ["1.0", "2.0"]
    data = await services.releases.version_data(dev, "Private_Pkg", "2.0", BASE_URL)
    assert data["name"] == "private-pkg" and data["version"] == "2.0"
    hrefs = sorted(link["href"].rsplit("/", 1)[1] for link in data["+links"])
    assert hrefs == ["private_pkg-2.0-py3-none-any.whl", "private_pkg-2.0.tar.gz"]
    assert {link["log"][0]["who"] for link in data["+links"]} == {"alice"}
    versions = await services.releases.project_versions(dev, "private-pkg", None)
    assert [entry.version for entry in versions.versions] == ["2.0", "1.0"]
    assert versions.selected.version == "2.0"
    with pytest.raises(NotFound, match=r"The version 3\.0 of project private-pkg does not exist"):
        await services.releases.version_data(dev, "private-pkg", "3.0", BASE_URL)


async def test_yank_marks_the_files_and_unyank_clears_them(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await _two_versions(services, tmp_path)
    await services.pages.project_page(dev, "private-pkg")  # cached before the change
    await services.releases.yank(ALICE, dev, "private-pkg", "2.0", "broken build")
    page = await services.pages.project_page(dev, "private-pkg")
    yanked = {link.filename: link.yanked for link in getattr(page.page, "files", ())}
    assert yanked["private_pkg-2.0.tar.gz"] == "broken build"
    assert yanked["private_pkg-2.0-py3-none-any.whl"] == "broken build"
    assert yanked["private_pkg-1.0.tar.gz"] is None
    assert b'data-yanked="broken build"' in page.render("html", False).body
    versions = await services.releases.project_versions(dev, "private-pkg", None)
    assert versions.selected.version == "1.0"  # the latest that is not yanked
    await services.releases.yank(ALICE, dev, "private-pkg", "2.0", None)
    page = await services.pages.project_page(dev, "private-pkg")
    assert all(link.yanked is None for link in getattr(page.page, "files", ()))


async def test_remove_a_version(services: AppServices, tmp_path: Path) -> None:
    dev = await _two_versions(services, tmp_path)
    await services.pages.project_page(dev, "private-pkg")
    await services.releases.delete_version(ALICE, dev, "private-pkg", "1.0", force=False)
    page = await services.pages.project_page(dev, "private-pkg")
    assert sorted(filenames(page)) == ["private_pkg-2.0-py3-none-any.whl", "private_pkg-2.0.tar.gz"]
    with pytest.raises(NotFound):
        await services.files.lookup(dev, "private_pkg-1.0.tar.gz")


async def test_remove_a_project(services: AppServices, tmp_path: Path) -> None:
    dev = await _two_versions(services, tmp_path)
    await services.pages.project_page(dev, "private-pkg")
    await services.releases.delete_project(ALICE, dev, "private-pkg", force=False)
    with pytest.raises(NotFound):
        await services.pages.project_page(dev, "private-pkg")
    listing = await services.pages.project_list(dev)
    assert getattr(listing.page, "names", None) == ()


async def test_remove_a_single_file(services: AppServices, tmp_path: Path) -> None:
    dev = await _two_versions(services, tmp_path)
    record = await services.files.lookup(dev, "private_pkg-1.0.tar.gz")
    await services.releases.delete_file(ALICE, dev, record, force=False)
    names = filenames(await services.pages.project_page(dev, "private-pkg"))
    assert "private_pkg-1.0.tar.gz" not in names and len(names) == 3


async def test_non_volatile_index_needs_force_and_the_owner(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await _two_versions(services, tmp_path, volatile=False, acl_upload="alice,bob")
    bob = await new_user(services, "bob")
    with pytest.raises(Forbidden, match="non-volatile; use force"):
        await services.releases.delete_version(ALICE, dev, "private-pkg", "1.0", force=False)
    with pytest.raises(Forbidden, match="only the owner or root may force"):
        await services.releases.delete_version(bob, dev, "private-pkg", "1.0", True)
    await services.releases.delete_version(ALICE, dev, "private-pkg", "1.0", force=True)
    assert len(filenames(await services.pages.project_page(dev, "private-pkg"))) == 2


async def test_strangers_may_not_yank_or_remove(services: AppServices, tmp_path: Path) -> None:
    dev = await _two_versions(services, tmp_path)
    with pytest.raises(Unauthorized):
        await services.releases.yank(ANONYMOUS, dev, "private-pkg", "1.0", "")
    mallory = await new_user(services, "mallory")
    with pytest.raises(Forbidden):
        await services.releases.delete_project(mallory, dev, "private-pkg", True)
    assert len(filenames(await services.pages.project_page(dev, "private-pkg"))) == 4
