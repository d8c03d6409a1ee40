"""Real pip and uv installs through root/pypi, and what happens when upstream goes away."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

import pytest

from tests.support.clients import installed, pip_install, uv_install
from tests.support.packages import Dist
from tests.support.server import CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

EXPECTED = {"app", "lib_a", "lib_b", "lib_c"}


def _ok(result: object) -> None:
    assert getattr(result, "returncode", 1) == 0, (
        f"installer failed:\n{getattr(result, 'stdout', '')}\n{getattr(result, 'stderr', '')}"
    )


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def _until_asked(upstream: UpstreamServer, paths: list[str]) -> None:
    deadline = time.monotonic() + 15
    while not all(upstream.count(path) for path in paths):
        assert time.monotonic() < deadline, [r.path for r in upstream.requests]
        time.sleep(0.05)
    time.sleep(0.5)  # the write that follows each answer


@pytest.mark.parametrize("upstream_kind", ["html", "json"])
def test_pip_then_uv_install_and_second_install_is_local(
    upstream_kind: str,
    request: pytest.FixtureRequest,
    server_factory: ServerFactory,
    tmp_path: Path,
) -> None:
    """pip installs a tree through the mirror; later pip and uv installs ask upstream nothing."""
    upstream: UpstreamServer = request.getfixturevalue(f"{upstream_kind}_upstream")
    server = server_factory.start(mirror_url=upstream.simple_url)
    first = pip_install(server.index_url, tmp_path / "pip1", "app")
    _ok(first)
    assert installed(tmp_path / "pip1") == EXPECTED
    assert upstream.count("/files/", method="GET") >= 4
    if upstream_kind == "html":
        # The JSON API's facts follow the install in the background, once its requests pause
        # (services/quiet.py, at most 3 s): the first install's work, not the next ones'.
        _until_asked(
            upstream, [f"/pypi/{name}/json" for name in ("app", "lib-a", "lib-b", "lib-c")]
        )
    upstream.clear_requests()
    _ok(pip_install(server.index_url, tmp_path / "pip2", "app"))
    _ok(uv_install(server.index_url, tmp_path / "uv", "app"))
    assert installed(tmp_path / "pip2") == EXPECTED
    assert installed(tmp_path / "uv") == EXPECTED
    assert upstream.requests == [], [r.path for r in upstream.requests]


def test_uv_cold_install_resolves_with_metadata_only(
    mirror_server: CheeseboardServer, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """uv resolves from .metadata; each wheel is downloaded from upstream exactly once."""
    _ok(uv_install(mirror_server.index_url, tmp_path / "uv", "app"))
    assert installed(tmp_path / "uv") == EXPECTED
    paths = [r.path for r in html_upstream.requests if r.method == "GET"]
    for name in ("app", "lib_a", "lib_b", "lib_c"):
        assert paths.count(f"/files/{name}-1.0-py3-none-any.whl") == 1, paths


def test_upstream_down_serves_cache_and_502_for_unknown(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """Upstream stopped: cached projects install, uncached give 502, also after a restart."""
    # A zero expiry forces a refresh attempt on every request, so the stale path is really taken.
    server = server_factory.start(html_upstream.simple_url, "--mirror-cache-expiry", "0.001")
    _ok(pip_install(server.index_url, tmp_path / "warm", "app"))
    html_upstream.stop()
    for attempt in ("running", "restarted"):
        if attempt == "restarted":
            server.restart()
        target = tmp_path / f"offline-{attempt}"
        _ok(pip_install(server.index_url, target, "app"))
        assert installed(target) == EXPECTED
        _ok(uv_install(server.index_url, tmp_path / f"uv-{attempt}", "app"))
        assert _status(server.index_url + "never-fetched/") == 502
    assert "Traceback" not in server.log()


def test_upstream_back_after_failure_recovers(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """An uncached name gives 502 while upstream is down and installs once it is back."""
    server = server_factory.start(html_upstream.simple_url)
    html_upstream.stop()
    assert _status(server.index_url + "lib-c/") == 502
    html_upstream.start()
    _ok(pip_install(server.index_url, tmp_path / "t", "lib-c"))
    assert installed(tmp_path / "t") == {"lib_c"}


def test_offline_mode_lists_only_cached_files(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """--offline never contacts upstream, lists only cached files and 404s the rest."""
    server = server_factory.start(html_upstream.simple_url)
    _ok(pip_install(server.index_url, tmp_path / "warm", "lib-c"))
    server.stop()
    offline = CheeseboardServer(server.datadir, server.port, ["--offline"])
    offline.start()
    try:
        html_upstream.clear_requests()
        with urllib.request.urlopen(server.index_url + "lib-c/", timeout=10) as response:
            page = response.read().decode()
        assert "lib_c-1.0-py3-none-any.whl" in page
        assert "lib_c-1.0.tar.gz" not in page  # never downloaded, so not offered
        assert _status(server.index_url + "app/") == 404
        _ok(pip_install(server.index_url, tmp_path / "off", "lib-c"))
        assert html_upstream.requests == []
    finally:
        offline.stop()


@pytest.mark.parametrize("upstream_kind", ["html", "json"])
def test_page_refresh_prefetches_newest_pure_wheel_metadata(
    upstream_kind: Literal["html", "json"],
    server_factory: ServerFactory,
    dists: dict[str, list[Dist]],
) -> None:
    """A page refresh starts the .metadata fetch; the client's request then reuses it.

    The prefetch needs the core-metadata hash on upstream's page itself: on an upstream whose
    page advertises it (PEP 658/714; HTML or PEP 691 JSON). An HTML page without it gets the hash
    from the JSON API only in the background after the page is stored (e46ff76), and the
    prefetch, which reads upstream's page, has none to start."""
    upstream = UpstreamServer(upstream_kind, advertise_core_metadata=True)
    for files in dists.values():
        for dist in files:
            upstream.add(dist)
    with upstream:
        mirror_server = server_factory.start(mirror_url=upstream.simple_url)
        with urllib.request.urlopen(mirror_server.index_url + "lib-b/", timeout=30) as response:
            assert response.status == 200
        metadata_path = "/files/lib_b-1.0-py3-none-any.whl.metadata"
        deadline = time.monotonic() + 5
        while upstream.count(metadata_path) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.count(metadata_path) == 1
        wheel = dists["lib_b"][0]
        digest = wheel.sha256
        url = (
            f"{mirror_server.url}root/pypi/+f/{digest[:3]}/{digest[3:16]}/{wheel.filename}.metadata"
        )
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == wheel.metadata
        assert upstream.count(metadata_path) == 1
        assert upstream.count("/files/lib_b-1.0.tar.gz") == 0  # sdists are never prefetched
