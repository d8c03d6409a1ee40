"""root/pypi through PageService and FileService: fetched from upstream once, then from memory
and the database; stale pages while upstream is down; a clear error when nothing is cached."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cheeseboard.core import metrics
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import NotFound, UpstreamFailed
from cheeseboard.services.files import StoredFile
from cheeseboard.services.pages import PageService
from tests.support.packages import Dist, build_wheel
from tests.support.upstream import Fault, UpstreamServer
from tests.unit.services.support import EXPIRY, filenames, mirror


async def test_page_is_fetched_once_then_served_from_cache(
    services: AppServices, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    first = await services.pages.project_page(mirror(services), "lib-a")
    assert sorted(filenames(first)) == sorted(d.filename for d in dists["lib-a"])
    assert html_upstream.count("/simple/lib-a/") == 1
    # The fetch's own write voids what it built, and so does the write of the upstream JSON
    # API's facts (sizes) that follows in the background: wait for those, then the page stays.
    deadline = time.monotonic() + 10
    while True:
        loaded = await services.pages.project_page(mirror(services), "lib-a")
        links = getattr(loaded.page, "files", ())
        if links and all(link.size is not None for link in links):
            break
        assert time.monotonic() < deadline, "the upstream JSON API's facts never landed"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    loaded = await services.pages.project_page(mirror(services), "lib-a")
    assert filenames(loaded) == filenames(first)
    builds, hits = metrics.counters["page_builds_total"], metrics.counters["page_cache_hits_total"]
    for _ in range(3):
        assert await services.pages.project_page(mirror(services), "lib-a") is loaded
    assert metrics.counters["page_builds_total"] == builds
    assert metrics.counters["page_cache_hits_total"] == hits + 3
    assert html_upstream.count("/simple/lib-a/") == 1


async def test_page_links_carry_hashes_and_versions(
    services: AppServices, dists: dict[str, list[Dist]]
) -> None:
    cached = await services.pages.project_page(mirror(services), "app")
    page = cached.page
    by_name = {link.filename: link for link in getattr(page, "files", ())}
    for dist in dists["app"]:
        link = by_name[dist.filename]
        assert link.sha256 == dist.sha256
        assert link.version == "1.0"
        assert link.path.startswith("root/pypi/+f/")
    assert b"app-1.0.tar.gz" in cached.render("html", False).body


async def test_a_new_process_serves_the_stored_page_without_upstream(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    """A page is stored in the database, not only in memory: a fresh PageService (another
    worker) within the cache expiry reads it there and leaves upstream alone."""
    await services.pages.project_page(mirror(services), "lib-c")
    assert html_upstream.count("/simple/lib-c/") == 1
    other = _fresh_pages(services)
    cached = await other.project_page(mirror(services), "lib-c")
    assert filenames(cached) and html_upstream.count("/simple/lib-c/") == 1


async def test_unknown_project_is_not_found_and_leaves_no_row(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    serial = services.changes.serial
    with pytest.raises(NotFound, match="no project 'no-such-thing' on root/pypi"):
        await services.pages.project_page(mirror(services), "no-such-thing")
    with pytest.raises(NotFound):
        await services.pages.project_page(mirror(services), "no-such-thing")
    assert html_upstream.count("/simple/no-such-thing/") == 1  # remembered in memory
    assert services.changes.serial == serial  # no changelog entry for a random name


async def test_upstream_down_serves_the_stale_page(
    expiring_services: AppServices, html_upstream: UpstreamServer
) -> None:
    app = expiring_services
    fresh = await app.pages.project_page(mirror(app), "lib-b")
    assert fresh.stale_reason is None
    html_upstream.stop()
    await asyncio.sleep(EXPIRY)
    stale = await app.pages.project_page(mirror(app), "lib-b")
    assert filenames(stale) == filenames(fresh) != []
    assert stale.stale_reason is not None


async def test_upstream_error_status_serves_the_stale_page(
    expiring_services: AppServices, html_upstream: UpstreamServer
) -> None:
    app = expiring_services
    fresh = await app.pages.project_page(mirror(app), "app")
    html_upstream.set_fault("simple/app", Fault("status", status=503))
    await asyncio.sleep(EXPIRY)
    stale = await app.pages.project_page(mirror(app), "app")
    assert filenames(stale) == filenames(fresh) != []
    assert stale.stale_reason is not None and "503" in stale.stale_reason
    assert html_upstream.count("/simple/app/") == 2
    # Right after a failure upstream is left alone for a while: the stale page is served as is.
    await app.pages.project_page(mirror(app), "app")
    assert html_upstream.count("/simple/app/") == 2


async def test_upstream_down_with_nothing_cached_is_a_clear_error(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    html_upstream.stop()
    with pytest.raises(UpstreamFailed) as failure:
        await services.pages.project_page(mirror(services), "app")
    assert "failed for 'app' and nothing is cached" in failure.value.message
    assert html_upstream.simple_url in failure.value.message


async def test_expired_page_is_fetched_again_and_sees_new_files(
    expiring_services: AppServices, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    app = expiring_services
    before = await app.pages.project_page(mirror(app), "lib-c")
    newer = build_wheel(tmp_path, "lib-c", "2.0")
    html_upstream.add(newer)
    await asyncio.sleep(EXPIRY)
    after = await app.pages.project_page(mirror(app), "lib-c")
    assert newer.filename not in filenames(before)
    assert newer.filename in filenames(after)
    assert html_upstream.count("/simple/lib-c/") == 2


async def test_forced_refresh_fetches_now(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    await services.pages.project_page(mirror(services), "app")
    assert await services.pages.refresh(mirror(services), "app") == ["root/pypi"]
    assert html_upstream.count("/simple/app/") == 2
    # Within FORCED_REFRESH_INTERVAL a second forced refresh shares the first one's answer.
    await services.pages.refresh(mirror(services), "app")
    assert html_upstream.count("/simple/app/") == 2


async def test_project_list_names_the_projects_seen(services: AppServices) -> None:
    empty = await services.pages.project_list(mirror(services))
    assert getattr(empty.page, "names", None) == ()
    await services.pages.project_page(mirror(services), "app")
    await services.pages.project_page(mirror(services), "lib-a")
    listing = await services.pages.project_list(mirror(services))
    assert getattr(listing.page, "names", None) == ("app", "lib-a")


async def test_mirror_file_is_downloaded_once_then_served_from_storage(
    services: AppServices, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    wheel = dists["lib-a"][0]
    await services.pages.project_page(mirror(services), "lib-a")
    record = await services.files.lookup(mirror(services), wheel.filename)
    stored = await services.files.open_complete(mirror(services), record)
    assert stored.path.read_bytes() == wheel.path.read_bytes()
    assert stored.sha256 == wheel.sha256
    again = await services.files.open(mirror(services), record)
    assert isinstance(again, StoredFile)
    downloads = [r for r in html_upstream.requests if r.path.endswith("/" + wheel.filename)]
    assert len(downloads) == 1


async def test_file_of_an_unknown_name_is_not_found(services: AppServices) -> None:
    with pytest.raises(NotFound):
        await services.files.lookup(mirror(services), "nothing-1.0.tar.gz")


def _fresh_pages(services: AppServices) -> PageService:
    """A second PageService over the same database, as another worker process has."""
    from cheeseboard.mirror.client import UpstreamClient
    from cheeseboard.services.locks import SharedLocks
    from cheeseboard.services.mirror import MirrorRefresher

    settings = services.settings
    return PageService(
        settings,
        services.db,
        services.changes,
        MirrorRefresher(UpstreamClient(settings.request_timeout), services.changes),
        SharedLocks.in_directory(settings.layout.locks),
        services.indexes,
    )
