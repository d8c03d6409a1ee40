"""The supply-chain guard end to end (issue 21), with real uv and pip, on SQLite and on
PostgreSQL + S3: the cooldown, its exemptions and their expiry, ``+at`` URLs, blocks, a ``MAL-``
advisory blocking a file already cached, and files of unknown age held.

The upstream is HTML-only (upload times come from its JSON API, as from PyPI's): ``fresh`` has
1.0 from 30 days ago and 2.0 from yesterday; ``steady`` 1.0 from 20 days ago and 1.1 from 10;
``evil`` 1.0 from 60 days ago; ``notime`` 1.0, whose JSON API fails, so its age is unknown.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.api import call
from tests.support.backends import BACKENDS, factory_for
from tests.support.clients import pip_install, uv_install
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory, server_command
from tests.support.upstream import JSON_CT, Fault, UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret-1")
NOW = datetime.now(UTC)


def _ago(days: float) -> str:
    return (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


RELEASES = {  # (project, version): upload time
    ("fresh", "1.0"): _ago(30),
    ("fresh", "2.0"): _ago(1),
    ("steady", "1.0"): _ago(20),
    ("steady", "1.1"): _ago(10),
    ("evil", "1.0"): _ago(60),
    ("notime", "1.0"): _ago(90),
}


@dataclass
class Guarded:
    server: CheeseboardServer
    factory: ServerFactory
    upstream: UpstreamServer
    dists: dict[tuple[str, str], Dist]
    tmp: Path

    def url(self, path: str) -> str:
        return self.server.url.rstrip("/") + path

    def index(self, name: str) -> str:
        return self.url(f"/{name}/+simple/")


def _ok(status: int, body: object, *expected: int) -> None:
    assert status in (expected or (200, 201)), (status, body)


@pytest.fixture(scope="module", params=BACKENDS)
def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Guarded]:
    base = tmp_path_factory.mktemp("supply-chain")
    built = base / "dists"
    built.mkdir()
    dists = {key: build_wheel(built, key[0], key[1]) for key in RELEASES}
    with pytest.MonkeyPatch.context() as env, UpstreamServer(mode="html") as upstream:
        for key, dist in dists.items():
            upstream.add(dist, upload_time=RELEASES[key])
        upstream.set_fault("pypi/notime", Fault("status", status=500))
        factory = factory_for(request.param, request, base, env)
        try:
            server = factory.start(upstream.simple_url)
            url = server.url
            _ok(*call(url, "PUT", "/alice", {"password": ALICE[1]}, ROOT))
            safe = {"bases": "root/pypi", "min_release_age": "7d"}
            _ok(*call(url, "PUT", "/alice/safe", safe, ROOT))  # root creates; alice owns it
            cool = {"type": "mirror", "mirror_url": upstream.simple_url, "min_release_age": "7d"}
            _ok(*call(url, "PUT", "/root/cool", cool, ROOT))
            yield Guarded(server, factory, upstream, dists, base)
        finally:
            factory.stop_all()


def _files(guarded: Guarded, index: str, project: str, prefix: str = "") -> list[str]:
    request = urllib.request.Request(
        guarded.url(f"/{index}{prefix}/+simple/{project}/"), headers={"Accept": JSON_CT}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return sorted(f["filename"] for f in json.loads(response.read())["files"])


def _versions(target: Path) -> dict[str, str]:
    found = {}
    for info in target.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found[name.lower()] = version
    return found


def _install(guarded: Guarded, tool: str, index_url: str, *requirements: str) -> dict[str, str]:
    target = guarded.tmp / f"{tool}-{uuid.uuid4().hex[:8]}"
    run = uv_install if tool == "uv" else pip_install
    done = run(index_url, target, *requirements)
    assert done.returncode == 0, done.stdout + done.stderr
    return _versions(target)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")


def _file_url(guarded: Guarded, index: str, dist: Dist) -> str:
    return guarded.url(f"/{index}/+f/{dist.sha256[:3]}/{dist.sha256[3:16]}/{dist.filename}")


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_a_day_old_release_waits_out_the_cooldown(guarded: Guarded, tool: str) -> None:
    assert _install(guarded, tool, guarded.index("alice/safe"), "fresh") == {"fresh": "1.0"}
    assert _install(guarded, tool, guarded.index("root/pypi"), "fresh") == {"fresh": "2.0"}
    assert _files(guarded, "alice/safe", "fresh") == [guarded.dists[("fresh", "1.0")].filename]


def test_a_held_file_is_refused_with_the_day_it_comes_free(guarded: Guarded) -> None:
    young = guarded.dists[("fresh", "2.0")]
    assert _files(guarded, "root/cool", "fresh") == [guarded.dists[("fresh", "1.0")].filename]
    for suffix in ("", ".metadata"):
        status, text = _get(_file_url(guarded, "root/cool", young) + suffix)
        assert status == 403, text
        free = (NOW + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M")
        assert "minimum release age of 1w" in text and f"available from {free}" in text
    status, _ = _get(_file_url(guarded, "root/pypi", young))
    assert status == 200  # root/pypi has no cooldown


def test_an_exemption_lets_it_through_until_it_expires(guarded: Guarded) -> None:
    url = guarded.server.url
    expires = (datetime.now(UTC) + timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = [f"release_age_exempt+=fresh==2.0; reason=fixes CVE-2026-1; expires={expires}"]
    _ok(*call(url, "PATCH", "/alice/safe", patch, ALICE))
    _, shown = call(url, "GET", "/alice/safe", None, ALICE)
    entry = shown["result"]["release_age_exempt"][0]
    assert (entry["entry"], entry["author"], entry["reason"]) == (
        "fresh==2.0",
        "alice",
        "fixes CVE-2026-1",
    )
    assert _install(guarded, "uv", guarded.index("alice/safe"), "fresh") == {"fresh": "2.0"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_files(guarded, "alice/safe", "fresh")) > 1:
        time.sleep(0.5)
    assert _install(guarded, "uv", guarded.index("alice/safe"), "fresh") == {"fresh": "1.0"}
    assert _install(guarded, "pip", guarded.index("alice/safe"), "fresh") == {"fresh": "1.0"}
    _ok(*call(url, "PATCH", "/alice/safe", ["release_age_exempt-=fresh==2.0"], ALICE))


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_an_as_of_url_reproduces_an_older_resolution(guarded: Guarded, tool: str) -> None:
    assert _install(guarded, tool, guarded.index("alice/safe"), "steady") == {"steady": "1.1"}
    # Eleven days ago 1.1 did not exist yet, and 1.0 (nine days old then) had served its
    # cooldown of a week; fifteen days ago it had not, and nothing was offered.
    moment = (NOW - timedelta(days=11)).strftime("%Y-%m-%dT%H:%M:%SZ")
    early = (NOW - timedelta(days=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    at = guarded.url(f"/alice/safe/+at/{moment}/+simple/")
    assert _install(guarded, tool, at, "steady") == {"steady": "1.0"}
    assert _files(guarded, "alice/safe", "steady", f"/+at/{moment}") == [
        guarded.dists[("steady", "1.0")].filename
    ]
    assert _files(guarded, "alice/safe", "steady", f"/+at/{early}") == []
    status, text = _get(guarded.url("/alice/safe/+at/not-a-time/+simple/steady/"))
    assert status == 400 and "RFC 3339" in text


def test_a_block_hides_a_version_and_its_removal_brings_it_back(guarded: Guarded) -> None:
    url = guarded.server.url
    body = {"project": "steady", "version": "1.1", "reason": "broken build"}
    assert call(url, "POST", "/alice/safe/+blocks", body, None)[0] == 401
    status, added = call(url, "POST", "/alice/safe/+blocks", body, ALICE)
    assert status == 201, added
    block = added["result"]
    assert (block["project"], block["specifier"], block["author"]) == ("steady", "==1.1", "alice")
    assert _install(guarded, "pip", guarded.index("alice/safe"), "steady") == {"steady": "1.0"}
    assert _install(guarded, "uv", guarded.index("root/pypi"), "steady") == {"steady": "1.1"}
    listed = call(url, "GET", "/alice/safe/+blocks", None, ALICE)[1]["result"]
    assert [b["id"] for b in listed] == [block["id"]]
    _ok(*call(url, "DELETE", f"/alice/safe/+blocks/{block['id']}", None, ALICE))
    assert _install(guarded, "uv", guarded.index("alice/safe"), "steady") == {"steady": "1.1"}


def test_a_malicious_package_advisory_blocks_a_cached_file(guarded: Guarded) -> None:
    evil = guarded.dists[("evil", "1.0")]
    assert _install(guarded, "uv", guarded.index("alice/safe"), "evil") == {"evil": "1.0"}
    assert _get(_file_url(guarded, "root/pypi", evil))[0] == 200  # cached now
    advisories = guarded.tmp / f"osv-{uuid.uuid4().hex[:6]}"
    advisories.mkdir()
    (advisories / "MAL-2026-7.json").write_text(
        json.dumps(
            {
                "id": "MAL-2026-7",
                "modified": "2026-12-01T00:00:00Z",
                "summary": "Malicious code in evil (PyPI)",
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "evil"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                    }
                ],
            }
        )
    )
    command = server_command("advisories", "import", "--datadir", str(guarded.server.datadir))
    database = guarded.factory.database_url
    done = subprocess.run(
        [*command, *(["--database-url", database] if database else []), str(advisories)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _files(guarded, "alice/safe", "evil"):
        time.sleep(0.2)
    assert _files(guarded, "alice/safe", "evil") == []
    status, text = _get(_file_url(guarded, "root/pypi", evil))
    assert status == 403 and "MAL-2026-7" in text
    target = guarded.tmp / "blocked"
    refused = uv_install(guarded.index("alice/safe"), target, "evil")
    assert refused.returncode != 0


def test_a_file_of_unknown_age_is_held_with_the_reason(guarded: Guarded) -> None:
    unknown = guarded.dists[("notime", "1.0")]
    assert _files(guarded, "root/cool", "notime") == []
    status, text = _get(_file_url(guarded, "root/cool", unknown))
    assert status == 403 and "upload time is unknown" in text, text
    assert _files(guarded, "root/pypi", "notime") == [unknown.filename]
