"""Upstream fault matrix (issue 9): every fault kind against every target it applies to.

A fault-injecting upstream on 127.0.0.1 (``tests/support/upstream.py``) times out, resets, answers
500, trickles or stalls its body, truncates it, advertises wrong hashes, sends malformed HTML or
JSON or the wrong content type, loops redirects, streams endless pages, or is down altogether.
For every case the server answers within ``--request-timeout`` (1 s here) plus a margin, with a
clean status (502 with Retry-After when nothing is cached; never 404, never 500, no traceback in
its log); serves the cached page, marked stale, when it has one; stores nothing bad; and recovers
by itself, without a restart, once upstream behaves again.

One upstream and one server per upstream mode serve the whole module (``json``: pypi.org-like,
PEP 691 with sizes, core-metadata hashes and ETags; ``html``: the plain PEP 503 mirror CI reaches,
whose sizes and metadata hashes come from the JSON API). Every case works on a project of its own,
so cases never see each other's pages, files or faults. The cache expiry is 1 ms: every page
request asks upstream, and a cached page is always expired.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import pytest

from cheeseboard.mirror.client import MAX_PAGE_BYTES
from cheeseboard.services.mirror import PARSE_IN_THREAD_BYTES
from tests.support.packages import Dist, build_sdist, build_wheel, normalize
from tests.support.server import CheeseboardServer, ServerFactory
from tests.support.upstream import (
    DEFAULT_UPLOAD_TIME,
    JSON_CT,
    Fault,
    UpstreamServer,
    corrupted,
)

Mode = Literal["json", "html"]
MODES: tuple[Mode, ...] = ("json", "html")
REQUEST_TIMEOUT = 1.0
# Deadline for every answer: --request-timeout plus a margin for a busy 2-core machine.
BOUND = REQUEST_TIMEOUT + 2.0
SERVER_ARGS = ("--request-timeout", f"{REQUEST_TIMEOUT:g}", "--mirror-cache-expiry", "0.001")
STALE = "x-cheeseboard-stale"


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One answer from the server under test, with its timing."""

    status: int  # -1: no HTTP answer at all
    headers: dict[str, str]  # lower-case names
    body: bytes
    complete: bool  # the whole body arrived (False: the connection was cut short)
    first: float  # seconds until the status line and headers
    elapsed: float  # seconds until the body ended

    def files(self) -> dict[str, dict[str, Any]]:
        """A PEP 691 page's file entries by filename."""
        document = json.loads(self.body)
        return {entry["filename"]: entry for entry in document["files"]}


# Answer times of the running test, kept as its ``slowest_answer_seconds`` user property (shown
# in --junitxml output): how close each case comes to the bound.
_answer_times: list[float] = []


@pytest.fixture(autouse=True)
def _report_answer_times(request: pytest.FixtureRequest) -> Iterator[None]:
    _answer_times.clear()
    yield
    if _answer_times:
        slowest = round(max(_answer_times), 3)
        request.node.user_properties.append(("slowest_answer_seconds", slowest))


def fetch(url: str, accept: str | None = None) -> Answer:
    """GET ``url``; a cut body or connection is reported, not raised."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    started = time.monotonic()
    try:
        connection.request("GET", parts.path, headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        first = time.monotonic() - started
        headers = {key.lower(): value for key, value in response.getheaders()}
        try:
            body, complete = response.read(), True
        except http.client.IncompleteRead as exc:
            body, complete = exc.partial, False
        except (ConnectionError, TimeoutError):
            body, complete = b"", False
        elapsed = time.monotonic() - started
        return Answer(response.status, headers, body, complete, first, elapsed)
    except (ConnectionError, http.client.HTTPException):
        elapsed = time.monotonic() - started
        return Answer(-1, {}, b"", False, elapsed, elapsed)
    finally:
        connection.close()
        _answer_times.append(time.monotonic() - started)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_clean_failure(answer: Answer) -> None:
    """Upstream's trouble, told promptly and honestly: 502 or 504 with Retry-After."""
    assert answer.elapsed < BOUND, f"answered after {answer.elapsed:.2f}s"
    assert answer.status in (502, 504), (answer.status, answer.body[:300])
    assert answer.headers.get("retry-after"), answer.headers
    assert STALE not in answer.headers


# --- the rig: one upstream and one server per mode ----------------------------------------------


@dataclass
class Project:
    name: str
    dists: list[Dist] = field(default_factory=list)

    def wheel(self, version: str = "1.0") -> Dist:
        return next(d for d in self.dists if d.kind == "wheel" and d.version == version)

    def filenames(self) -> set[str]:
        return {d.filename for d in self.dists}


@dataclass
class Rig:
    mode: Mode
    upstream: UpstreamServer
    server: CheeseboardServer
    workdir: Path

    def project(self, name: str, *versions: str) -> Project:
        """A new project upstream with a wheel and an sdist per version."""
        project = Project(normalize(name))
        for version in versions or ("1.0",):
            self.publish(project, version)
        return project

    def publish(self, project: Project, version: str) -> list[Dist]:
        dest = self.workdir / project.name
        dest.mkdir(exist_ok=True)
        added = [build_wheel(dest, project.name, version), build_sdist(dest, project.name, version)]
        for dist in added:
            self.upstream.add(dist)
        project.dists.extend(added)
        return added

    def page_url(self, project: Project) -> str:
        return f"{self.server.index_url}{project.name}/"

    def page(self, project: Project) -> Answer:
        return fetch(self.page_url(project), "application/vnd.pypi.simple.v1+json")

    def file_url(self, page: Answer, project: Project, filename: str) -> str:
        """The file's URL as the page lists it, without the fragment."""
        href = str(page.files()[filename]["url"])
        return urljoin(self.page_url(project), href).partition("#")[0]

    @contextmanager
    def fault(self, *faults: tuple[str, Fault]) -> Iterator[None]:
        for target, fault in faults:
            self.upstream.set_fault(target, fault)
        try:
            yield
        finally:
            for target, _ in faults:
                self.upstream.set_fault(target, None)

    @contextmanager
    def down(self) -> Iterator[None]:
        """Upstream not listening at all: connections are refused."""
        self.upstream.stop()
        try:
            yield
        finally:
            self.upstream.start()

    def log_size(self) -> int:
        return len(self.server.log())

    def assert_log_clean(self, since: int) -> None:
        new = self.server.log()[since:]
        assert "Traceback" not in new, new[-3000:]

    def blobs(self) -> dict[str, bytes]:
        """Every stored blob by name; each must hold exactly the bytes its name is the hash of."""
        found = {}
        for path in (self.server.datadir / "blobs").rglob("*"):
            if path.is_file() and ".tmp" not in path.parts:
                data = path.read_bytes()
                assert sha256(data) == path.name, f"blob {path} does not match its name"
                found[path.name] = data
        return found

    def assert_nothing_bad_stored(self, *bad: bytes) -> None:
        """No blob holds any of ``bad``, and no staged (unverified) download is left over."""
        stored = self.blobs()
        for data in bad:
            assert sha256(data) not in stored, "bad upstream bytes were stored"
        staged = self.server.datadir / "blobs" / ".tmp"
        deadline = time.monotonic() + 2
        while list(staged.glob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not list(staged.glob("*.part")), "a failed download left its staged file"


@pytest.fixture(scope="module")
def rigs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Mode, Rig]]:
    base = tmp_path_factory.mktemp("fault-matrix")
    factory = ServerFactory(base)
    upstreams: list[UpstreamServer] = []
    try:
        built: dict[Mode, Rig] = {}
        for mode in MODES:
            upstream = UpstreamServer(mode=mode)
            upstream.start()
            upstreams.append(upstream)
            server = factory.start(upstream.simple_url, *SERVER_ARGS, name=f"data-{mode}")
            workdir = base / f"dists-{mode}"
            workdir.mkdir()
            built[mode] = Rig(mode, upstream, server, workdir)
        yield built
    finally:
        factory.stop_all()
        for upstream in upstreams:
            upstream.stop()


# An HTML upstream's page lacks sizes, upload times and core-metadata hashes; since e46ff76
# (issue 19) the mirror answers it at once and a background job writes those facts from the
# upstream's JSON API, after which the page shows them. Seconds a test waits for them: the job is
# one JSON API request, so this is only a bound for a busy machine.
FACTS_DEADLINE = 10.0


def wait_for_page(rig: Rig, project: Project, ready: Callable[[Answer], bool], what: str) -> Answer:
    """Ask for the page until ``ready(page)``; fail after FACTS_DEADLINE seconds. Every request
    refreshes the page (1 ms expiry), which starts the facts job again while stored rows lack a
    size or an upload time."""
    deadline = time.monotonic() + FACTS_DEADLINE
    while True:
        page = rig.page(project)
        assert page.status == 200, page.body[:300]
        if ready(page):
            return page
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {FACTS_DEADLINE:g}s: {page.files()}")
        time.sleep(0.05)


def advertises_metadata(wheel: Dist) -> Callable[[Answer], bool]:
    """Whether a page advertises some core-metadata hash for ``wheel``."""
    return lambda page: bool(page.files()[wheel.filename].get("core-metadata"))


# --- fault catalogue ----------------------------------------------------------------------------

Inject = Callable[[Rig, str, Project], AbstractContextManager[object]]


def at(make: Callable[[Rig, str, Project], Fault]) -> Inject:
    """Inject the fault ``make`` builds at the case's target."""
    return lambda rig, target, project: rig.fault((target, make(rig, target, project)))


def fixed(fault: Fault) -> Inject:
    return at(lambda rig, target, project: fault)


def refused(rig: Rig, target: str, project: Project) -> AbstractContextManager[object]:
    return rig.down()


def target_path(target: str) -> str:
    """The upstream path a fault target answers at (file targets are bare filenames)."""
    kind, _, name = target.partition("/")
    if kind == "simple":
        return f"/simple/{name}/"
    if kind == "pypi":
        return f"/pypi/{name}/json"
    if kind == "elsewhere":
        return f"/{target}"
    return f"/files/{target}"


def redirect_a_b_a(rig: Rig, target: str, project: Project) -> AbstractContextManager[object]:
    """target -> /elsewhere/<name>/b -> target -> ..."""
    hop = f"elsewhere/{project.name}/b"
    return rig.fault(
        (target, Fault("redirect", location=target_path(hop))),
        (hop, Fault("redirect", status=307, location=target_path(target))),
    )


def redirect_self(rig: Rig, target: str, project: Project) -> AbstractContextManager[object]:
    return rig.fault((target, Fault("redirect", status=301, location=target_path(target))))


@functools.cache
def gzip_bomb() -> bytes:
    """A small gzip body that inflates to twice the page cap (zeros compress ~1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(2 * MAX_PAGE_BYTES // len(zeros))]
    return b"".join(parts) + packer.flush()


def html_page(project: Project, *, extra: str = "", closed: bool = True, head: str = "") -> bytes:
    """A PEP 503 page listing the project's files, as a hand-written mirror might send it."""
    end = "</a>" if closed else ""
    anchors = "".join(
        f'<a href="../../files/{d.filename}#sha256={d.sha256}">{d.filename}{end}<br/>\n'
        for d in project.dists
    )
    tail = "</body></html>\n" if closed else ""
    return (
        f"<!DOCTYPE html><html><head>{head}<title>Links for {project.name}</title></head>"
        f"<body>\n{anchors}{extra}{tail}"
    ).encode()


def json_page(project: Project, *extra: object, api_version: str = "1.1") -> bytes:
    """A PEP 691 page listing the project's files (plus ``extra`` entries)."""
    files: list[object] = [
        {
            "filename": d.filename,
            "url": f"../../files/{d.filename}",
            "hashes": {"sha256": d.sha256},
        }
        for d in project.dists
    ]
    document = {
        "meta": {"api-version": api_version},
        "name": project.name,
        "files": [*files, *extra],
    }
    return json.dumps(document).encode()


def body(make: Callable[[Project], bytes], content_type: str) -> Inject:
    return at(
        lambda rig, target, project: Fault("body", body=make(project), content_type=content_type)
    )


# URLs no mirror may follow: other schemes, URLs that do not parse, ports that are not ports.
BAD_URLS = (
    "javascript:alert(1)//evil-1.0.tar.gz",
    "file:///etc/evil-1.0.tar.gz",
    "data:,evil-1.0.tar.gz",
    "ftp://127.0.0.1/evil-1.0.tar.gz",
    "http://[::1/evil-1.0.tar.gz",
    "http://127.0.0.1:99999/evil-1.0.tar.gz",
    "http://127.0.0.1:port/evil-1.0.tar.gz",
)
# Hrefs whose last segment is no safe file name (an HTML link's name comes from its URL).
BAD_NAMES = (
    "../../files/..%2Fevil-1.0.tar.gz",
    "../../files/evil%00-1.0.tar.gz",
    "../../files/" + "e" * 300 + "-1.0.tar.gz",
    "",
)


def bad_href_page(project: Project) -> bytes:
    extra = "".join(f'<a href="{href}">evil</a><br/>\n' for href in (*BAD_URLS, *BAD_NAMES))
    # An unparsable <base href> must not take the good relative links down with it.
    return html_page(project, extra=extra, head='<base href="http://[::1">')


def bad_url_json(project: Project) -> bytes:
    extra: list[object] = [
        {"filename": f"evil-{n}.0.tar.gz", "url": url, "hashes": {}}
        for n, url in enumerate(BAD_URLS, 1)
    ]
    extra += [
        "not an object",
        {"filename": 5, "url": "../../files/evil-20.0.tar.gz"},
        {"filename": "../evil-21.0.tar.gz", "url": "../../files/evil-21.0.tar.gz"},
        {"filename": "evil-22.0.tar.gz", "url": None},
    ]
    return json_page(project, *extra)


@dataclass(frozen=True)
class Case:
    id: str
    inject: Inject
    # "fail": no usable answer; "ok": usable as is (files, metadata: slow, or another source);
    # "filtered": a usable page once its bad parts are left out.
    outcome: Literal["fail", "ok", "filtered"] = "fail"


TRANSPORT_CASES = (
    Case("timeout", fixed(Fault("delay", seconds=10))),
    Case("reset", fixed(Fault("reset"))),
    Case("status-500", fixed(Fault("status", status=500))),
    # Each pause is shorter than the timeout; only the total is not.
    Case("slow-body", fixed(Fault("trickle", pieces=8, seconds=0.25))),
    Case("stalled-body", fixed(Fault("stall", seconds=10))),
    Case("truncated-body", fixed(Fault("truncate"))),
    Case("refused", refused),
    Case("redirect-loop-self", redirect_self),
    Case("redirect-loop-a-b-a", redirect_a_b_a),
    Case("redirect-to-file-scheme", fixed(Fault("redirect", location="file:///etc/passwd"))),
    Case("redirect-to-ftp", fixed(Fault("redirect", location="ftp://127.0.0.1/simple/x/"))),
    Case("not-http", fixed(Fault("raw", body=b"SSH-2.0-OpenSSH_9.6\r\n" * 4))),
    Case(
        "huge-header",
        fixed(Fault("raw", body=b"HTTP/1.1 200 OK\r\nX-Junk: " + b"x" * 200_000 + b"\r\n\r\n")),
    ),
)

PAGE_CASES = (
    *TRANSPORT_CASES,
    Case("huge-endless", fixed(Fault("huge", size=10**12))),
    Case("huge-declared-length", fixed(Fault("huge", size=10**10, declare_length=True))),
    Case(
        "huge-gzip-bomb",
        at(
            lambda rig, target, project: Fault(
                "body", body=gzip_bomb(), headers=(("Content-Encoding", "gzip"),)
            )
        ),
    ),
    # A well-framed answer that ends mid-tag (HTML) or mid-string (JSON).
    Case(
        "cut-mid-document",
        at(
            lambda rig, target, project: Fault(
                "cut", cut_after=b'<a href="' if rig.mode == "html" else b'"url": "'
            )
        ),
    ),
    Case(
        "html-garbage",
        body(lambda p: b"Service temporarily unavailable, try again later.\n" * 40, "text/html"),
    ),
    Case(
        "html-binary",
        body(lambda p: bytes(range(256)) * 16 + corrupted(html_page(p)), "text/html"),
    ),
    Case("html-unclosed-tags", body(lambda p: html_page(p, closed=False), "text/html"), "filtered"),
    Case("html-bad-hrefs", body(bad_href_page, "text/html"), "filtered"),
    Case("json-invalid", body(lambda p: json_page(p)[:-20], JSON_CT)),
    Case("json-not-an-object", body(lambda p: b"[" + json_page(p) + b"]", JSON_CT)),
    Case(
        "json-files-not-a-list",
        body(lambda p: json.dumps({"name": p.name, "files": {"a": 1}}).encode(), JSON_CT),
    ),
    Case(
        "json-project-list-instead",
        body(lambda p: json.dumps({"projects": [{"name": p.name}]}).encode(), JSON_CT),
    ),
    Case("json-api-version-2", body(lambda p: json_page(p, api_version="2.0"), JSON_CT)),
    Case("json-bad-urls", body(bad_url_json, JSON_CT), "filtered"),
    Case("json-as-text-html", body(json_page, "text/html")),
    Case("html-as-json", body(html_page, JSON_CT)),
    Case("html-as-octet-stream", body(html_page, "application/octet-stream")),
    Case("html-charset-not-text", body(html_page, "text/html; charset=base64")),
)

# A slow file is still the file: it streams through as it arrives (only stalls time out).
FILE_CASES = (
    *(Case(c.id, c.inject, "ok" if c.id == "slow-body" else "fail") for c in TRANSPORT_CASES),
    Case("wrong-hash", fixed(Fault("corrupt"))),
    Case("oversized", fixed(Fault("pad", body=b"\0" * 4096))),
    # The same, once the server has had time to start its answer: still a clean 502.
    Case("oversized-after-a-pause", fixed(Fault("pad", body=b"\0" * 4096, seconds=0.3, pieces=1))),
)

# A wheel's .metadata can always be read from the wheel itself: only "refused" (the wheel is out
# of reach too) fails.
METADATA_CASES = (
    *(Case(c.id, c.inject, "fail" if c.id == "refused" else "ok") for c in TRANSPORT_CASES),
    Case("wrong-hash", fixed(Fault("corrupt")), "ok"),
    Case("huge-endless", fixed(Fault("huge", size=10**12)), "ok"),
)

JSON_API_CASES = (
    Case("timeout", fixed(Fault("delay", seconds=10))),
    Case("reset", fixed(Fault("reset"))),
    Case("status-500", fixed(Fault("status", status=500))),
    Case("slow-body", fixed(Fault("trickle", pieces=8, seconds=0.25))),
    Case(
        "json-invalid",
        fixed(Fault("body", body=b'{"releases": {', content_type="application/json")),
    ),
    Case(
        "json-wrong-shape",
        fixed(Fault("body", body=b'{"releases": [1, 2]}', content_type="application/json")),
    ),
    Case("huge-endless", fixed(Fault("huge", size=10**12, content_type="application/json"))),
)


def ids(cases: tuple[Case, ...]) -> list[str]:
    return [case.id for case in cases]


# --- simple pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", PAGE_CASES, ids=ids(PAGE_CASES))
def test_page_fault(case: Case, mode: Mode, rigs: dict[Mode, Rig]) -> None:
    """No cache: a prompt 502. Cached: the page, marked stale. Nothing bad replaces it. Fault
    gone: fresh data on the next request."""
    rig = rigs[mode]
    since = rig.log_size()
    project = rig.project(f"page-{case.id}-{mode}")
    target = f"simple/{project.name}"
    expected = project.filenames()

    with case.inject(rig, target, project):
        cold = rig.page(project)
    assert cold.status not in (404, 500)
    if case.outcome == "filtered":
        assert cold.status == 200, cold.body[:300]
        assert set(cold.files()) == expected
        assert STALE not in cold.headers
    else:
        assert_clean_failure(cold)
    if case.inject is not refused:
        assert rig.upstream.count(f"/simple/{project.name}/") >= 1  # the fault was met

    good = rig.page(project)
    assert good.status == 200, good.body[:300]
    assert STALE not in good.headers
    assert set(good.files()) == expected
    hashes = {name: entry["hashes"] for name, entry in good.files().items()}

    with case.inject(rig, target, project):
        stale = rig.page(project)
    assert stale.elapsed < BOUND, f"answered after {stale.elapsed:.2f}s"
    assert stale.status == 200, stale.body[:300]
    assert (STALE in stale.headers) == (case.outcome == "fail")
    assert {name: entry["hashes"] for name, entry in stale.files().items()} == hashes

    added = rig.publish(project, "2.0")
    fresh = rig.page(project)
    assert fresh.status == 200, fresh.body[:300]
    assert STALE not in fresh.headers
    assert set(fresh.files()) == expected | {d.filename for d in added}

    rig.assert_nothing_bad_stored()
    rig.assert_log_clean(since)


# --- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", FILE_CASES, ids=ids(FILE_CASES))
def test_file_fault(case: Case, mode: Mode, rigs: dict[Mode, Rig]) -> None:
    """A broken upstream file is never served whole nor stored; the next try fetches it again."""
    rig = rigs[mode]
    since = rig.log_size()
    project = rig.project(f"file-{case.id}-{mode}")
    wheel = project.wheel()
    page = rig.page(project)
    assert page.status == 200
    url = rig.file_url(page, project, wheel.filename)
    before = rig.upstream.count(f"/files/{wheel.filename}")

    with case.inject(rig, wheel.filename, project):
        answer = fetch(url)
    assert answer.first < BOUND, f"headers after {answer.first:.2f}s"
    if case.outcome == "ok":
        assert (answer.status, answer.complete) == (200, True)
        assert sha256(answer.body) == wheel.sha256
    else:
        assert answer.elapsed < BOUND, f"answered after {answer.elapsed:.2f}s"
        assert answer.status in (200, 502), answer.status
        if answer.status == 502:
            assert answer.headers.get("retry-after")
        else:  # headers were out: the body is cut short, never complete
            assert not answer.complete
            assert len(answer.body) < wheel.size
        assert wheel.sha256 not in rig.blobs()
    if case.inject is not refused:
        assert rig.upstream.count(f"/files/{wheel.filename}") > before  # the fault was met
    data = wheel.path.read_bytes()
    rig.assert_nothing_bad_stored(corrupted(data), data[: len(data) // 2], data + b"\0" * 4096)

    again = fetch(url)
    assert (again.status, again.complete) == (200, True)
    assert sha256(again.body) == wheel.sha256
    assert wheel.sha256 in rig.blobs()
    rig.assert_log_clean(since)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", METADATA_CASES, ids=ids(METADATA_CASES))
def test_metadata_fault(case: Case, mode: Mode, rigs: dict[Mode, Rig]) -> None:
    """A broken upstream .metadata falls back to the wheel's METADATA, checked against the
    advertised hash; bad metadata bytes are never stored."""
    rig = rigs[mode]
    since = rig.log_size()
    # 2.0's metadata is prefetched with a page that advertises it (json); 1.0's is fetched only
    # when asked for.
    project = rig.project(f"meta-{case.id}-{mode}", "1.0", "2.0")
    wheel = project.wheel("1.0")
    page = rig.page(project)
    assert page.status == 200
    if mode == "html":  # the hash comes from the JSON API, after the first answer
        page = wait_for_page(rig, project, advertises_metadata(wheel), "core-metadata hash")
    entry = page.files()[wheel.filename]
    assert entry["core-metadata"] == {"sha256": sha256(wheel.metadata)}
    url = rig.file_url(page, project, wheel.filename) + ".metadata"
    target = f"{wheel.filename}.metadata"

    with case.inject(rig, target, project):
        answer = fetch(url)
    assert answer.elapsed < BOUND, f"answered after {answer.elapsed:.2f}s"
    if case.outcome == "ok":
        assert (answer.status, answer.body) == (200, wheel.metadata)
        assert rig.upstream.count(f"/files/{target}") >= 1  # the fault was met
    else:
        assert_clean_failure(answer)
    metadata = wheel.metadata
    rig.assert_nothing_bad_stored(corrupted(metadata), metadata[: len(metadata) // 2])

    again = fetch(url)
    assert (again.status, again.body) == (200, wheel.metadata)
    rig.assert_log_clean(since)


# --- wrong hashes on the page -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_page_advertising_a_wrong_file_hash(mode: Mode, rigs: dict[Mode, Rig]) -> None:
    """Bytes that do not match the page's sha256 are cut off and not stored; once upstream's page
    is right again, the file is served."""
    rig = rigs[mode]
    since = rig.log_size()
    project = rig.project(f"wrong-file-hash-{mode}")
    wheel = project.wheel()
    wrong = sha256(b"something else")
    lie = Fault("rewrite", substitutions=((wheel.sha256.encode(), wrong.encode()),))
    with rig.fault((f"simple/{project.name}", lie), (f"pypi/{project.name}", lie)):
        page = rig.page(project)
        assert page.status == 200
        assert page.files()[wheel.filename]["hashes"] == {"sha256": wrong}
        answer = fetch(rig.file_url(page, project, wheel.filename))
    assert answer.elapsed < BOUND
    assert answer.status in (200, 502)
    assert not (answer.status == 200 and answer.complete)
    stored = rig.blobs()
    assert wheel.sha256 not in stored and wrong not in stored

    page = rig.page(project)
    assert page.files()[wheel.filename]["hashes"] == {"sha256": wheel.sha256}
    answer = fetch(rig.file_url(page, project, wheel.filename))
    assert (answer.status, answer.complete, sha256(answer.body)) == (200, True, wheel.sha256)
    rig.assert_log_clean(since)


@pytest.mark.parametrize("mode", MODES)
def test_page_advertising_a_wrong_metadata_hash(mode: Mode, rigs: dict[Mode, Rig]) -> None:
    """A core-metadata hash that neither upstream's .metadata nor the wheel matches gives a clean
    502; once the page is right again, .metadata is served."""
    rig = rigs[mode]
    since = rig.log_size()
    project = rig.project(f"wrong-meta-hash-{mode}", "1.0", "2.0")
    wheel = project.wheel("1.0")
    real = sha256(wheel.metadata)
    wrong = sha256(b"other metadata")
    lie = Fault("rewrite", substitutions=((real.encode(), wrong.encode()),))
    # JSON mode advertises the hash on the page; HTML mode takes it from the JSON API, after the
    # first answer.
    with rig.fault((f"simple/{project.name}", lie), (f"pypi/{project.name}", lie)):
        page = rig.page(project)
        assert page.status == 200
        if mode == "html":
            page = wait_for_page(rig, project, advertises_metadata(wheel), "core-metadata hash")
        assert page.files()[wheel.filename]["core-metadata"] == {"sha256": wrong}
        url = rig.file_url(page, project, wheel.filename) + ".metadata"
        answer = fetch(url)
    assert_clean_failure(answer)
    assert wrong not in rig.blobs()

    page = rig.page(project)
    if mode == "html":  # the JSON API's right hash must replace the wrong one it gave
        page = wait_for_page(
            rig,
            project,
            lambda page: page.files()[wheel.filename].get("core-metadata") == {"sha256": real},
            "right core-metadata hash",
        )
    assert page.files()[wheel.filename]["core-metadata"] == {"sha256": real}
    answer = fetch(url)
    assert (answer.status, answer.body) == (200, wheel.metadata)
    rig.assert_log_clean(since)


# --- the PyPI JSON API (HTML upstreams only) ----------------------------------------------------


@pytest.mark.parametrize("case", JSON_API_CASES, ids=ids(JSON_API_CASES))
def test_json_api_fault_leaves_the_page_usable(case: Case, rigs: dict[Mode, Rig]) -> None:
    """The JSON API only adds facts to an HTML page: when it fails, the page is served without
    them, promptly; when it is back, the facts are.

    The facts are fetched by a background job after the page is answered (e46ff76): the fault
    stays until the server has logged the job's failure, and once it is gone, the page's next
    refreshes (the rows still lack sizes) start the job again, which brings the facts."""
    rig = rigs["html"]
    since = rig.log_size()
    project = rig.project(f"api-{case.id}")
    failed = (
        f"upstream JSON API gave nothing for {project.name}:",
        f"ignoring upstream JSON API for {project.name}:",
    )
    with case.inject(rig, f"pypi/{project.name}", project):
        page = rig.page(project)
        deadline = time.monotonic() + FACTS_DEADLINE
        while not any(line in rig.server.log()[since:] for line in failed):
            assert time.monotonic() < deadline, "the JSON API's failure was never logged"
            time.sleep(0.05)
        again = rig.page(project)  # while the fault lasts, the page stays usable without facts
    for answer in (page, again):
        assert answer.elapsed < BOUND, f"answered after {answer.elapsed:.2f}s"
        assert answer.status == 200
        assert STALE not in answer.headers
        assert set(answer.files()) == project.filenames()
        assert all("size" not in entry for entry in answer.files().values())
    assert rig.upstream.count(f"/pypi/{project.name}/json") >= 1  # the fault was met

    expected = {d.filename: (d.size, DEFAULT_UPLOAD_TIME) for d in project.dists}

    def facts(page: Answer) -> dict[str, tuple[object, object]]:
        return {name: (e.get("size"), e.get("upload-time")) for name, e in page.files().items()}

    page = wait_for_page(rig, project, lambda page: facts(page) == expected, "sizes")
    assert facts(page) == expected
    rig.assert_log_clean(since)


# --- big pages that are fine ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_big_valid_page_is_served(mode: Mode, rigs: dict[Mode, Rig]) -> None:
    """A big page (over PARSE_IN_THREAD_BYTES: parsed off the event loop) below the cap is a page:
    stored and served whole, promptly."""
    rig = rigs[mode]
    since = rig.log_size()
    project = rig.project(f"big-page-{mode}")
    fake = [f"{project.name.replace('-', '_')}-0.{n}.tar.gz" for n in range(8000)]
    if mode == "json":
        entries = [{"filename": f, "url": f"../../files/{f}", "hashes": {}} for f in fake]
        page_body, content_type = json_page(project, *entries), JSON_CT
    else:
        anchors = "".join(f'<a href="../../files/{f}">{f}</a><br/>\n' for f in fake)
        page_body, content_type = html_page(project, extra=anchors), "text/html"
    assert len(page_body) > PARSE_IN_THREAD_BYTES
    big = Fault("body", body=page_body, content_type=content_type)
    with rig.fault((f"simple/{project.name}", big)):
        page = rig.page(project)
    assert page.elapsed < BOUND, f"answered after {page.elapsed:.2f}s"
    assert page.status == 200
    assert set(page.files()) == project.filenames() | set(fake)
    rig.assert_log_clean(since)


# --- huge pages: the cap, and memory ------------------------------------------------------------


def _peak_rss(pid: int) -> int:
    """Peak resident memory (bytes) of the largest of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    peak, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    return peak


def test_huge_pages_are_capped_in_bounded_memory(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Endless, over-declared and gzip-bomb pages stop at the page cap, not at the timeout: the
    server hangs up, answers 502, and its memory grows by about the cap, not by what upstream
    would have sent. (A longer --request-timeout here, so that only the cap can end them.)"""
    with UpstreamServer(mode="json") as upstream:
        server = server_factory.start(
            upstream.simple_url, "--request-timeout", "10", "--mirror-cache-expiry", "0.001"
        )
        assert server.process is not None
        project = Project("huge")
        for dist in (build_wheel(tmp_path, "huge", "1.0"), build_sdist(tmp_path, "huge", "1.0")):
            upstream.add(dist)
            project.dists.append(dist)
        url = f"{server.index_url}huge/"
        accept = "application/vnd.pypi.simple.v1+json"
        assert fetch(url, accept).status == 200
        baseline = _peak_rss(server.process.pid)
        faults = {
            "endless": Fault("huge", size=10**12),
            "declared": Fault("huge", size=10**10, declare_length=True),
            "gzip-bomb": Fault("body", body=gzip_bomb(), headers=(("Content-Encoding", "gzip"),)),
        }
        for label, fault in faults.items():
            since = len(server.log())
            upstream.clear_requests()
            upstream.set_fault("simple/huge", fault)
            time.sleep(0.01)  # past the stale back-off of the last failure (1 ms expiry here)
            try:
                answer = fetch(url, accept)
            finally:
                upstream.set_fault("simple/huge", None)
            assert answer.status == 200, (label, answer.status)
            assert answer.headers.get(STALE), label
            assert answer.elapsed < 8, (label, answer.elapsed)
            log = server.log()[since:]
            assert "page too large" in log or "page larger than" in log, (label, log[-2000:])
            if fault.kind == "huge":
                deadline = time.monotonic() + 5
                while upstream.streamed("simple/huge") is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                streamed = upstream.streamed("simple/huge")
                assert streamed is not None, label
                # The server hung up soon after the cap (socket buffers hold a few MB more).
                limit = MAX_PAGE_BYTES + 32 * 1024 * 1024 if label == "endless" else 32 * 1024**2
                assert streamed < limit, (label, streamed)
        growth = _peak_rss(server.process.pid) - baseline
        assert growth < 3 * MAX_PAGE_BYTES, f"peak memory grew by {growth / 2**20:.0f} MiB"
        fresh = fetch(url, accept)
        assert fresh.status == 200 and STALE not in fresh.headers
        assert "Traceback" not in server.log()


# --- many clients during an outage -------------------------------------------------------------


@pytest.mark.parametrize("cached", [False, True], ids=["nothing-cached", "cached"])
def test_concurrent_requests_during_an_outage_share_one_attempt(
    cached: bool, rigs: dict[Mode, Rig]
) -> None:
    """Clients queued behind a failing refresh get its outcome (502, or the stale page) when it
    ends, within the bound, instead of each asking the hanging upstream in turn."""
    rig = rigs["json"]
    since = rig.log_size()
    project = rig.project(f"crowd-{'cached' if cached else 'cold'}")
    if cached:
        assert rig.page(project).status == 200
    target = f"simple/{project.name}"
    before = rig.upstream.count(f"/simple/{project.name}/")
    with rig.fault((target, Fault("delay", seconds=10))), ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: rig.page(project), range(8)))
    for answer in answers:
        assert answer.elapsed < BOUND, f"answered after {answer.elapsed:.2f}s"
        if cached:
            assert answer.status == 200
            assert answer.headers.get(STALE)
        else:
            assert_clean_failure(answer)
    assert rig.upstream.count(f"/simple/{project.name}/") - before <= 2
    rig.assert_log_clean(since)
