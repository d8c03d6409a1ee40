"""Issue 22 with the real devpi client: index settings devpi accepts and upstream answers devpi
reads are taken the same way.

- ``mirror_cache_expiry=0`` is accepted and means "revalidate every time": each request for a
  page asks upstream (conditionally, with the stored ETag), and a burst of concurrent requests
  still shares one upstream request; a failing upstream gets the stale page served.
- ``bases=/root/pypi`` is normalised to ``root/pypi``.
- ``mirror_url`` is shown as given (no "/" appended).
- An empty 200 upstream page is a project without releases, not a 502.
- A zero-byte doc zip is stored; its doc pages say there are no documents (404, not 500).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import call
from tests.support.devpi import DevpiClient
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import Fault, UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-pw-1")
PEP691 = "application/vnd.pypi.simple.v1+json"


@dataclass
class World:
    server: CheeseboardServer
    upstream: UpstreamServer  # PEP 691 with ETags, like pypi.org
    wheel: Dist  # q-1.0, uploaded to alice/dev

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, dists: dict[str, list[Dist]]
) -> Iterator[World]:
    base = tmp_path_factory.mktemp("devpi-drop-in")
    wheel = build_wheel(base / "q", "q", "1.0")
    with UpstreamServer(mode="json") as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        factory = ServerFactory(base)
        try:
            yield World(factory.start(upstream.simple_url), upstream, wheel)
        finally:
            factory.stop_all()


@pytest.fixture
def devpi(world: World, tmp_path: Path) -> DevpiClient:
    """A devpi client logged in as root."""
    client = DevpiClient(tmp_path, server_log=world.server.log)
    client.use(world.url)
    client.login(*ROOT)
    return client


def _config(world: World, index: str) -> dict[str, Any]:
    status, body = call(world.url, "GET", f"/{index}")
    assert status == 200, body
    result: dict[str, Any] = body["result"]
    return result


def _page(world: World, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(world.url + path, headers={"Accept": PEP691})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def test_mirror_cache_expiry_0_revalidates_every_request(devpi: DevpiClient, world: World) -> None:
    """``index -c root/fresh type=mirror mirror_cache_expiry=0``: each page request asks
    upstream with the ETag it has; ``mirror_url`` given without "/" is shown as given."""
    given = world.upstream.simple_url.rstrip("/")
    devpi.ok(
        "index", "-c", "root/fresh", "type=mirror", f"mirror_url={given}", "mirror_cache_expiry=0"
    )
    config = _config(world, "root/fresh")
    assert config["mirror_cache_expiry"] == 0
    assert config["mirror_url"] == given
    assert f"mirror_url={given}\n" in devpi.ok("index", "root/fresh")
    for _ in range(3):
        assert _page(world, "root/fresh/+simple/app/")[0] == 200
    asked = [r for r in world.upstream.requests if r.path == "/simple/app/"]
    assert len(asked) == 3
    assert all(r.headers.get("If-None-Match") for r in asked[1:]), asked
    # The client's own view of a project revalidates too.
    assert '"type": "projectconfig"' in devpi.ok("getjson", "/root/fresh/app")
    assert len([r for r in world.upstream.requests if r.path == "/simple/app/"]) == 4


def test_mirror_cache_expiry_0_burst_shares_one_upstream_request(
    devpi: DevpiClient, world: World
) -> None:
    """Twelve concurrent requests for a page that must be revalidated make one upstream
    request; then, with upstream failing, the stale page is still served."""
    devpi.ok(
        "index",
        "-c",
        "root/burst",
        "type=mirror",
        f"mirror_url={world.upstream.simple_url}",
        "mirror_cache_expiry=0",
    )
    assert _page(world, "root/burst/+simple/lib-a/")[0] == 200
    before = world.upstream.count("/simple/lib-a/")
    world.upstream.set_fault("simple/lib-a", Fault("delay", seconds=1.0))
    start = threading.Barrier(12)
    answers: list[int] = []

    def fetch() -> None:
        start.wait()
        answers.append(_page(world, "root/burst/+simple/lib-a/")[0])

    threads = [threading.Thread(target=fetch) for _ in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        world.upstream.set_fault("simple/lib-a", None)
    assert answers == [200] * 12
    assert world.upstream.count("/simple/lib-a/") == before + 1
    world.upstream.set_fault("simple/lib-a", Fault("status", status=503))
    try:
        status, body = _page(world, "root/burst/+simple/lib-a/")
    finally:
        world.upstream.set_fault("simple/lib-a", None)
    assert status == 200 and json.loads(body)["files"], (status, body)


def test_bases_with_leading_slash_are_normalised(devpi: DevpiClient, world: World) -> None:
    """``index -c root/s bases=/root/pypi`` (and a later ``bases=/root/pypi`` edit) store
    ``root/pypi``, as devpi does."""
    devpi.ok("index", "-c", "root/s", "bases=/root/pypi")
    assert _config(world, "root/s")["bases"] == ["root/pypi"]
    devpi.ok("index", "root/s", "bases=")
    devpi.ok("index", "root/s", "bases=/root/pypi")
    assert _config(world, "root/s")["bases"] == ["root/pypi"]
    assert "bases=root/pypi" in devpi.ok("index", "root/s")


def test_empty_upstream_page_is_a_project_without_releases(
    devpi: DevpiClient, world: World
) -> None:
    """An empty 200 for a project page: ``getjson`` shows a project with no versions and the
    simple page lists no files (devpi's reading), where a page that is not HTML stays a 502."""
    devpi.ok(
        "index",
        "-c",
        "root/empty",
        "type=mirror",
        f"mirror_url={world.upstream.simple_url}",
        "mirror_cache_expiry=0",
    )
    world.upstream.set_fault("simple/lib-c", Fault("body", body=b"", content_type="text/html"))
    not_a_page = Fault("body", body=b"\x89PNG", content_type="image/png")
    world.upstream.set_fault("simple/lib-b", not_a_page)
    try:
        reply = json.loads(devpi.ok("getjson", "/root/empty/lib-c"))
        assert reply["type"] == "projectconfig" and reply["result"] == {}, reply
        status, body = _page(world, "root/empty/+simple/lib-c/")
        assert status == 200 and json.loads(body)["files"] == [], (status, body)
        assert _page(world, "root/empty/+simple/lib-b/")[0] == 502
        # Upstream failing later: the empty page is served stale, like any page.
        world.upstream.set_fault("simple/lib-c", not_a_page)
        assert _page(world, "root/empty/+simple/lib-c/")[0] == 200
    finally:
        world.upstream.set_fault("simple/lib-c", None)
        world.upstream.set_fault("simple/lib-b", None)


def test_zero_byte_doc_zip_is_stored_and_has_no_documents(
    devpi: DevpiClient, world: World, tmp_path: Path
) -> None:
    """``upload`` of a zero-byte ``q-1.0.doc.zip`` is stored (devpi does); the doc page says
    there are no documents, with 404."""
    status, body = call(world.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)
    assert status == 201, body
    devpi.ok("index", "-c", "alice/dev", "bases=root/pypi")
    devpi.login(*ALICE)
    devpi.use("alice/dev")
    devpi.ok("upload", world.wheel.path)
    empty = tmp_path / "q-1.0.doc.zip"
    empty.write_bytes(b"")
    out = devpi.ok("upload", empty)
    assert "FAIL" not in out, out
    links = _config(world, "alice/dev/q/1.0")["+links"]
    assert [link["href"].rsplit("/", 1)[-1] for link in links if link["rel"] == "doczip"] == [
        "q-1.0.doc.zip"
    ]
    status, text = _page(world, "alice/dev/q/1.0/+doc/")
    assert status == 404 and b"no documents" in text, (status, text)
    status, text = _page(world, "alice/dev/q/+latest/+doc/index.html")
    assert status == 404 and b"no documents" in text, (status, text)
