"""The real services of one app instance, in this process: ``open_services`` over a SQLite data
directory made as ``init`` makes it, its root/pypi mirroring a real upstream on 127.0.0.1.

No HTTP server runs: tests call the service APIs the routes call. The upstream is the threaded
test server of tests/support/upstream.py, filled from the session's ``dists`` (app, lib-a, lib_b,
lib-c; a wheel and an sdist each). ``init`` runs once per session (argon2 for root's password and
the migrations cost about 0.2 s); each test gets a copy of that directory.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cheeseboard.services.container import AppServices, open_services
from cheeseboard.settings import Settings
from tests.support.server import ServerFactory
from tests.support.upstream import UpstreamServer
from tests.unit.services.support import EXPIRY, ROOT

_NO_UPSTREAM = "http://127.0.0.1:9/simple/"  # replaced by each test's upstream


@pytest.fixture(scope="session")
def template_datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised data directory (root, root/pypi), made in process by ``init_datadir``.

    A sync fixture on purpose: ``ServerFactory.init`` runs in this process only outside a
    running event loop (inside one it would start the command as a subprocess)."""
    return ServerFactory(tmp_path_factory.mktemp("services-template")).init(_NO_UPSTREAM)


@pytest.fixture
def datadir(tmp_path: Path, template_datadir: Path) -> Path:
    """A copy of the session's data directory, for this test alone."""
    datadir = tmp_path / "data"
    shutil.copytree(template_datadir, datadir)
    return datadir


async def _opened(settings: Settings, upstream: UpstreamServer) -> AsyncIterator[AppServices]:
    async with open_services(settings) as app:
        # As `init --mirror-url` would have set it; through the service, as root would.
        await app.accounts.patch_index(ROOT, "root", "pypi", {"mirror_url": upstream.simple_url})
        yield app


@pytest.fixture
def settings(datadir: Path) -> Settings:
    # A short upstream timeout: the faults used here fail at once, nothing waits it out.
    return Settings(datadir=datadir, request_timeout=2.0)


@pytest.fixture
async def services(settings: Settings, html_upstream: UpstreamServer) -> AsyncIterator[AppServices]:
    """The services over ``datadir``, root/pypi mirroring ``html_upstream``."""
    async for app in _opened(settings, html_upstream):
        yield app


@pytest.fixture
async def expiring_services(
    datadir: Path, html_upstream: UpstreamServer
) -> AsyncIterator[AppServices]:
    """Like ``services``, with mirrored pages expiring after ``EXPIRY`` seconds."""
    settings = Settings(datadir=datadir, request_timeout=2.0, mirror_cache_expiry=EXPIRY)
    async for app in _opened(settings, html_upstream):
        yield app
