"""The real devpi client (devpi-client 7.x) sets ``acl_read`` (issue 20) with ``devpi index``.

``devpi index -c NAME acl_read=a,b`` PUTs one comma-separated string; ``devpi index NAME
acl_read+=…`` PATCHes a list of ``key=value`` items (the server announces
``server-keyvalue-parsing``). One server for the module; each test sets up its own users and
indexes through the HTTP API as root.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import call
from tests.support.devpi import DevpiClient
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
PASSWORD = "reader-pw-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    base = tmp_path_factory.mktemp("devpi-acl-read")
    with UpstreamServer(mode="html") as upstream:
        factory = ServerFactory(base)
        try:
            yield factory.start(upstream.simple_url)
        finally:
            factory.stop_all()


@pytest.fixture
def devpi(server: CheeseboardServer, tmp_path: Path) -> DevpiClient:
    client = DevpiClient(tmp_path, server_log=server.log)
    client.use(server.url)
    return client


def _user(server: CheeseboardServer, name: str) -> tuple[str, str]:
    status, body = call(server.url, "PUT", f"/{name}", {"password": PASSWORD}, auth=ROOT)
    assert status == 201, body
    return name, PASSWORD


def _config(server: CheeseboardServer, path: str) -> dict[str, Any]:
    """The index config as root sees it."""
    status, body = call(server.url, "GET", path, auth=ROOT)
    assert status == 200, (path, status, body)
    result: dict[str, Any] = body["result"]
    return result


def test_owner_narrows_acl_read_with_devpi_index(
    devpi: DevpiClient, server: CheeseboardServer
) -> None:
    """``acl_read-=:ANONYMOUS: acl_read+=bob``: shown by the client, stored, and enforced."""
    owner = _user(server, "ann")
    _user(server, "bob")
    status, body = call(server.url, "PUT", "/ann/dev", {"bases": ""}, auth=ROOT)
    assert status == 200, body
    assert _config(server, "/ann/dev")["acl_read"] == [":ANONYMOUS:"]
    assert call(server.url, "GET", "/ann/dev")[0] == 200

    devpi.login(*owner)
    out = devpi.ok("index", "ann/dev", "acl_read-=:ANONYMOUS:", "acl_read+=bob")
    assert "  acl_read=bob\n" in out, out
    assert _config(server, "/ann/dev")["acl_read"] == ["bob"]
    assert call(server.url, "GET", "/ann/dev")[0] == 401  # anonymous: asked to sign in
    assert call(server.url, "GET", "/ann/dev", auth=("bob", PASSWORD))[0] == 200

    out = devpi.fails("index", "ann/dev", "acl_read-=")
    assert "400" in out and "can't be removed" in out
    devpi.ok("index", "ann/dev", "acl_read-=bob")
    assert _config(server, "/ann/dev")["acl_read"] == []  # private: ann and root only
    assert call(server.url, "GET", "/ann/dev", auth=("bob", PASSWORD))[0] == 404


def test_create_with_acl_read_and_refuse_a_base_the_owner_may_not_read(
    devpi: DevpiClient, server: CheeseboardServer
) -> None:
    """``index -c cat/team acl_read=cat,:AUTHENTICATED:`` stores the list; a stage of dan on
    cat's private stage is refused with 400."""
    _user(server, "cat")
    _user(server, "dan")
    devpi.login(*ROOT)
    out = devpi.ok("index", "-c", "cat/team", "acl_read=cat,:authenticated:")
    assert "  acl_read=cat,:AUTHENTICATED:\n" in out, out
    assert _config(server, "/cat/team")["acl_read"] == ["cat", ":AUTHENTICATED:"]
    devpi.ok("index", "-c", "cat/private", "acl_read=")
    assert _config(server, "/cat/private")["acl_read"] == []

    out = devpi.fails("index", "-c", "dan/dev", "bases=cat/private")
    assert "400" in out and "dan, the owner of dan/dev" in out, out
    assert call(server.url, "GET", "/dan/dev", auth=ROOT)[0] == 404
    devpi.ok("index", "-c", "dan/dev", "bases=cat/team")
    assert _config(server, "/dan/dev")["bases"] == ["cat/team"]
