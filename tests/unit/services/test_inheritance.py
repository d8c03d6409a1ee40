"""Stage pages merge their bases' files in resolution order (docs/devpi-protocol.md §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import NotFound
from tests.support.packages import Dist, build_wheel
from tests.support.upstream import UpstreamServer
from tests.unit.services.support import ROOT, filenames, stage, upload


async def test_stage_on_root_pypi_serves_mirror_and_own_projects(
    services: AppServices,
    html_upstream: UpstreamServer,
    tmp_path: Path,
    dists: dict[str, list[Dist]],
) -> None:
    dev = await stage(services, bases="root/pypi")
    own = build_wheel(tmp_path, "private-pkg", "1.0")
    await upload(services, dev, own)
    assert filenames(await services.pages.project_page(dev, "private-pkg")) == [own.filename]
    inherited = await services.pages.project_page(dev, "lib-a")
    assert sorted(filenames(inherited)) == sorted(d.filename for d in dists["lib-a"])
    # The stage's links point at the files where they live: on root/pypi.
    assert all(link.path.startswith("root/pypi/") for link in getattr(inherited.page, "files", ()))
    assert html_upstream.count("/simple/lib-a/") == 1


async def test_stage_without_bases_does_not_see_the_mirror(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    dev = await stage(services)
    with pytest.raises(NotFound, match="no project 'lib-a' on alice/dev"):
        await services.pages.project_page(dev, "lib-a")
    assert html_upstream.count("/simple/lib-a/") == 0


async def test_a_stage_inherits_from_another_stage_and_its_own_file_wins(
    services: AppServices, tmp_path: Path
) -> None:
    base = await stage(services, "base")
    dev = await stage(services, "dev", bases="alice/base")
    old = build_wheel(tmp_path / "base", "private-pkg", "1.0", summary="from base")
    await upload(services, base, old)
    await upload(services, base, build_wheel(tmp_path, "private-pkg", "0.9"))
    page = await services.pages.project_page(dev, "private-pkg")
    assert sorted(filenames(page)) == sorted([old.filename, "private_pkg-0.9-py3-none-any.whl"])
    mine = build_wheel(tmp_path / "dev", "private-pkg", "1.0", summary="from dev")
    await upload(services, dev, mine)
    page = await services.pages.project_page(dev, "private-pkg")
    by_name = {link.filename: link for link in getattr(page.page, "files", ())}
    assert by_name[mine.filename].sha256 == mine.sha256  # the first index in the order wins
    assert by_name[mine.filename].path.startswith("alice/dev/")
    assert by_name["private_pkg-0.9-py3-none-any.whl"].path.startswith("alice/base/")


async def test_base_upload_shows_through_at_once(services: AppServices, tmp_path: Path) -> None:
    """A cached stage page is dropped when a base gets a file of the project."""
    base = await stage(services, "base")
    dev = await stage(services, "dev", bases="alice/base")
    await upload(services, base, build_wheel(tmp_path, "private-pkg", "1.0"))
    assert len(filenames(await services.pages.project_page(dev, "private-pkg"))) == 1
    await upload(services, base, build_wheel(tmp_path, "private-pkg", "2.0"))
    assert len(filenames(await services.pages.project_page(dev, "private-pkg"))) == 2


async def test_stage_project_hides_the_mirror_unless_whitelisted(
    services: AppServices,
    html_upstream: UpstreamServer,
    tmp_path: Path,
    dists: dict[str, list[Dist]],
) -> None:
    """A project a stage holds is served from the stage only (dependency confusion), until
    ``mirror_whitelist`` names it: then both merge, the stage's files first."""
    dev = await stage(services, bases="root/pypi", allow_upstream_names=True)
    mine = build_wheel(tmp_path, "app", "9.0")
    await upload(services, dev, mine)
    assert filenames(await services.pages.project_page(dev, "app")) == [mine.filename]
    await services.accounts.patch_index(ROOT, "alice", "dev", ["mirror_whitelist+=app"])
    merged = filenames(await services.pages.project_page(dev, "app"))
    assert merged[0] == mine.filename
    assert sorted(merged[1:]) == sorted(d.filename for d in dists["app"])


async def test_stage_project_list_includes_the_bases(services: AppServices, tmp_path: Path) -> None:
    base = await stage(services, "base")
    dev = await stage(services, "dev", bases="alice/base")
    await upload(services, base, build_wheel(tmp_path, "from-base", "1.0"))
    await upload(services, dev, build_wheel(tmp_path, "from-dev", "1.0"))
    listing = await services.pages.project_list(dev)
    assert getattr(listing.page, "names", ()) == ("from-base", "from-dev")
    base_listing = await services.pages.project_list(base)
    assert getattr(base_listing.page, "names", ()) == ("from-base",)
