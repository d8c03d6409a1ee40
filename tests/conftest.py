"""Shared fixtures: real upstreams on 127.0.0.1 and real cheeseboard servers as subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``live`` need the internet: skipped unless CHEESEBOARD_LIVE=1."""
    if os.environ.get("CHEESEBOARD_LIVE") == "1":
        return
    skip = pytest.mark.skip(reason="needs the internet; set CHEESEBOARD_LIVE=1 to run")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


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
