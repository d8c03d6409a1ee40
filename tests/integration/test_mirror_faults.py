"""Upstream faults: bad files are never stored or served whole; concurrent requests share."""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.packages import Dist, build_wheel
from tests.support.server import CheeseboardServer, ServerFactory
from tests.support.upstream import Fault, UpstreamServer


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    """One upstream for the module: each test publishes (and breaks) its own project names."""
    with UpstreamServer() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CheeseboardServer]:
    """One server with the default options over ``upstream``, for the tests that need no others."""
    factory = ServerFactory(tmp_path_factory.mktemp("mirror-faults"))
    try:
        yield factory.start(upstream.simple_url)
    finally:
        factory.stop_all()


def _big_wheel(dest: Path, name: str) -> Dist:
    """A 6 MB wheel, large enough to stream in many chunks."""
    return build_wheel(dest, name, "2.0", payload_size=6 * 1024 * 1024)


def _blobs(server: CheeseboardServer) -> dict[Path, int]:
    """The server's stored blobs and their sizes."""
    return {p: p.stat().st_size for p in (server.datadir / "blobs").rglob("*") if p.is_file()}


def _file_url(server: CheeseboardServer, dist: Dist) -> str:
    digest = dist.sha256
    return f"{server.url}root/pypi/+f/{digest[:3]}/{digest[3:16]}/{dist.filename}"


def _fetch(url: str) -> tuple[int, bytes]:
    """GET url; returns (status, body). A cut connection gives status -1 and the bytes received."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        try:
            return response.status, response.read()
        except http.client.IncompleteRead as exc:
            return -1, exc.partial
    except (ConnectionError, http.client.RemoteDisconnected):
        return -1, b""
    finally:
        connection.close()


def _file_fetches(upstream: UpstreamServer, dist: Dist) -> int:
    """Upstream GETs of the file itself (not its .metadata)."""
    return sum(1 for r in upstream.requests if r.path == f"/files/{dist.filename}")


def _page(server: CheeseboardServer, name: str) -> None:
    with urllib.request.urlopen(f"{server.index_url}{name}/", timeout=30) as response:
        assert response.status == 200


@pytest.mark.parametrize("fault", ["corrupt", "truncate"])
def test_bad_upstream_file_is_never_stored_or_served_whole(
    fault: str, server: CheeseboardServer, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """A corrupt or truncated upstream body reaches the client incomplete and is not kept."""
    big_wheel = _big_wheel(tmp_path, f"bigpkg-{fault}")
    upstream.add(big_wheel)
    logged, stored = len(server.log()), _blobs(server)
    _page(server, big_wheel.name)
    upstream.set_fault(big_wheel.filename, Fault(fault))  # type: ignore[arg-type]
    try:
        # A later try must go upstream again: nothing bad was cached. A try that arrives while
        # the first download is still failing shares it (single flight), so retry briefly.
        for _ in range(20):
            status, body = _fetch(_file_url(server, big_wheel))
            assert status in (-1, 502)
            assert hashlib.sha256(body).hexdigest() != big_wheel.sha256
            assert len(body) < big_wheel.size
            if _file_fetches(upstream, big_wheel) >= 2:
                break
            time.sleep(0.1)
        assert _file_fetches(upstream, big_wheel) == 2
        new_blobs = {p: size for p, size in _blobs(server).items() if p not in stored}
        assert all(size != big_wheel.size for size in new_blobs.values())
    finally:
        upstream.set_fault(big_wheel.filename, None)
    status, body = _fetch(_file_url(server, big_wheel))
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == big_wheel.sha256
    assert "Traceback" not in server.log()[logged:]


def test_concurrent_requests_share_one_page_and_file_fetch(
    server_factory: ServerFactory, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """Twenty clients at once cause one page fetch and one file download, on two workers."""
    big_wheel = _big_wheel(tmp_path, "bigpkg-concurrent")
    upstream.add(big_wheel)
    # Slow upstream answers make the requests overlap for sure.
    upstream.set_fault("simple/bigpkg-concurrent", Fault("delay", seconds=0.5))
    try:
        server = server_factory.start(upstream.simple_url, "--workers", "2")
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(lambda _: _page(server, big_wheel.name), range(20)))
        assert upstream.count("/simple/bigpkg-concurrent/") == 1
        upstream.set_fault(big_wheel.filename, Fault("delay", seconds=0.5))
        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(lambda _: _fetch(_file_url(server, big_wheel)), range(20)))
    finally:
        upstream.set_fault("simple/bigpkg-concurrent", None)
        upstream.set_fault(big_wheel.filename, None)
    for status, body in results:
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == big_wheel.sha256
    assert _file_fetches(upstream, big_wheel) == 1


def test_upstream_timeout_gives_502_within_bound(
    server_factory: ServerFactory, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """A hanging upstream gives 502 after --request-timeout, and stale data once cached."""
    upstream.add(build_wheel(tmp_path, "slowpkg", "1.0"))
    server = server_factory.start(
        upstream.simple_url, "--request-timeout", "1", "--mirror-cache-expiry", "0.001"
    )
    upstream.set_fault("simple/slowpkg", Fault("delay", seconds=10))
    try:
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"{server.index_url}slowpkg/", timeout=30)
        error.value.close()
        assert error.value.code == 502
        assert error.value.headers["Retry-After"]
        assert time.monotonic() - started < 3
        upstream.set_fault("simple/slowpkg", None)
        _page(server, "slowpkg")
        upstream.set_fault("simple/slowpkg", Fault("delay", seconds=10))
        time.sleep(0.01)
        started = time.monotonic()
        with urllib.request.urlopen(f"{server.index_url}slowpkg/", timeout=30) as response:
            assert response.status == 200
            assert response.headers["X-Cheeseboard-Stale"]
            assert b"slowpkg-1.0-py3-none-any.whl" in response.read()
        assert time.monotonic() - started < 3
    finally:
        upstream.set_fault("simple/slowpkg", None)


@pytest.mark.parametrize("kind", ["reset", "status"])
def test_broken_upstream_page_never_becomes_404(
    kind: str, server: CheeseboardServer, upstream: UpstreamServer, tmp_path: Path
) -> None:
    """Resets and 5xx from upstream give 502, never a 404 that clients would fall through."""
    name = f"flaky-{kind}"
    upstream.add(build_wheel(tmp_path, name, "1.0"))
    upstream.set_fault(f"simple/{name}", Fault(kind, status=503))  # type: ignore[arg-type]
    try:
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"{server.index_url}{name}/", timeout=30)
        error.value.close()
        assert error.value.code == 502
    finally:
        upstream.set_fault(f"simple/{name}", None)


def test_upstream_404_is_cached_as_not_found(
    server: CheeseboardServer, upstream: UpstreamServer
) -> None:
    """An unknown name is asked upstream once per expiry, answered 404 each time."""
    for _ in range(3):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"{server.index_url}does-not-exist/", timeout=30)
        error.value.close()
        assert error.value.code == 404
    assert upstream.count("/simple/does-not-exist/") == 1
