"""Rendered pages survive a restart and are shared by workers: a page whose content has not changed
is loaded (its bytes, ETag and Last-Modified as before), never built again; a change that alters
what a page shows builds it once, and a change that does not (bytes cached) builds nothing."""

from __future__ import annotations

import gzip
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from cheeseboard.core import metrics
from cheeseboard.core.negotiation import Representation
from cheeseboard.services.container import AppServices, open_services
from cheeseboard.services.errors import NotFound
from cheeseboard.services.pages import CachedPage
from cheeseboard.settings import Settings
from cheeseboard.store import page_rows
from cheeseboard.store.page_bodies import PageBodies
from tests.support.packages import Dist
from tests.support.upstream import UpstreamServer
from tests.unit.services.support import ALICE, ROOT, filenames, mirror, stage, upload

_VARIANTS: list[tuple[Representation, bool]] = [
    ("html", False),
    ("html", True),
    ("json", False),
    ("json", True),
]


@asynccontextmanager
async def _worker(settings: Settings, upstream: UpstreamServer) -> AsyncIterator[AppServices]:
    """One worker's services over the data directory (opened again: a restart, or another
    worker while one is open); its rendered pages are on disk when it closes."""
    async with open_services(settings) as app:
        index = mirror(app)
        if index.config.get("mirror_url") != upstream.simple_url:
            await app.accounts.patch_index(
                ROOT, "root", "pypi", {"mirror_url": upstream.simple_url}
            )
        yield app
        await app.pages.flush()


def _answers(cached: CachedPage) -> dict[tuple[str, bool], tuple[bytes, str, str]]:
    """What a client gets for each variant: bytes, ETag, Last-Modified."""
    return {
        (rep, gz): (
            cached.render(rep, gz).body,
            cached.render(rep, gz).etag,
            cached.last_modified,
        )
        for rep, gz in _VARIANTS
    }


def _builds() -> int:
    return metrics.counters["page_builds_total"]


def _renders() -> int:
    return metrics.counters["page_renders_total"]


async def test_a_restarted_server_loads_an_unchanged_page_with_the_same_validators(
    settings: Settings, json_upstream: UpstreamServer
) -> None:
    async with _worker(settings, json_upstream) as app:
        before = _answers(await app.pages.project_page(mirror(app), "lib-a"))
    builds, renders = _builds(), _renders()
    loads = metrics.counters["page_store_loads_total"]
    async with _worker(settings, json_upstream) as app:
        page = await app.pages.project_page(mirror(app), "lib-a")
        assert _answers(page) == before
        assert app.pages.peek(mirror(app), "lib-a") is page  # the hot path has it in memory
    assert (_builds(), _renders()) == (builds, renders)
    assert metrics.counters["page_store_loads_total"] == loads + 1
    assert json_upstream.count("/simple/lib-a/") == 1


async def test_two_workers_build_a_page_once(
    settings: Settings, json_upstream: UpstreamServer
) -> None:
    async with _worker(settings, json_upstream) as first, _worker(settings, json_upstream) as other:
        answers = _answers(await first.pages.project_page(mirror(first), "lib-b"))
        await first.pages.flush()
        builds, renders = _builds(), _renders()
        assert _answers(await other.pages.project_page(mirror(other), "lib-b")) == answers
        assert (_builds(), _renders()) == (builds, renders)


async def test_a_file_becoming_cached_does_not_rebuild_the_page(
    settings: Settings, json_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    """Upstream advertised size, sha256 and core metadata: the cached bytes change nothing
    the page shows, in this worker, in another one, or after a restart."""
    async with _worker(settings, json_upstream) as app, _worker(settings, json_upstream) as other:
        pypi = mirror(app)
        answers = _answers(await app.pages.project_page(pypi, "app"))
        await app.pages.flush()
        _answers(await other.pages.project_page(mirror(other), "app"))
        builds = _builds()
        for dist in dists["app"]:
            await app.files.open_complete(pypi, await app.files.lookup(pypi, dist.filename))
        await other.changes.catch_up()
        assert _answers(await app.pages.project_page(pypi, "app")) == answers
        assert _answers(await other.pages.project_page(mirror(other), "app")) == answers
        assert _builds() == builds
    async with _worker(settings, json_upstream) as app:
        assert _answers(await app.pages.project_page(mirror(app), "app")) == answers
    assert _builds() == builds


async def test_an_upload_builds_the_page_once_for_all_workers(
    settings: Settings, json_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    wheel, sdist = dists["lib-c"]
    async with _worker(settings, json_upstream) as app, _worker(settings, json_upstream) as other:
        dev = await stage(app)
        await upload(app, dev, wheel)
        await other.changes.catch_up()
        before = _answers(await app.pages.project_page(dev, "lib-c"))
        await app.pages.flush()
        assert _answers(await other.pages.project_page(dev, "lib-c")) == before
        await upload(other, dev, sdist)
        await app.changes.catch_up()
        builds = _builds()
        after = _answers(await app.pages.project_page(dev, "lib-c"))
        await app.pages.flush()
        assert _builds() == builds + 1
        assert sdist.filename.encode() in after[("html", False)][0]
        assert after[("html", False)][1] != before[("html", False)][1]
        assert _answers(await other.pages.project_page(dev, "lib-c")) == after
        assert _builds() == builds + 1


async def test_an_upload_rebuilds_the_stage_page_and_a_restart_keeps_the_new_one(
    settings: Settings, json_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    wheel, sdist = dists["lib-a"]
    async with _worker(settings, json_upstream) as app:
        dev = await stage(app)
        await upload(app, dev, wheel)
        first = _answers(await app.pages.project_page(dev, "lib-a"))
        builds = _builds()
        await upload(app, dev, sdist)
        second = _answers(await app.pages.project_page(dev, "lib-a"))
        assert _builds() == builds + 1
        assert sdist.filename.encode() in second[("json", False)][0]
        assert all(second[key][1] != first[key][1] for key in second)  # new ETags
    builds = _builds()
    async with _worker(settings, json_upstream) as app:
        dev = app.indexes.get("alice", "dev")
        assert dev is not None
        assert _answers(await app.pages.project_page(dev, "lib-a")) == second
    assert _builds() == builds


async def test_yanks_and_removed_bases_reach_a_restarted_server(
    settings: Settings, json_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    wheel = dists["lib_b"][0]
    async with _worker(settings, json_upstream) as app:
        dev = await stage(app, bases="root/pypi", allow_upstream_names=True)
        await upload(app, dev, wheel)
        before = _answers(await app.pages.project_page(dev, "lib-b"))
        assert filenames(await app.pages.project_page(dev, "lib-c"))  # from root/pypi
        await app.releases.yank(ALICE, dev, "lib-b", wheel.version, "broken")
        await app.accounts.patch_index(ROOT, "alice", "dev", {"bases": ""})
    async with _worker(settings, json_upstream) as app:
        dev = app.indexes.get("alice", "dev")
        assert dev is not None
        after = _answers(await app.pages.project_page(dev, "lib-b"))
        assert b'data-yanked="broken"' in after[("html", False)][0]
        assert after[("json", True)][1] != before[("json", True)][1]
        with pytest.raises(NotFound):
            await app.pages.project_page(dev, "lib-c")


async def test_a_project_list_is_loaded_after_a_restart(
    settings: Settings, json_upstream: UpstreamServer
) -> None:
    async with _worker(settings, json_upstream) as app:
        await app.pages.project_page(mirror(app), "lib-a")
        listing = await app.pages.project_list(mirror(app))
        before = _answers(listing)
    builds = _builds()
    async with _worker(settings, json_upstream) as app:
        assert _answers(await app.pages.project_list(mirror(app))) == before
    assert _builds() == builds


async def test_a_damaged_stored_page_is_built_again_not_served(
    settings: Settings, json_upstream: UpstreamServer
) -> None:
    async with _worker(settings, json_upstream) as app:
        before = _answers(await app.pages.project_page(mirror(app), "lib-a"))
    stored = sorted((settings.datadir / "pages").glob("??/*.page"))
    assert stored
    for path in stored:  # a crash or a bad disk: cut short, or one byte flipped
        data = path.read_bytes()
        flipped = data[:-1] + bytes([data[-1] ^ 0xFF])  # (a gzip trailer often ends in 0)
        path.write_bytes(data[: len(data) // 2] if len(data) % 2 else flipped)
    builds = _builds()
    async with _worker(settings, json_upstream) as app:
        assert _answers(await app.pages.project_page(mirror(app), "lib-a")) == before
    assert _builds() > builds


def test_stored_pages_stay_within_their_bound(tmp_path: Path) -> None:
    bodies = PageBodies(tmp_path, max_bytes=20_000)
    for number in range(100):
        plain = os.urandom(1000)  # incompressible: about 1 KB stored each
        bodies.save(1, f"p{number}", "html", "f", 1, plain, gzip.compress(plain))
    total = sum(p.stat().st_size for p in tmp_path.glob("??/*.page"))
    assert 0 < total <= 20_000 + 32 * 1200  # trimmed every 32 writes
    assert bodies.trim() <= 20_000
    assert bodies.load(1, "p99", "html", "f", 1) is not None  # the newest are kept
    assert bodies.load(1, "p99", "html", "f", 2) is None  # of other content: not served


def _noting(
    run: Callable[..., Awaitable[object]], into: list[str]
) -> Callable[..., Awaitable[object]]:
    """``run`` (``Database.read`` or ``write``, ``ChangeFeed.write``), noting the name of each
    transaction's function in ``into``."""

    async def noted(fn: Callable[..., object], *args: object, **kwargs: object) -> object:
        into.append(getattr(fn, "__name__", repr(fn)))
        return await run(fn, *args, **kwargs)

    return noted


async def test_a_cold_mirror_page_is_stored_and_settled_in_one_write(
    settings: Settings, json_upstream: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's state (serial, Last-Modified) is claimed in the transaction that stores its
    rows: one read (is it stored?) and one write per cold page, not two of each (issue 19).
    Background work may write meanwhile (core metadata advertised upstream is fetched)."""
    async with _worker(settings, json_upstream) as app:
        pypi = mirror(app)
        reads: list[str] = []
        writes: list[str] = []
        monkeypatch.setattr(app.db, "read", _noting(app.db.read, reads))
        monkeypatch.setattr(app.db, "write", _noting(app.db.write, writes))
        monkeypatch.setattr(app.changes, "write", _noting(app.changes.write, writes))
        page = await app.pages.project_page(pypi, "lib-a")
        monkeypatch.undo()
        assert reads.count("_page_rows") == 1
        assert writes.count("_store") == 1
        assert "get_state" not in reads  # the store's transaction claimed it
        assert "claim_state" not in reads + writes
        state = await app.db.read(page_rows.get_state, pypi.id, "lib-a")
        assert state is not None
        assert state.fingerprint == page.fingerprint
        assert page.page.last_serial == state.serial
        answers = _answers(page)
    async with _worker(settings, json_upstream) as app:
        assert _answers(await app.pages.project_page(mirror(app), "lib-a")) == answers
    assert json_upstream.count("/simple/lib-a/") == 1
