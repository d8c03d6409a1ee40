"""The PyPI JSON API of an index: project and version documents built from the mirror."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

HOSTS = 200  # distinct Host values, as an anonymous attacker would send
BIG_RELEASES = 600  # a project whose JSON document is large (~300 kB)
RSS_BOUND = 20 * 1024 * 1024


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module's read-only tests (tests/conftest.py); reset after each test."""
    return shared_mirror_server


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def _json(url: str) -> dict[str, Any]:
    status, _, body = _get(url)
    assert status == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def _with_facts(url: str) -> dict[str, Any]:
    """The document once the upstream JSON API's facts (sizes, upload times) have landed: from
    an HTML-only upstream the first answer comes from the simple page alone, the facts follow
    in the background (services/mirror.py)."""
    deadline = time.monotonic() + 10
    while True:
        document = _json(url)
        entries = [entry for files in document["releases"].values() for entry in files]
        if entries and all(e["size"] is not None and e["upload_time_iso_8601"] for e in entries):
            return document
        assert time.monotonic() < deadline, f"no sizes and upload times in {url}"
        time.sleep(0.05)


def test_project_json_has_pypi_shape(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]]
) -> None:
    """info comes from the wheel's METADATA; releases and urls point at our own file URLs."""
    document = _with_facts(f"{mirror_server.url}root/pypi/+pypi/lib-a/json")
    info = document["info"]
    assert info["name"] == "lib-a"
    assert info["version"] == "1.0"
    assert info["requires_python"] == ">=3.8"
    assert info["requires_dist"] == ["lib-c"]
    assert info["summary"]
    assert set(document) >= {"info", "last_serial", "releases", "urls", "vulnerabilities"}
    files = {entry["filename"]: entry for entry in document["releases"]["1.0"]}
    for dist in dists["lib-a"]:
        entry = files[dist.filename]
        assert entry["digests"]["sha256"] == dist.sha256
        assert entry["size"] == dist.size
        assert entry["url"].startswith(mirror_server.url + "root/pypi/+f/")
        assert entry["upload_time_iso_8601"].endswith("Z")
        status, _, body = _get(entry["url"])
        assert status == 200 and len(body) == dist.size
    assert [e["filename"] for e in document["urls"]] == [e["filename"] for e in files.values()]


def test_version_json_matches_canonically_and_has_no_releases(
    mirror_server: CheeseboardServer,
) -> None:
    """/1.0.0/json finds release 1.0; unknown versions and projects are 404."""
    document = _json(f"{mirror_server.url}root/pypi/+pypi/lib-a/1.0.0/json")
    assert document["info"]["version"] == "1.0"
    assert "releases" not in document
    assert _get(f"{mirror_server.url}root/pypi/+pypi/lib-a/9.9/json")[0] == 404
    assert _get(f"{mirror_server.url}root/pypi/+pypi/no-such-thing/json")[0] == 404


@pytest.mark.parametrize("suffix", ["json", "1.0/json"])
def test_non_normalized_name_redirects(mirror_server: CheeseboardServer, suffix: str) -> None:
    """A non-normalized project name gets a 301 to the normalized URL."""
    request = urllib.request.Request(f"{mirror_server.url}root/pypi/+pypi/Lib_A/{suffix}")
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as error:
        opener.open(request, timeout=30)
    error.value.close()
    assert error.value.code == 301
    assert error.value.headers["Location"] == f"/root/pypi/+pypi/lib-a/{suffix}"


def test_json_api_revalidates_with_etag(mirror_server: CheeseboardServer) -> None:
    """The document has a strong ETag and answers If-None-Match with 304."""
    url = f"{mirror_server.url}root/pypi/+pypi/lib-b/json"
    _with_facts(url)  # the document changes once more when they land
    status, headers, _ = _get(url)
    assert status == 200 and headers["etag"].startswith('"')
    assert _get(url, **{"If-None-Match": headers["etag"]})[0] == 304


def _tree_rss(pid: int) -> int:
    """Summed VmRSS of ``pid`` and its descendants (the server and its workers), in bytes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with open(f"/proc/{current}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _big_project(upstream: UpstreamServer, dest: Path) -> None:
    for number in range(BIG_RELEASES):
        upstream.add(build_sdist(dest, "bigproj", f"0.{number}"))
    upstream.add(build_wheel(dest, "bigproj", f"0.{BIG_RELEASES}"))


def test_host_header_values_do_not_grow_the_cache(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """200 requests with distinct Host headers leave RSS within 20 MB; each answer uses its Host."""
    mirror_server = server_factory.start(mirror_url=html_upstream.simple_url)  # its own RSS
    _big_project(html_upstream, tmp_path / "big")
    url = f"{mirror_server.url}root/pypi/+pypi/bigproj/json"
    for _ in range(3):  # warm up: page fetched, metadata read, allocator settled
        assert _get(url)[0] == 200
    assert mirror_server.process is not None
    before = _tree_rss(mirror_server.process.pid)
    etags = set()
    for number in range(HOSTS):
        host = f"h{number}.example.org"
        status, headers, body = _get(url, Host=host)
        assert status == 200, body
        document = json.loads(body)
        assert len(document["releases"]) == BIG_RELEASES + 1
        assert document["info"]["version"] == f"0.{BIG_RELEASES}"
        assert document["urls"][0]["url"].startswith(f"http://{host}/root/pypi/+f/")
        assert document["info"]["package_url"] == f"http://{host}/root/pypi/+simple/bigproj/"
        etags.add(headers["etag"])
    grown = _tree_rss(mirror_server.process.pid) - before
    assert grown < RSS_BOUND, f"RSS grew by {grown / 1e6:.1f} MB for {HOSTS} Host values"
    assert len(etags) == HOSTS  # different bytes, different validators


def test_equivalent_version_spellings_share_one_document(
    mirror_server: CheeseboardServer,
) -> None:
    """1.0, 1.0.0, 1.00.0 ... name one release and get the same document and ETag."""
    answers = {
        _get(f"{mirror_server.url}root/pypi/+pypi/lib-a/{spelling}/json")[1]["etag"]
        for spelling in ("1.0", "1.0.0", "1.00.0", "01.0", "1.0.0.0.0")
    }
    assert len(answers) == 1


def test_outside_url_wins_over_host(
    server_factory: ServerFactory, html_upstream: UpstreamServer
) -> None:
    """With --outside-url every URL in the document is under it, whatever Host says."""
    server = server_factory.start(
        html_upstream.simple_url, "--outside-url", "https://pypi.example.com/mirror/"
    )
    status, _, body = _get(f"{server.url}root/pypi/+pypi/lib-a/json", Host="evil.example")
    assert status == 200, body
    document = json.loads(body)
    assert document["urls"] and all(
        entry["url"].startswith("https://pypi.example.com/mirror/root/pypi/+f/")
        for entry in document["urls"]
    )
    assert b"evil.example" not in body


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
