"""Listing a mirror without a project (issue 22): devpi lists upstream's whole name list,
cheeseboard the projects it has cached (README, "devpi compatibility"). ``cheeseboard list``
says so; ``devpi list`` (devpi-client's output, not ours) shows the cached names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import call
from tests.support.client_cli import Cli
from tests.support.devpi import DevpiClient
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

_ROOT = ("root", ROOT_PASSWORD)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    base = tmp_path_factory.mktemp("mirror-list")
    with UpstreamServer(mode="html") as upstream:
        for name in ("cbcached", "cbupstreamonly", "cbneverasked"):
            upstream.add(build_wheel(base / "up", name, "1.0"))
        factory = ServerFactory(base)
        try:
            started = factory.start(upstream.simple_url)
            status, body = call(started.url, "GET", "/root/pypi/cbcached")  # caches its page
            assert status == 200, body
            yield started
        finally:
            factory.stop_all()


def test_cheeseboard_list_says_it_lists_cached_projects(
    server: CheeseboardServer, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "client")
    cli.ok("use", f"{server.url}root/pypi")
    out = cli.ok("list")
    assert "cached projects only" in out and "is a mirror" in out, out
    assert "cbcached" in out and "cbupstreamonly" not in out, out
    assert json.loads(cli.ok("--json", "list")) == [{"project": "cbcached"}]
    assert "cbupstreamonly-1.0-py3-none-any.whl" in cli.ok("list", "cbupstreamonly")
    assert "cbupstreamonly" in cli.ok("list")  # cached now


def test_cheeseboard_list_of_a_stage_has_no_mirror_note(
    server: CheeseboardServer, tmp_path: Path
) -> None:
    status, body = call(server.url, "PUT", "/root/dev", {"bases": ["root/pypi"]}, auth=_ROOT)
    assert status in (200, 409), body
    cli = Cli(tmp_path / "client")
    cli.ok("use", f"{server.url}root/dev")
    assert "mirror" not in cli.ok("list")


def test_devpi_list_on_a_mirror_shows_cached_names(
    server: CheeseboardServer, tmp_path: Path
) -> None:
    devpi = DevpiClient(tmp_path, server_log=server.log)
    devpi.use(server.url + "root/pypi")
    names = devpi.ok("list").split()
    assert "cbcached" in names and "cbneverasked" not in names
