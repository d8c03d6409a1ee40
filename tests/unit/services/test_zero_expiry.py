"""``mirror_cache_expiry=0`` (devpi's "revalidate every time") and empty upstream pages, through
PageService: every request asks upstream (conditionally), a burst shares one request, a failing
upstream still gets the stale page served, and an empty 200 is a project without files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cheeseboard.services.container import AppServices, open_services
from cheeseboard.settings import Settings
from tests.support.upstream import Fault, UpstreamServer
from tests.unit.services.support import ROOT, filenames, mirror


@pytest.fixture
async def revalidating(
    settings: Settings, json_upstream: UpstreamServer
) -> AsyncIterator[AppServices]:
    """root/pypi mirrors the ETag-sending ``json_upstream`` with an expiry of 0."""
    async with open_services(settings) as app:
        config = {"mirror_url": json_upstream.simple_url, "mirror_cache_expiry": 0}
        await app.accounts.patch_index(ROOT, "root", "pypi", config)
        yield app


async def test_every_request_revalidates_with_the_stored_etag(
    revalidating: AppServices, json_upstream: UpstreamServer
) -> None:
    app = revalidating
    first = await app.pages.project_page(mirror(app), "lib-a")
    assert app.pages.peek(mirror(app), "lib-a") is None  # the hot path may not answer alone
    for _ in range(3):
        again = await app.pages.project_page(mirror(app), "lib-a")
        assert filenames(again) == filenames(first) != []
    asked = [r for r in json_upstream.requests if r.path == "/simple/lib-a/"]
    assert len(asked) == 4
    assert all(r.headers.get("If-None-Match") for r in asked[1:]), asked


async def test_a_burst_shares_one_upstream_request(
    revalidating: AppServices, json_upstream: UpstreamServer
) -> None:
    app = revalidating
    await app.pages.project_page(mirror(app), "lib-b")
    json_upstream.clear_requests()
    json_upstream.set_fault("simple/lib-b", Fault("delay", seconds=0.5))
    pages = await asyncio.gather(*(app.pages.project_page(mirror(app), "lib-b") for _ in range(20)))
    assert {tuple(filenames(page)) for page in pages} == {tuple(filenames(pages[0]))}
    assert json_upstream.count("/simple/lib-b/") == 1


async def test_a_failing_upstream_gets_the_stale_page_served(
    revalidating: AppServices, json_upstream: UpstreamServer
) -> None:
    app = revalidating
    fresh = await app.pages.project_page(mirror(app), "app")
    json_upstream.set_fault("simple/app", Fault("status", status=503))
    stale = await app.pages.project_page(mirror(app), "app")
    assert filenames(stale) == filenames(fresh) != []
    assert stale.stale_reason is not None and "503" in stale.stale_reason
    # The back-off holds even at expiry 0: right after the failure upstream is left alone.
    asked = json_upstream.count("/simple/app/")
    await app.pages.project_page(mirror(app), "app")
    assert json_upstream.count("/simple/app/") == asked


@pytest.mark.parametrize("content_type", ["text/html", "application/vnd.pypi.simple.v1+json"])
async def test_an_empty_upstream_page_is_a_project_without_files(
    revalidating: AppServices, json_upstream: UpstreamServer, content_type: str
) -> None:
    app = revalidating
    assert filenames(await app.pages.project_page(mirror(app), "lib-c")) != []
    json_upstream.set_fault("simple/lib-c", Fault("body", body=b"", content_type=content_type))
    page = await app.pages.project_page(mirror(app), "lib-c")
    assert page.found and filenames(page) == [] and page.stale_reason is None
