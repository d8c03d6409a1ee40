"""Issue 9: 200 readers and 20 uploaders for 60 s against ``--workers 2`` on the embedded store.

Readers mix PEP 691 JSON and PEP 503 HTML project pages (private, inherited through alice/dev and
straight from root/pypi), project lists, PEP 658 ``.metadata``, full and ranged file downloads and
devpi's JSON, and check every answer: exact file lists with hashes, downloaded bytes against their
sha256, and that every upload acknowledged before a request was sent is visible in its answer.
Meanwhile 20 clients upload new wheels and sdists through the legacy upload API. Afterwards every
acknowledged upload must be listed and downloadable with its sha256, and the server log must be
clean. Zero errors is the assertion; latency is measured and reported, not asserted.

The figures go to ``$CHEESEBOARD_ARTIFACTS/load.json`` (default ``.artifacts/load.json``) and are
printed (``pytest -s``). ``CHEESEBOARD_LOAD_SECONDS`` shortens the run while developing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.api import basic, call
from tests.support.load import (
    SIMPLE_JSON,
    Ledger,
    LoadStats,
    Probe,
    ProbeSource,
    Reply,
    Upload,
    access_log_summary,
    prepare_upload,
    project_names,
    run_load,
    same_origin,
    simple_files,
)
from tests.support.packages import Dist, build_sdist, build_wheel, normalize
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.stress

REPO = Path(__file__).resolve().parents[2]
READERS = 200
UPLOADERS = 20
SECONDS = float(os.environ.get("CHEESEBOARD_LOAD_SECONDS") or 60)
ALICE = ("alice", "alice-secret")
MIRROR_EXPIRY = 10  # seconds: mirrored pages are refreshed from upstream during the run
FRESH_PROJECTS = 40  # fresh-page probes read the newest projects being uploaded to
HTML = "text/html"
DEVPI_JSON = "application/json"

# Mirrored projects: name -> (versions, wheel payload bytes). "cold" files are first downloaded
# during the run; "late"'s page is first fetched during the run, so it only appears in page probes.
MIRRORED = {
    "mirror-alpha": (("1.0", "1.1", "2.0"), 200_000),
    "mirror-beta": (("0.9", "1.0"), 30_000),
    "Mirror.Gamma": (("3.0", "3.1"), 2_000),
    "mirror-cold": (("1.0", "1.1"), 80_000),
    "mirror-late": (("5.0",), 10_000),
}
COLD_FILES = {"mirror-cold"}
LATE_PAGE = "mirror-late"
PRIVATE = {
    "private-one": (("1.0", "1.1", "1.2"), 50_000),
    "private_two": (("0.1", "0.2"), 1_000),
}


@dataclass(frozen=True)
class Known:
    """A file the readers may ask for: where it lives and what it must contain."""

    dist: Dist
    index: str  # the index that stores it (root/pypi or alice/dev)
    data: bytes

    @property
    def path(self) -> str:
        sha = self.dist.sha256
        return f"/{self.index}/+f/{sha[:3]}/{sha[3:16]}/{self.dist.filename}"


def _build(dest: Path, projects: dict[str, tuple[tuple[str, ...], int]]) -> list[Dist]:
    built = []
    for name, (versions, payload) in projects.items():
        for version in versions:
            requires = ">=3.8" if name != "private_two" else None
            built.append(
                build_wheel(dest, name, version, payload_size=payload, requires_python=requires)
            )
            built.append(build_sdist(dest, name, version, payload_size=payload // 10))
    return built


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[UpstreamServer, list[Dist]]]:
    dists = _build(tmp_path / "mirrored", MIRRORED)
    with UpstreamServer(mode="json") as server:
        for dist in dists:
            server.add(dist)
        yield server, dists


# --- checks -------------------------------------------------------------------------------------


class Scenario:
    """The known content, and probe sources that check answers against it."""

    def __init__(
        self, server: CheeseboardServer, mirrored: list[Dist], private: list[Dist]
    ) -> None:
        self.base_url = server.url
        self.ledger = Ledger()
        self.files: dict[str, Known] = {}
        self.projects: dict[tuple[str, str], list[Known]] = {}  # (index, project) -> files
        for dists, index in ((mirrored, "root/pypi"), (private, "alice/dev")):
            for dist in dists:
                known = Known(dist, index, dist.path.read_bytes())
                self.files[dist.filename] = known
                project = normalize(dist.name)
                self.projects.setdefault((index, project), []).append(known)
                if index == "root/pypi":  # alice/dev inherits it
                    self.projects.setdefault(("alice/dev", project), []).append(known)
        self.known = list(self.files.values())
        self.private_names = {normalize(name) for name in PRIVATE}
        self.mirror_names = {normalize(name) for name in MIRRORED}
        # Files of the late project become readable once a client has seen its page, as pip
        # only asks for files it found on a page; before that the server may not know them.
        self.late_seen = False
        self.page_keys = sorted(self.projects)

    # Page contents

    def _check_listing(
        self, page_path: str, reply: Reply, expected: dict[str, tuple[str, str | None, str]]
    ) -> str | None:
        """``expected``: filename -> (sha256, core-metadata sha256, index storing it)."""
        listed = simple_files(self.base_url + page_path.lstrip("/"), reply)
        if set(listed) != set(expected):
            missing = sorted(set(expected) - set(listed))
            extra = sorted(set(listed) - set(expected))
            return f"files differ: missing {missing}, unexpected {extra}"
        for filename, entry in listed.items():
            sha256, meta, index = expected[filename]
            if entry.sha256 != sha256:
                return f"{filename}: sha256 {entry.sha256}, expected {sha256}"
            if entry.core_metadata != meta:
                return f"{filename}: core-metadata {entry.core_metadata}, expected {meta}"
            wanted = f"{self.base_url}{index}/+f/{sha256[:3]}/{sha256[3:16]}/{filename}"
            if entry.url != wanted or not same_origin(entry.url, self.base_url):
                return f"{filename}: link {entry.url}, expected {wanted}"
        return None

    @staticmethod
    def _status(reply: Reply, status: int, content_type: str) -> str | None:
        if reply.status != status:
            return f"status {reply.status}, expected {status}"
        got = reply.headers.get("content-type", "")
        if not got.startswith(content_type):
            return f"content-type {got!r}, expected {content_type}"
        return None

    def page_probe(self, category: str, accept: str, index: str, project: str) -> Probe:
        expected = {
            k.dist.filename: (
                k.dist.sha256,
                hashlib.sha256(k.dist.metadata).hexdigest() if k.dist.kind == "wheel" else None,
                k.index,
            )
            for k in self.projects[(index, project)]
        }
        path = f"/{index}/+simple/{project}/"

        def check(reply: Reply) -> str | None:
            problem = self._status(reply, 200, accept) or self._check_listing(path, reply, expected)
            if problem is None and project == LATE_PAGE:
                self.late_seen = True
            return problem

        return Probe(category, path, check, {"Accept": accept})

    def simple_json(self, rng: random.Random) -> Probe:
        return self.page_probe("simple-json", SIMPLE_JSON, *rng.choice(self.page_keys))

    def simple_html(self, rng: random.Random) -> Probe:
        return self.page_probe("simple-html", HTML, *rng.choice(self.page_keys))

    def project_list(self, rng: random.Random) -> Probe:
        accept = rng.choice((SIMPLE_JSON, HTML))
        uploaded = set(self.ledger.projects())  # acknowledged before the request is sent
        required = self.private_names | (self.mirror_names - {LATE_PAGE}) | uploaded
        ledger = self.ledger

        def check(reply: Reply) -> str | None:
            if problem := self._status(reply, 200, accept):
                return problem
            names = {normalize(name) for name in project_names(reply)}
            allowed = self.private_names | self.mirror_names | set(ledger.attempted)
            if missing := required - names:
                return f"project list lacks {sorted(missing)[:10]}"
            if extra := names - allowed:
                return f"project list has unknown {sorted(extra)[:10]}"
            return None

        return Probe("project-list", "/alice/dev/+simple/", check, {"Accept": accept})

    # Files

    def _pick(self, rng: random.Random, wheel: bool = False) -> Known:
        while True:
            known = rng.choice(self.known)
            if wheel and known.dist.kind != "wheel":
                continue
            if self.late_seen or normalize(known.dist.name) != LATE_PAGE:
                return known

    def metadata(self, rng: random.Random) -> Probe:
        known = self._pick(rng, wheel=True)

        def check(reply: Reply) -> str | None:
            if reply.status != 200:
                return f"status {reply.status}"
            if reply.body != known.dist.metadata:
                return "metadata differs from the wheel's METADATA"
            return None

        return Probe("metadata", known.path + ".metadata", check)

    def download(self, rng: random.Random) -> Probe:
        known = self._pick(rng)

        def check(reply: Reply) -> str | None:
            if reply.status != 200:
                return f"status {reply.status}"
            if len(reply.body) != known.dist.size:
                return f"{len(reply.body)} bytes, expected {known.dist.size}"
            if hashlib.sha256(reply.body).hexdigest() != known.dist.sha256:
                return "sha256 mismatch"
            return None

        return Probe("download", known.path, check)

    def download_range(self, rng: random.Random) -> Probe:
        known = self._pick(rng)
        size = known.dist.size
        if rng.random() < 0.25:  # the tail, as pip's lazy wheel asks first
            start, end = max(0, size - 4096), size - 1
            spec = f"bytes=-{end - start + 1}"
        else:
            start = rng.randrange(size)
            end = min(size - 1, start + rng.randrange(1, 65536))
            spec = f"bytes={start}-{end}"

        def check(reply: Reply) -> str | None:
            if reply.status != 206:
                return f"status {reply.status} for {spec}, expected 206"
            wanted = f"bytes {start}-{end}/{size}"
            if reply.headers.get("content-range") != wanted:
                return f"content-range {reply.headers.get('content-range')!r} for {spec}"
            if reply.body != known.data[start : end + 1]:
                return f"wrong bytes for {spec}"
            return None

        return Probe("download-range", known.path, check, {"Range": spec})

    # devpi's JSON

    def devpi_json(self, rng: random.Random) -> Probe:
        project = rng.choice(sorted(p for i, p in self.projects if i == "alice/dev"))
        files = self.projects[("alice/dev", project)]
        expected = {k.dist.filename: k.dist.sha256 for k in files}
        versions = {k.dist.version for k in files}

        def check(reply: Reply) -> str | None:
            if problem := self._status(reply, 200, DEVPI_JSON):
                return problem
            result: dict[str, Any] = json.loads(reply.body)["result"]
            if set(result) != versions:
                return f"versions {sorted(result)}, expected {sorted(versions)}"
            links = {
                link["href"].rsplit("/", 1)[-1]: link["hashes"]["sha256"]
                for release in result.values()
                for link in release.get("+links", [])
                if link.get("rel") == "releasefile"
            }
            if links != expected:
                return f"release files {links}, expected {expected}"
            return None

        return Probe("devpi-json", f"/alice/dev/{project}", check, {"Accept": DEVPI_JSON})

    # Uploads: read-your-writes on a project being uploaded to right now

    def fresh_page(self, rng: random.Random) -> Probe:
        projects = self.ledger.projects()
        if not projects:
            return self.simple_json(rng)
        project = rng.choice(projects[-FRESH_PROJECTS:])
        acked = self.ledger.snapshot(project)
        attempted = self.ledger.attempted[project]
        accept = rng.choice((SIMPLE_JSON, HTML))
        path = f"/alice/dev/+simple/{project}/"

        def check(reply: Reply) -> str | None:
            if problem := self._status(reply, 200, accept):
                return problem
            listed = simple_files(self.base_url + path.lstrip("/"), reply)
            if missing := sorted(set(acked) - set(listed)):
                return f"acknowledged uploads not listed: {missing}"
            for filename, entry in listed.items():
                if attempted.get(filename) != entry.sha256:
                    return f"{filename} listed with sha256 {entry.sha256}, never uploaded"
            return None

        return Probe("fresh-page", path, check, {"Accept": accept})

    def sources(self) -> dict[ProbeSource, float]:
        return {
            self.simple_json: 20,
            self.simple_html: 12,
            self.project_list: 5,
            self.metadata: 15,
            self.download: 18,
            self.download_range: 8,
            self.devpi_json: 7,
            self.fresh_page: 15,
        }


# --- setup --------------------------------------------------------------------------------------


def _get(server: CheeseboardServer, path: str, accept: str = HTML) -> tuple[int, bytes]:
    request = urllib.request.Request(server.url + path.lstrip("/"), headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status), response.read()


def _uploader(dest: Path, uploader: int) -> Callable[[int], Upload]:
    """Uploader ``uploader``'s ``n``-th upload: wheel and sdist of a new version, a new project
    every four versions; the files are small and built as they are needed (a fraction of a
    millisecond each)."""

    def make(n: int) -> Upload:
        name = f"load-up{uploader:02d}-{n // 8}"
        version = f"1.{n // 2}"
        payload = random.Random(f"{uploader}-{n}").randrange(0, 16_000)
        build = build_wheel if n % 2 == 0 else build_sdist
        return prepare_upload(build(dest / str(uploader), name, version, payload_size=payload))

    return make


async def _audit(scenario: Scenario, timeout: float = 60.0) -> list[str]:
    """Every acknowledged upload is listed with its sha256 and downloads with the same bytes."""
    problems: list[str] = []
    ledger = scenario.ledger
    semaphore = asyncio.Semaphore(16)
    base = scenario.base_url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:

        async def project(name: str) -> None:
            async with semaphore:
                url = f"{base}alice/dev/+simple/{name}/"
                async with session.get(url, headers={"Accept": SIMPLE_JSON}) as response:
                    reply = Reply(
                        response.status,
                        {k.lower(): v for k, v in response.headers.items()},
                        await response.read(),
                    )
            if reply.status != 200:
                problems.append(f"{url}: status {reply.status}")
                return
            listed = simple_files(url, reply)
            for filename, sha256 in ledger.acked[name].items():
                entry = listed.get(filename)
                if entry is None or entry.sha256 != sha256:
                    problems.append(f"{name}: acknowledged {filename} lost ({entry})")
                    continue
                async with semaphore, session.get(entry.url) as response:
                    data = await response.read()
                if response.status != 200 or hashlib.sha256(data).hexdigest() != sha256:
                    problems.append(f"{entry.url}: status {response.status}, wrong bytes")
            for filename, entry in listed.items():
                if ledger.attempted[name].get(filename) != entry.sha256:
                    problems.append(f"{name}: {filename} listed but never uploaded")

        await asyncio.gather(*(project(name) for name in list(ledger.attempted)))
        async with session.get(f"{base}alice/dev/+simple/", headers={"Accept": SIMPLE_JSON}) as r:
            listed_projects = {normalize(p["name"]) for p in json.loads(await r.read())["projects"]}
        if missing := set(ledger.projects()) - listed_projects:
            problems.append(f"project list lacks uploaded {sorted(missing)[:10]}")
    return problems


def _loadavg() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _artifact(figures: dict[str, Any]) -> Path:
    folder = Path(os.environ.get("CHEESEBOARD_ARTIFACTS") or REPO / ".artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "load.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


def test_200_readers_and_20_uploaders_for_60_seconds(
    server_factory: ServerFactory,
    upstream: tuple[UpstreamServer, list[Dist]],
    tmp_path: Path,
) -> None:
    """Zero errors over the run and nothing acknowledged lost; p50/p95/p99/max per category."""
    mirror, mirrored = upstream
    server = server_factory.start(
        mirror.simple_url, "--workers", "2", "--mirror-cache-expiry", str(MIRROR_EXPIRY)
    )
    status, body = call(
        server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=("root", ROOT_PASSWORD)
    )
    assert status == 201, body
    status, body = call(
        server.url, "PUT", "/alice/dev", {"bases": "root/pypi"}, auth=("root", ROOT_PASSWORD)
    )
    assert status == 200, body
    private = _build(tmp_path / "private", PRIVATE)
    scenario = Scenario(server, mirrored, private)

    async def setup() -> None:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60),
            headers={"Authorization": basic(*ALICE)},
        ) as session:
            for dist in private:
                upload = prepare_upload(dist)
                async with session.post(
                    f"{server.url}alice/dev/",
                    data=upload.body,
                    headers={"Content-Type": upload.content_type},
                ) as response:
                    assert response.status == 200, await response.text()

    asyncio.run(setup())
    # Warm: pages of every project but the late one; files and .metadata of all but the cold ones.
    for (index, project), files in scenario.projects.items():
        if project == LATE_PAGE:
            continue
        for accept in (SIMPLE_JSON, HTML):
            status, page = _get(server, f"/{index}/+simple/{project}/", accept)
            assert status == 200, page
        for known in files:
            if normalize(known.dist.name) in COLD_FILES:
                continue
            assert _get(server, known.path)[1] == known.data
            if known.dist.kind == "wheel":
                assert _get(server, known.path + ".metadata")[1] == known.dist.metadata
    load_before = _loadavg()
    log_start = len(server.log())
    mirror.clear_requests()

    stats: LoadStats = asyncio.run(
        run_load(
            server.url,
            probes=scenario.sources(),
            readers=READERS,
            uploaders=[_uploader(tmp_path / "uploads", n) for n in range(UPLOADERS)],
            upload_url=f"{server.url}alice/dev/",
            upload_auth=ALICE,
            seconds=SECONDS,
            ledger=scenario.ledger,
        )
    )
    load_after = _loadavg()
    # Pages of warmed mirror projects asked for again: refreshes after --mirror-cache-expiry.
    refreshes = sum(
        mirror.count(f"/simple/{normalize(name)}/")
        for name in MIRRORED
        if normalize(name) != LATE_PAGE
    )
    upstream_pages, upstream_files = mirror.count("/simple/"), mirror.count("/files/")
    time.sleep(0.5)  # the access log is flushed every 200 ms
    server_side = access_log_summary(server.log()[log_start:])
    audit = asyncio.run(_audit(scenario))
    server.stop()  # whatever the shutdown logs is checked too
    log = server.log()
    figures = {
        "readers": READERS,
        "uploaders": UPLOADERS,
        "workers": 2,
        "seconds": SECONDS,
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        **stats.to_json(),
        "uploads_attempted": sum(len(f) for f in scenario.ledger.attempted.values()),
        "uploads_acknowledged": scenario.ledger.acked_count,
        "upload_projects": len(scenario.ledger.projects()),
        "uploads_per_s": round(scenario.ledger.acked_count / stats.elapsed, 1),
        "upstream_requests": {
            "pages": upstream_pages,
            "mirror_refreshes": refreshes,
            "files": upstream_files,
        },
        "server_side": server_side,
        "audit_problems": audit[:50],
    }
    path = _artifact(figures)
    report = (
        f"{stats.table()}\nuploads acknowledged: {scenario.ledger.acked_count} of "
        f"{figures['uploads_attempted']}; upstream requests: {upstream_pages} pages "
        f"({refreshes} refreshes of warmed projects), {upstream_files} files\n"
        f"server side: {server_side}\nload average {load_before} -> {load_after}; "
        f"figures in {path}"
    )
    print("\n" + report)
    assert stats.errors == 0, report
    assert audit == [], "\n".join(audit[:20])
    assert set(stats.latencies) >= {
        "simple-json",
        "simple-html",
        "project-list",
        "metadata",
        "download",
        "download-range",
        "devpi-json",
        "fresh-page",
        "upload",
    }, report
    assert scenario.ledger.acked_count >= UPLOADERS, report
    if SECONDS >= 2 * MIRROR_EXPIRY:  # mirrored pages were refreshed from upstream under load
        assert refreshes > 0, report
    assert len(server_side["by_worker"]) == 2, server_side
    assert not any(status.startswith("5") for status in server_side["by_status"]), server_side
    for bad in ("Traceback", "database is locked", " ERROR "):
        at = log.find(bad)
        assert at == -1, log[max(0, at - 2000) : at + 3000]
