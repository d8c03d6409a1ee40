"""Uploads to a stage index through UploadService, and the stage's pages listing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.services.auth import ANONYMOUS, Forbidden, Unauthorized
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import NotFound
from cheeseboard.services.uploads import UploadConflict, UploadRefused
from cheeseboard.services.upstream_names import UpstreamNameShadowed
from tests.support.packages import build_sdist, build_wheel
from tests.unit.services.support import ROOT, filenames, mirror, new_user, stage, upload


async def test_upload_is_stored_and_listed(services: AppServices, tmp_path: Path) -> None:
    dev = await stage(services)
    wheel = build_wheel(tmp_path, "private-pkg", "1.0", requires_python=">=3.9")
    uploaded = await upload(services, dev, wheel)
    assert (uploaded.project, uploaded.version, uploaded.stored) == ("private-pkg", "1.0", True)
    assert uploaded.sha256 == wheel.sha256
    cached = await services.pages.project_page(dev, "private-pkg")
    assert filenames(cached) == [wheel.filename]
    link = getattr(cached.page, "files", ())[0]
    assert (link.sha256, link.size, link.requires_python) == (wheel.sha256, wheel.size, ">=3.9")
    record = await services.files.lookup(dev, wheel.filename)
    stored = await services.files.open_complete(dev, record)
    assert stored.path.read_bytes() == wheel.path.read_bytes()


async def test_page_and_project_list_follow_each_upload(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await stage(services)
    first = build_wheel(tmp_path, "private-pkg", "1.0")
    await upload(services, dev, first)
    assert filenames(await services.pages.project_page(dev, "private-pkg")) == [first.filename]
    second = build_sdist(tmp_path, "private-pkg", "1.1")
    await upload(services, dev, second)
    page = await services.pages.project_page(dev, "private-pkg")
    assert sorted(filenames(page)) == sorted([first.filename, second.filename])
    assert getattr(page.page, "versions", ()) == ("1.0", "1.1")
    await upload(services, dev, build_wheel(tmp_path, "other-pkg", "0.1"))
    listing = await services.pages.project_list(dev)
    assert getattr(listing.page, "names", ()) == ("other-pkg", "private-pkg")


async def test_identical_reupload_is_accepted_without_storing(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await stage(services, volatile=False)
    wheel = build_wheel(tmp_path, "private-pkg", "1.0")
    assert (await upload(services, dev, wheel)).stored
    serial = services.changes.serial
    again = await upload(services, dev, wheel)
    assert not again.stored and again.sha256 == wheel.sha256
    assert services.changes.serial == serial


async def test_other_bytes_under_the_same_name_conflict_on_a_non_volatile_index(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await stage(services, volatile=False)
    wheel = build_wheel(tmp_path, "private-pkg", "1.0")
    await upload(services, dev, wheel)
    other = build_wheel(tmp_path / "other", "private-pkg", "1.0", summary="changed")
    assert other.filename == wheel.filename and other.sha256 != wheel.sha256
    with pytest.raises(UploadConflict):
        await upload(services, dev, other)
    record = await services.files.lookup(dev, wheel.filename)
    assert record.sha256 == wheel.sha256  # the first upload stays


async def test_a_volatile_index_takes_the_new_bytes(services: AppServices, tmp_path: Path) -> None:
    dev = await stage(services, volatile=True)
    await upload(services, dev, build_wheel(tmp_path, "private-pkg", "1.0"))
    other = build_wheel(tmp_path / "other", "private-pkg", "1.0", summary="changed")
    assert (await upload(services, dev, other)).stored
    assert (await services.files.lookup(dev, other.filename)).sha256 == other.sha256


async def test_a_digest_that_does_not_match_is_refused(
    services: AppServices, tmp_path: Path
) -> None:
    dev = await stage(services)
    wheel = build_wheel(tmp_path, "private-pkg", "1.0")
    with pytest.raises(UploadRefused, match=r"sha256_digest '0+' does not match"):
        await upload(services, dev, wheel, sha256_digest="0" * 64)
    with pytest.raises(NotFound):
        await services.pages.project_page(dev, "private-pkg")


async def test_who_may_upload(services: AppServices, tmp_path: Path) -> None:
    dev = await stage(services)
    mallory = await new_user(services, "mallory")
    wheel = build_wheel(tmp_path, "private-pkg", "1.0")
    with pytest.raises(Unauthorized, match="needs authentication"):
        await upload(services, dev, wheel, identity=ANONYMOUS)
    with pytest.raises(Forbidden, match="no permission to upload to alice/dev"):
        await upload(services, dev, wheel, identity=mallory)
    with pytest.raises(NotFound, match="cannot upload to mirror index root/pypi"):
        await upload(services, mirror(services), wheel, identity=ROOT)
    assert (await upload(services, dev, wheel)).stored  # alice, the owner


async def test_a_name_the_base_mirror_serves_is_refused(
    services: AppServices, tmp_path: Path
) -> None:
    """The dependency-confusion guard: "app" exists upstream, so a stage on root/pypi refuses
    a first upload of it unless the index allows upstream names."""
    dev = await stage(services, bases="root/pypi")
    with pytest.raises(UpstreamNameShadowed, match="'app' exists on root/pypi"):
        await upload(services, dev, build_wheel(tmp_path, "app", "9.0"))
    allowing = await stage(services, "allowing", bases="root/pypi", allow_upstream_names=True)
    assert (await upload(services, allowing, build_wheel(tmp_path, "app", "9.0"))).stored
