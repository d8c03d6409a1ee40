"""The hot path: cached pages and files are served from memory, with no database query."""

from __future__ import annotations

import base64
import re
import time
import urllib.error
import urllib.request

from tests.support.api import call, status_of
from tests.support.packages import Dist
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

JSON = "application/vnd.pypi.simple.v1+json"
ROOT = ("root", ROOT_PASSWORD)


def _metrics(server: CheeseboardServer) -> dict[str, int]:
    with urllib.request.urlopen(server.url + "-/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        name: int(value)
        # The counters of issue 19 have no labels since issue 23 (summed over the workers).
        for name, value in re.findall(r"^cheeseboard_(\w+) (\d+)$", text, re.MULTILINE)
    }


def _settled_metrics(server: CheeseboardServer) -> dict[str, int]:
    """Metrics once background work (a cached file's bookkeeping) has finished."""
    previous = _metrics(server)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        current = _metrics(server)
        if current == previous:
            return current
        previous = current
    raise AssertionError("server kept working in the background")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _get(url: str, accept: str = "") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        body: bytes = response.read()
        return body


def test_cached_pages_and_files_need_no_database_or_upstream(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]]
) -> None:
    """After the first request, 100 page, file and .metadata requests open no DB connection."""
    wheel = dists["lib-c"][0]
    page_url = mirror_server.index_url + "lib-c/"
    file_url = (
        f"{mirror_server.url}root/pypi/+f/{wheel.sha256[:3]}/{wheel.sha256[3:16]}/{wheel.filename}"
    )
    _get(page_url)
    _get(page_url, JSON)
    assert _get(file_url) == wheel.path.read_bytes()
    assert _get(file_url + ".metadata") == wheel.metadata
    _settled_metrics(mirror_server)
    for url, accept in (
        (page_url, ""),
        (page_url, JSON),
        (file_url, ""),
        (file_url + ".metadata", ""),
    ):
        _get(url, accept)  # caches refilled after the bookkeeping of the first download
    before = _metrics(mirror_server)
    for _ in range(25):
        _get(page_url)
        _get(page_url, JSON)
        _get(file_url)
        _get(file_url + ".metadata")
    after = _metrics(mirror_server)
    assert after["db_reads_total"] == before["db_reads_total"]
    assert after["db_writes_total"] == before["db_writes_total"]
    assert after["upstream_requests_total"] == before["upstream_requests_total"]
    assert after["page_builds_total"] == before["page_builds_total"]
    assert after["page_cache_hits_total"] - before["page_cache_hits_total"] == 50


def test_pages_and_files_under_a_cooldown_and_blocks_stay_in_memory(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]]
) -> None:
    """The supply-chain guard judges from memory (issue 21): with a cooldown on the mirror and
    a server-wide block, cached pages and files still open no database connection."""
    from tests.support.api import call
    from tests.support.server import ROOT_PASSWORD

    root = ("root", ROOT_PASSWORD)
    status, body = call(mirror_server.url, "PATCH", "/root/pypi", ["min_release_age=7d"], root)
    assert status == 200, body
    status, body = call(
        mirror_server.url, "POST", "/+blocks", {"project": "lib-a", "reason": "test"}, root
    )
    assert status == 201, body
    wheel = dists["lib-c"][0]
    page_url = mirror_server.index_url + "lib-c/"
    file_url = (
        f"{mirror_server.url}root/pypi/+f/{wheel.sha256[:3]}/{wheel.sha256[3:16]}/{wheel.filename}"
    )
    assert wheel.filename.encode() in _get(page_url)  # uploaded in 2024: long out of cooldown
    assert _get(file_url) == wheel.path.read_bytes()
    _settled_metrics(mirror_server)
    for url, accept in ((page_url, ""), (page_url, JSON), (file_url, "")):
        _get(url, accept)
    before = _metrics(mirror_server)
    for _ in range(25):
        _get(page_url)
        _get(page_url, JSON)
        _get(file_url)
    after = _metrics(mirror_server)
    assert after["db_reads_total"] == before["db_reads_total"]
    assert after["db_writes_total"] == before["db_writes_total"]
    assert after["page_builds_total"] == before["page_builds_total"]
    assert after["page_cache_hits_total"] - before["page_cache_hits_total"] == 50


def test_a_read_decision_the_hot_path_remembers_ends_with_the_change(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]]
) -> None:
    """The hot path remembers its read decision for callers without credentials (per index,
    until the serial moves): making the index private turns them away on every worker at once,
    and opening it again lets them back in."""
    wheel = dists["lib-c"][0]
    page_url = mirror_server.index_url + "lib-c/"
    file_url = (
        f"{mirror_server.url}root/pypi/+f/{wheel.sha256[:3]}/{wheel.sha256[3:16]}/{wheel.filename}"
    )
    _get(page_url)
    assert _get(file_url) == wheel.path.read_bytes()
    _settled_metrics(mirror_server)
    for _ in range(20):  # both workers answer both from memory, and remember the decision
        _get(page_url)
        _get(file_url)

    def anonymous_statuses() -> set[int]:
        statuses = set()
        for _ in range(20):
            for url in (page_url, file_url):
                statuses.add(status_of(url))
        return statuses

    status, body = call(mirror_server.url, "PATCH", "/root/pypi", ["acl_read=root"], auth=ROOT)
    assert status == 200, body
    root = {
        "Authorization": "Basic " + base64.b64encode(b"root:" + ROOT_PASSWORD.encode()).decode()
    }
    for _ in range(20):  # root still reads both, which fills the workers' caches again
        for url in (page_url, file_url):
            with urllib.request.urlopen(urllib.request.Request(url, headers=root)) as response:
                assert response.status == 200
    assert anonymous_statuses() == {401}  # asked to sign in, by every worker
    status, body = call(
        mirror_server.url, "PATCH", "/root/pypi", ["acl_read=:ANONYMOUS:"], auth=ROOT
    )
    assert status == 200, body
    assert anonymous_statuses() == {200}


def test_a_signed_in_reader_the_hot_path_remembers_is_refused_after_the_change(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]]
) -> None:
    """The hot path also remembers a user's identity and read decision (per credentials as
    sent, until the serial moves): taking the user off the index's readers, and changing their
    password, each take effect on every worker at once."""
    wheel = dists["lib-c"][0]
    page_url = mirror_server.index_url + "lib-c/"
    file_url = (
        f"{mirror_server.url}root/pypi/+f/{wheel.sha256[:3]}/{wheel.sha256[3:16]}/{wheel.filename}"
    )
    status, body = call(mirror_server.url, "PUT", "/hotreader", {"password": "old-pw"}, auth=ROOT)
    assert status == 201, body

    def statuses(password: str, rounds: int = 20) -> set[int]:
        found = set()
        for _ in range(rounds):  # enough for both workers, each asked several times
            for url in (page_url, file_url):
                request = urllib.request.Request(url, headers=_basic("hotreader", password))
                found.add(status_of(request))
        return found

    def readers(acl: str) -> None:
        status, body = call(
            mirror_server.url, "PATCH", "/root/pypi", [f"acl_read={acl}"], auth=ROOT
        )
        assert status == 200, body

    try:
        _get(page_url)
        assert _get(file_url) == wheel.path.read_bytes()
        _settled_metrics(mirror_server)
        readers("root,hotreader")
        assert statuses("old-pw") == {200}  # remembered by both workers
        readers("root")
        assert statuses("old-pw") == {404}  # signed in, and not a reader: as for no index
        readers("root,hotreader")
        assert statuses("old-pw") == {200}
        status, body = call(
            mirror_server.url, "PATCH", "/hotreader", {"password": "new-pw"}, auth=ROOT
        )
        assert status == 200, body
        for _ in range(20):  # root's reads fill the workers' page and file caches again
            for url in (page_url, file_url):
                assert status_of(urllib.request.Request(url, headers=_basic(*ROOT))) == 200
        # The old password reads as no one: sign in. Four rounds: each is a failed sign-in,
        # and the tenth would be throttled (429).
        assert statuses("old-pw", rounds=4) == {401}
        assert statuses("new-pw") == {200}
    finally:
        readers(":ANONYMOUS:")
