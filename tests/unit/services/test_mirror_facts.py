"""An HTML-only upstream's facts (sizes, upload times, core-metadata hashes) come from its PyPI JSON
API. A cold page is stored and answered from the simple page alone; the JSON API's facts follow in
the background, as a second write the page cache sees. A mirror whose policy needs upload times
before answering (``MirrorConfig.needs_upload_times``) waits for them. The JSON API failing never
fails the page.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from cheeseboard.core.pages import FileLink, ProjectPage
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.services.container import AppServices
from cheeseboard.services.indexes import MirrorConfig, mirror_config
from cheeseboard.services.mirror import MirrorRefresher
from cheeseboard.services.pages import CachedPage
from cheeseboard.services.quiet import Quiet
from cheeseboard.store import project_rows
from tests.support.packages import Dist
from tests.support.upstream import DEFAULT_UPLOAD_TIME, Fault, UpstreamServer
from tests.unit.services.support import EXPIRY, mirror

PROJECT = "lib-a"
JSON_API = f"/pypi/{PROJECT}/json"
SLOW = 1.5  # seconds the JSON API takes under Fault("delay"); the fixtures time out after 2.0
DEADLINE = 10.0  # seconds a test waits at most for facts to land


def _links(cached: CachedPage) -> dict[str, FileLink]:
    page = cached.page
    assert isinstance(page, ProjectPage)
    return {link.filename: link for link in page.files}


def _has_facts(links: dict[str, FileLink], dists: list[Dist]) -> bool:
    return all(
        links[d.filename].size == d.size and links[d.filename].upload_time == DEFAULT_UPLOAD_TIME
        for d in dists
    )


async def _page_with_facts(app: AppServices, dists: list[Dist]) -> dict[str, FileLink]:
    """Ask for the page until its files show the JSON API's facts (DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        links = _links(await app.pages.project_page(mirror(app), PROJECT))
        if _has_facts(links, dists) or time.monotonic() > deadline:
            return links
        await asyncio.sleep(0.02)


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def refresher(services: AppServices) -> AsyncIterator[MirrorRefresher]:
    """A MirrorRefresher of its own (its own client, long timeout) writing through the app's
    change feed, for tests that choose the mirror's config."""
    client = UpstreamClient(30.0)
    await client.start()
    try:
        yield MirrorRefresher(client, services.changes)
    finally:
        await client.close()


def _config(app: AppServices, *, needs_upload_times: bool) -> MirrorConfig:
    config = mirror_config(mirror(app), app.settings.mirror_cache_expiry)
    return replace(config, needs_upload_times=needs_upload_times)


async def test_cold_page_does_not_wait_for_a_slow_json_api_and_facts_follow(
    services: AppServices, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    html_upstream.set_fault(f"pypi/{PROJECT}", Fault("delay", seconds=SLOW))
    started = time.monotonic()
    first = await services.pages.project_page(mirror(services), PROJECT)
    elapsed = time.monotonic() - started
    assert elapsed < SLOW / 2, f"the page waited {elapsed:.2f}s for the JSON API"
    links = _links(first)
    assert set(links) == {d.filename for d in dists[PROJECT]}
    assert all(link.size is None and link.upload_time is None for link in links.values())
    assert all(link.sha256 for link in links.values())  # the page's own facts are there

    links = await _page_with_facts(services, dists[PROJECT])
    assert _has_facts(links, dists[PROJECT]), links
    for dist in dists[PROJECT]:  # and what else enrich adds: wheels' core-metadata hashes
        expected = hashlib.sha256(dist.metadata).hexdigest() if dist.kind == "wheel" else None
        assert links[dist.filename].core_metadata_sha256 == expected
    assert html_upstream.count(f"/simple/{PROJECT}/") == 1  # landing facts refetch nothing
    assert html_upstream.count(JSON_API) == 1


async def test_facts_reach_the_stored_rows_other_workers_read(
    services: AppServices, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    """The facts are a database write, not a cache patch: the rows carry them."""
    await services.pages.project_page(mirror(services), PROJECT)
    await _page_with_facts(services, dists[PROJECT])
    _, records = await services.db.read(
        project_rows.project_with_files, mirror(services).id, PROJECT
    )
    assert {r.filename: (r.size, r.upload_time) for r in records} == {
        d.filename: (d.size, DEFAULT_UPLOAD_TIME) for d in dists[PROJECT]
    }


async def test_needs_upload_times_waits_for_the_facts(
    services: AppServices,
    refresher: MirrorRefresher,
    html_upstream: UpstreamServer,
    dists: dict[str, list[Dist]],
) -> None:
    """With the seam on (issue 21's cooldown will set it), the first answer has the facts."""
    delay = 0.5
    html_upstream.set_fault(f"pypi/{PROJECT}", Fault("delay", seconds=delay))
    started = time.monotonic()
    fetched = await refresher.fetch(_config(services, needs_upload_times=True), PROJECT, None)
    assert time.monotonic() - started >= delay
    assert fetched.page is not None and fetched.facts_later is None
    sizes = {link.filename: (link.size, link.upload_time) for link in fetched.page.links}
    expected = {d.filename: (d.size, DEFAULT_UPLOAD_TIME) for d in dists[PROJECT]}
    assert sizes == expected
    _, records = await refresher.store(mirror(services), PROJECT, fetched)
    assert {r.filename: (r.size, r.upload_time) for r in records} == expected
    await refresher.wait_for_facts()
    assert html_upstream.count(JSON_API) == 1  # no background job asked again


async def test_without_the_seam_fetch_hands_the_facts_to_later(
    services: AppServices, refresher: MirrorRefresher, html_upstream: UpstreamServer
) -> None:
    html_upstream.set_fault(f"pypi/{PROJECT}", Fault("delay", seconds=SLOW))
    started = time.monotonic()
    fetched = await refresher.fetch(_config(services, needs_upload_times=False), PROJECT, None)
    assert time.monotonic() - started < SLOW / 2
    assert fetched.page is not None and fetched.facts_later is not None
    assert all(link.size is None for link in fetched.page.links)
    assert html_upstream.count(JSON_API) == 0  # asked only once the page is stored


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("status", status=404),
        Fault("reset"),
        Fault("body", body=b"{not json", content_type="application/json"),
        Fault("body", body=b'{"releases": 3}', content_type="application/json"),
        Fault("truncate"),
    ],
    ids=["500", "404", "reset", "garbage", "wrong-shape", "truncated"],
)
@pytest.mark.parametrize("needs_upload_times", [False, True], ids=["later", "waiting"])
async def test_failing_json_api_never_fails_the_page(
    services: AppServices,
    refresher: MirrorRefresher,
    html_upstream: UpstreamServer,
    dists: dict[str, list[Dist]],
    fault: Fault,
    needs_upload_times: bool,
) -> None:
    html_upstream.set_fault(f"pypi/{PROJECT}", fault)
    config = _config(services, needs_upload_times=needs_upload_times)
    fetched = await refresher.fetch(config, PROJECT, None)
    assert fetched.page is not None
    project, records = await refresher.store(mirror(services), PROJECT, fetched)
    await refresher.wait_for_facts()  # the background job, if any, has met the fault and ended
    assert html_upstream.count(JSON_API) >= 1  # (a reset connection is retried once)
    assert project is not None and project.found
    assert {r.filename for r in records} == {d.filename for d in dists[PROJECT]}
    _, stored = await services.db.read(
        project_rows.project_with_files, mirror(services).id, PROJECT
    )
    assert [(r.filename, r.sha256, r.size) for r in stored] == [
        (r.filename, r.sha256, None) for r in records
    ]


async def test_failing_json_api_through_the_page_service(
    services: AppServices, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    html_upstream.set_fault(f"pypi/{PROJECT}", Fault("status", status=503))
    first = await services.pages.project_page(mirror(services), PROJECT)
    assert set(_links(first)) == {d.filename for d in dists[PROJECT]}
    await _until(lambda: html_upstream.count(JSON_API) == 1, "the JSON API request")
    serial = services.changes.serial
    await asyncio.sleep(0.2)  # time for a (wrong) write of the failed facts
    again = await services.pages.project_page(mirror(services), PROJECT)
    assert set(_links(again)) == set(_links(first))
    assert all(link.size is None for link in _links(again).values())
    assert services.changes.serial == serial


async def test_refresh_keeps_known_facts_and_asks_the_json_api_again(
    expiring_services: AppServices, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    """A refresh of an HTML page keeps the facts learnt before (the page never loses them) and
    asks the JSON API again in the background, as a refresh that waited for it did: a fact
    upstream corrects is learnt again, without a change when nothing differs."""
    app = expiring_services
    await app.pages.project_page(mirror(app), PROJECT)
    assert _has_facts(await _page_with_facts(app, dists[PROJECT]), dists[PROJECT])
    assert html_upstream.count(JSON_API) == 1
    await asyncio.sleep(EXPIRY * 2)
    refreshed = await app.pages.project_page(mirror(app), PROJECT)
    assert html_upstream.count(f"/simple/{PROJECT}/") >= 2  # it was a refresh
    assert _has_facts(_links(refreshed), dists[PROJECT])
    await _until(lambda: html_upstream.count(JSON_API) >= 2, "the JSON API asked again")


async def test_one_facts_job_per_project(
    services: AppServices, refresher: MirrorRefresher, html_upstream: UpstreamServer
) -> None:
    """Refreshes while a facts job is in flight start no other: bounded upstream work."""
    html_upstream.set_fault(f"pypi/{PROJECT}", Fault("delay", seconds=0.5))
    config = _config(services, needs_upload_times=False)
    for _ in range(5):
        fetched = await refresher.fetch(config, PROJECT, None)
        await refresher.store(mirror(services), PROJECT, fetched)
    await refresher.wait_for_facts()
    assert html_upstream.count(f"/simple/{PROJECT}/") == 5
    assert html_upstream.count(JSON_API) == 1
    _, stored = await services.db.read(
        project_rows.project_with_files, mirror(services).id, PROJECT
    )
    assert all(r.size is not None and r.upload_time for r in stored)


async def test_closing_the_client_cancels_a_hanging_facts_job(
    services: AppServices, html_upstream: UpstreamServer
) -> None:
    """Shutdown does not wait out a hanging JSON API (the app closes its upstream client, which
    ends the refresher's background jobs first), and leaves no task behind."""
    client = UpstreamClient(30.0)
    await client.start()
    refresher = MirrorRefresher(client, services.changes)
    html_upstream.set_fault(f"pypi/{PROJECT}", Fault("delay", seconds=3.0))
    fetched = await refresher.fetch(_config(services, needs_upload_times=False), PROJECT, None)
    await refresher.store(mirror(services), PROJECT, fetched)
    await _until(lambda: html_upstream.count(JSON_API) == 1, "the JSON API request")
    started = time.monotonic()
    await client.close()
    assert time.monotonic() - started < 1.0
    left = [t for t in asyncio.all_tasks() if "_apply_facts" in repr(t.get_coro())]
    assert left == []


async def test_facts_wait_for_a_pause_in_the_requests(
    services: AppServices, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    """While requests that need the app keep coming (a cold install), the JSON API is not
    asked; once they pause, the facts land as before (services/quiet.py)."""
    quiet = Quiet(quiet_for=1.0, at_most=DEADLINE)  # longer than a loaded loop's stalls
    client = UpstreamClient(30.0)
    await client.start()
    try:
        refresher = MirrorRefresher(client, services.changes, quiet)
        quiet.touch()
        fetched = await refresher.fetch(_config(services, needs_upload_times=False), PROJECT, None)
        await refresher.store(mirror(services), PROJECT, fetched)
        for _ in range(8):  # 0.4 s of requests
            quiet.touch()
            await asyncio.sleep(0.05)
            assert html_upstream.count(JSON_API) == 0
        await refresher.wait_for_facts()
        assert html_upstream.count(JSON_API) == 1
        assert time.monotonic() - quiet.last_touched >= 1.0
        _, records = await services.db.read(
            project_rows.project_with_files, mirror(services).id, PROJECT
        )
        assert {r.filename: r.size for r in records} == {d.filename: d.size for d in dists[PROJECT]}
    finally:
        await client.close()
