"""Conformance of a mirror index with docs/standards.md §4 (the checks that apply to mirrors).

A real server process mirrors a real upstream on 127.0.0.1; every request goes over a socket with
stdlib http.client (or a raw socket when the exact bytes on the wire matter), so nothing decodes,
redirects or normalizes on our behalf. Servers and upstreams are module-scoped to keep this fast:
tests only read, and the few that depend on "not cached yet" use files nobody else touches.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import re
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit

import pytest

from tests.support.packages import Dist, build_sdist, build_wheel, normalize
from tests.support.server import CheeseboardServer, ServerFactory
from tests.support.upstream import DEFAULT_UPLOAD_TIME, UpstreamServer

# --- Accept strings of real clients (docs/standards.md §2) ---------------------------------

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
V1_HTML_TYPE = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON_TYPE}, {V1_HTML_TYPE}; q=0.1, text/html; q=0.01"
UV_ACCEPT = f"{JSON_TYPE}, {V1_HTML_TYPE};q=0.2, text/html;q=0.01"
POETRY_ACCEPT = f"{JSON_TYPE}, */*;q=0.1"
CLIENT_ACCEPTS = {"pip": PIP_ACCEPT, "uv": UV_ACCEPT, "poetry": POETRY_ACCEPT}

UPLOAD_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")

PROJECT = "lib-a"
PAGE = f"/root/pypi/+simple/{PROJECT}/"
YANK_REASON = 'broken <build> & "bad" metadata'
YANKED_UPLOAD_TIME = "2023-05-06T07:08:09Z"
LAZY_PROJECT = "lazy-wheel"

# --- the distributions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Every file the upstreams publish, and the facts tests compare the server against."""

    projects: dict[str, list[Dist]]  # normalized name -> files
    yanked: dict[str, str]  # filename -> reason
    upload_times: dict[str, str]  # filename -> upload time upstream reports
    wheel: Dist  # W: a wheel big enough for interesting ranges
    sdist: Dist  # S: the sdist of the same release
    lazy: dict[str, Dist] = field(default_factory=dict)  # range case -> wheel never fetched before

    def files(self, project: str) -> dict[str, Dist]:
        return {d.filename: d for d in self.projects[project]}


RANGE_CASES = (
    "suffix",
    "first-100",
    "from-10",
    "oversized-suffix",
    "past-end",
    "if-range-current",
    "if-range-stale",
    "gzip-accepted",
)


@pytest.fixture(scope="module")
def corpus(dists: dict[str, list[Dist]], tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    dest = tmp_path_factory.mktemp("conformance-dists")
    projects = {normalize(name): list(files) for name, files in dists.items()}
    yanked_wheel = build_wheel(dest, PROJECT, "0.9", requires_python="<4,>=3.7")
    wheel = build_wheel(dest, PROJECT, "2.0", requires_python=">=3.8", payload_size=48_000)
    sdist = build_sdist(dest, PROJECT, "2.0", requires_python=">=3.8")
    projects[PROJECT] += [yanked_wheel, wheel, sdist]
    lazy = {
        case: build_wheel(dest, LAZY_PROJECT, f"1.{i}", payload_size=20_000)
        for i, case in enumerate(RANGE_CASES)
    }
    projects[LAZY_PROJECT] = list(lazy.values())
    upload_times = {d.filename: DEFAULT_UPLOAD_TIME for ds in projects.values() for d in ds}
    upload_times[yanked_wheel.filename] = YANKED_UPLOAD_TIME
    return Corpus(
        projects=projects,
        yanked={yanked_wheel.filename: YANK_REASON},
        upload_times=upload_times,
        wheel=wheel,
        sdist=sdist,
        lazy=lazy,
    )


def _publish(upstream: UpstreamServer, corpus: Corpus) -> UpstreamServer:
    for files in corpus.projects.values():
        for dist in files:
            upstream.add(
                dist,
                upload_time=corpus.upload_times[dist.filename],
                yanked=corpus.yanked.get(dist.filename),
            )
    return upstream


@pytest.fixture(scope="module")
def upstream_html(corpus: Corpus) -> Iterator[UpstreamServer]:
    """Like the CI mirror: HTML pages without sizes, times or core-metadata; a JSON API."""
    with _publish(UpstreamServer(mode="html"), corpus) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def upstream_json(corpus: Corpus) -> Iterator[UpstreamServer]:
    """Like pypi.org: PEP 691 JSON pages carrying every fact."""
    with _publish(UpstreamServer(mode="json"), corpus) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    servers = ServerFactory(tmp_path_factory.mktemp("conformance-servers"))
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def server(factory: ServerFactory, upstream_html: UpstreamServer) -> CheeseboardServer:
    """The server under test: root/pypi mirrors the HTML upstream."""
    return factory.start(upstream_html.simple_url, name="over-html")


@pytest.fixture(scope="module")
def json_server(factory: ServerFactory, upstream_json: UpstreamServer) -> CheeseboardServer:
    """A second server whose root/pypi mirrors the PEP 691 upstream."""
    return factory.start(upstream_json.simple_url, name="over-json")


# --- HTTP helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()


def _header_dict(items: list[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def request(
    server: CheeseboardServer,
    path: str,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> Reply:
    """One request on a fresh connection; the path goes out exactly as given."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        # http.client adds "Accept-Encoding: identity" unless the caller sets the header.
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, _header_dict(response.getheaders()), data)
    finally:
        conn.close()


def raw_exchange(
    server: CheeseboardServer, method: str, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send one request on a raw socket and return everything the server sent, body included.

    http.client never reads a HEAD body, so this is how we see whether one was sent.
    """
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    items = [tuple(part.strip() for part in h.split(":", 1)) for h in header_lines]
    return int(status_line.split()[1]), _header_dict(items), rest  # type: ignore[arg-type]


def location_path(server: CheeseboardServer, reply: Reply, base_path: str) -> str:
    """The redirect target as path + query, whether Location was absolute or relative."""
    location = reply.header("location")
    assert location, f"redirect without Location: {reply}"
    target = urlsplit(urljoin(server.url.rstrip("/") + base_path, location))
    assert target.netloc in ("", f"127.0.0.1:{server.port}"), location
    return target.path + (f"?{target.query}" if target.query else "")


def vary_tokens(reply: Reply) -> set[str]:
    return {t.strip().lower() for t in (reply.header("vary") or "").split(",") if t.strip()}


def no_traceback(server: CheeseboardServer) -> None:
    log = server.log()
    assert "Traceback" not in log, log[-4000:]


# --- page parsing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    attrs: dict[str, str | None]
    text: str

    @property
    def href(self) -> str:
        href = self.attrs.get("href")
        assert href
        return href


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[Anchor] = []
        self.metas: list[dict[str, str | None]] = []
        self._open: tuple[dict[str, str | None], list[str]] | None = None
        self.in_head = False
        self.head_metas: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = (dict(attrs), [])
        elif tag == "head":
            self.in_head = True
        elif tag == "meta":
            self.metas.append(dict(attrs))
            if self.in_head:
                self.head_metas.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            attrs, text = self._open
            self.anchors.append(Anchor(attrs, "".join(text)))
            self._open = None
        elif tag == "head":
            self.in_head = False

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1].append(data)


def parse_page(body: bytes) -> _PageParser:
    parser = _PageParser()
    parser.feed(body.decode("utf-8"))
    parser.close()
    return parser


def file_paths(server: CheeseboardServer, project: str) -> dict[str, tuple[str, str]]:
    """filename -> (request path of the file, sha256 from its fragment), read from the HTML page."""
    page_path = f"/root/pypi/+simple/{project}/"
    reply = request(server, page_path)
    assert reply.status == 200, reply
    out: dict[str, tuple[str, str]] = {}
    for anchor in parse_page(reply.body).anchors:
        url, fragment = urldefrag(urljoin(server.url.rstrip("/") + page_path, anchor.href))
        out[anchor.text] = (urlsplit(url).path, fragment.removeprefix("sha256="))
    return out


def metadata_sha(dist: Dist) -> str:
    return hashlib.sha256(dist.metadata).hexdigest()


# --- 1. names and slashes ---------------------------------------------------------------------


def test_non_normalized_name_redirects_permanently(server: CheeseboardServer) -> None:
    reply = request(server, "/root/pypi/+simple/Lib_A/")
    assert reply.status == 301
    assert location_path(server, reply, "/root/pypi/+simple/Lib_A/") == PAGE


def test_missing_trailing_slash_redirects_keeping_query(server: CheeseboardServer) -> None:
    path = f"/root/pypi/+simple/{PROJECT}?format={JSON_TYPE}&x=1"
    reply = request(server, path)
    assert reply.status in (301, 308)
    assert location_path(server, reply, path) == f"{PAGE}?format={JSON_TYPE}&x=1"

    reply = request(server, "/root/pypi/+simple/Lib.A?x=1")
    assert reply.status in (301, 308)
    assert location_path(server, reply, "/root/pypi/+simple/Lib.A?x=1") == f"{PAGE}?x=1"


def test_index_root_without_slash_redirects(server: CheeseboardServer) -> None:
    reply = request(server, "/root/pypi/+simple")
    assert reply.status in (301, 308)
    assert location_path(server, reply, "/root/pypi/+simple") == "/root/pypi/+simple/"


# --- 2. not found -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "query"),
    [
        (None, ""),
        ("text/html", ""),
        ("*/*", ""),
        (JSON_TYPE, ""),
        (PIP_ACCEPT, ""),
        (UV_ACCEPT, ""),
        (POETRY_ACCEPT, ""),
        ("application/vnd.pypi.simple.v2+json", ""),
        (None, "?format=bogus"),
    ],
    ids=["none", "text-html", "any", "json", "pip", "uv", "poetry", "v2-json", "bogus-format"],
)
def test_unknown_project_is_404(
    server: CheeseboardServer, upstream_html: UpstreamServer, accept: str | None, query: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    reply = request(server, f"/root/pypi/+simple/no-such-project/{query}", headers)
    assert reply.status == 404, reply
    assert upstream_html.count("/simple/no-such-project/") >= 1


@pytest.mark.parametrize(
    "path",
    [
        "/nobody/nothing/+simple/",
        "/nobody/nothing/+simple/lib-a/",
        "/root/nothing/+simple/lib-a/",
        "/root/nothing/+f/abc/0123456789abc/lib_a-1.0-py3-none-any.whl",
    ],
)
def test_unknown_index_is_404(server: CheeseboardServer, path: str) -> None:
    assert request(server, path).status == 404


@pytest.mark.parametrize(
    "name",
    ["foo%00bar", "%00", "a%20b", "foo%0Abar", "%C3%A9t%C3%A9", "-", "_lib", "x" * 3000 + "%00"],
    ids=["nul", "only-nul", "space", "newline", "non-ascii", "dash", "leading-underscore", "long"],
)
@pytest.mark.parametrize("slash", ["/", ""], ids=["slash", "no-slash"])
def test_invalid_project_name_is_404_without_asking_upstream(
    server: CheeseboardServer,
    upstream_html: UpstreamServer,
    corpus: Corpus,
    name: str,
    slash: str,
) -> None:
    before = len(upstream_html.requests)
    reply = request(server, f"/root/pypi/+simple/{name}{slash}")
    assert reply.status == 404, reply
    known = [*corpus.projects, "no-such-project"]
    asked = [r.path for r in upstream_html.requests[before:] if not any(k in r.path for k in known)]
    assert asked == []


# --- 3 and 4. the HTML page ---------------------------------------------------------------------


def test_html_page_basics(server: CheeseboardServer, corpus: Corpus) -> None:
    reply = request(server, PAGE)
    assert reply.status == 200
    assert reply.content_type == "text/html"
    assert reply.body.lstrip().lower().startswith(b"<!doctype html>")
    page = parse_page(reply.body)
    assert {"name": "pypi:repository-version", "content": "1.4"} in page.head_metas

    expected = corpus.files(PROJECT)
    texts = [a.text for a in page.anchors]
    assert sorted(texts) == sorted(expected), "one link per file"
    for anchor in page.anchors:
        url, fragment = urldefrag(anchor.href)
        assert anchor.text == unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        assert re.fullmatch(r"sha256=[0-9a-f]{64}", fragment), anchor.href
        assert fragment == f"sha256={expected[anchor.text].sha256}"


def _page_with_facts(server: CheeseboardServer) -> Reply:
    """PAGE once the JSON API's facts (core-metadata hashes, which this HTML upstream's pages
    lack) have landed: they follow in the background, after a pause in requests that need the
    app (services/quiet.py, at most 3 s)."""
    deadline = time.monotonic() + 15
    while True:
        reply = request(server, PAGE)
        if b"data-core-metadata" in reply.body or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


def test_html_page_attributes(server: CheeseboardServer, corpus: Corpus) -> None:
    reply = _page_with_facts(server)
    assert reply.status == 200
    assert b'data-requires-python="&gt;=3.8"' in reply.body
    assert b'data-requires-python="&lt;4,&gt;=3.7"' in reply.body
    assert b">=3.8" not in reply.body.replace(b"&gt;=3.8", b"")
    anchors = {a.text: a for a in parse_page(reply.body).anchors}
    for filename, dist in corpus.files(PROJECT).items():
        attrs = anchors[filename].attrs
        assert attrs.get("data-requires-python") == dist.requires_python
        if filename in corpus.yanked:
            assert attrs.get("data-yanked") == corpus.yanked[filename]
        else:
            assert "data-yanked" not in attrs, filename
        if dist.kind == "wheel":
            assert attrs.get("data-core-metadata") == f"sha256={metadata_sha(dist)}"
            if "data-dist-info-metadata" in attrs:
                assert attrs["data-dist-info-metadata"] == attrs["data-core-metadata"]
        else:
            assert "data-core-metadata" not in attrs
            assert "data-dist-info-metadata" not in attrs
    # The yank reason is escaped in the markup, not just decoded right by a lenient parser.
    assert b'data-yanked="broken &lt;build&gt; &amp; &quot;bad&quot; metadata"' in reply.body


# --- 5. JSON ------------------------------------------------------------------------------------


def check_detail(doc: Any, project: str, corpus: Corpus) -> None:
    assert isinstance(doc, dict)
    assert doc["meta"]["api-version"] == "1.4"
    assert doc["name"] == normalize(project)
    expected = corpus.files(project)
    files = doc["files"]
    assert sorted(f["filename"] for f in files) == sorted(expected)
    assert set(doc["versions"]) >= {d.version for d in expected.values()}
    for entry in files:
        dist = expected[entry["filename"]]
        assert entry["size"] == dist.size
        assert entry["hashes"]["sha256"] == dist.sha256
        assert isinstance(entry["url"], str) and entry["url"]


@pytest.mark.parametrize("client", sorted(CLIENT_ACCEPTS))
def test_client_accept_gets_json(server: CheeseboardServer, corpus: Corpus, client: str) -> None:
    reply = request(server, PAGE, {"Accept": CLIENT_ACCEPTS[client]})
    assert reply.status == 200
    assert reply.content_type == JSON_TYPE
    assert "accept" in vary_tokens(reply)
    check_detail(reply.json(), PROJECT, corpus)


def test_json_project_list(server: CheeseboardServer) -> None:
    assert request(server, PAGE).status == 200  # the project has been fetched
    reply = request(server, "/root/pypi/+simple/", {"Accept": PIP_ACCEPT})
    assert reply.status == 200
    assert reply.content_type == JSON_TYPE
    assert "accept" in vary_tokens(reply)
    doc = reply.json()
    assert doc["meta"]["api-version"] == "1.4"
    assert isinstance(doc["projects"], list)
    assert all(isinstance(p, dict) and isinstance(p["name"], str) for p in doc["projects"])
    assert PROJECT in {normalize(p["name"]) for p in doc["projects"]}

    html_reply = request(server, "/root/pypi/+simple/")
    assert html_reply.status == 200
    assert html_reply.content_type == "text/html"
    page = parse_page(html_reply.body)
    assert PROJECT in {a.text for a in page.anchors}


# --- 6 and 7. negotiation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (f"{V1_HTML_TYPE};q=0.1, text/html;q=0.01", V1_HTML_TYPE),
        ("text/html", "text/html"),
        ("*/*", "text/html"),
        (None, "text/html"),
        ("application/vnd.pypi.simple.latest+json", JSON_TYPE),
        (f"{JSON_TYPE};q=0, text/html", "text/html"),
    ],
    ids=["v1html", "text-html", "any", "none", "latest-json", "json-q0"],
)
def test_accept_negotiation(
    server: CheeseboardServer, accept: str | None, content_type: str
) -> None:
    reply = request(server, PAGE, {"Accept": accept} if accept else {})
    assert reply.status == 200
    assert reply.content_type == content_type
    assert "accept" in vary_tokens(reply)
    if content_type == JSON_TYPE:
        assert reply.json()["name"] == PROJECT
    else:
        assert reply.body.lstrip().lower().startswith(b"<!doctype html>")


def test_unsupported_version_is_406(server: CheeseboardServer) -> None:
    reply = request(server, PAGE, {"Accept": "application/vnd.pypi.simple.v2+json"})
    assert reply.status == 406


@pytest.mark.parametrize(
    "query",
    [f"format={JSON_TYPE}", f"format={quote(JSON_TYPE, safe='/')}"],
    ids=["raw-plus", "encoded-plus"],
)
def test_format_query_overrides_accept(server: CheeseboardServer, query: str) -> None:
    reply = request(server, f"{PAGE}?{query}", {"Accept": "text/html"})
    assert reply.status == 200
    assert reply.content_type == JSON_TYPE
    assert reply.json()["name"] == PROJECT

    assert request(server, f"{PAGE}?format=bogus", {"Accept": "text/html"}).status == 406


# --- 8. JSON file entries from both kinds of upstream ------------------------------------------


def check_json_files(doc: Any, corpus: Corpus) -> None:
    expected = corpus.files(PROJECT)

    def no_legacy_key(node: Any) -> None:
        if isinstance(node, dict):
            assert "dist-info-metadata" not in node
            for value in node.values():
                no_legacy_key(value)
        elif isinstance(node, list):
            for value in node:
                no_legacy_key(value)

    no_legacy_key(doc)
    for entry in doc["files"]:
        dist = expected[entry["filename"]]
        if dist.kind == "wheel":
            assert entry["core-metadata"] == {"sha256": metadata_sha(dist)}
        else:
            assert entry.get("core-metadata", False) is False
        assert UPLOAD_TIME_RE.match(entry["upload-time"]), entry
        assert entry["upload-time"] == corpus.upload_times[dist.filename]
        assert entry["requires-python"] == dist.requires_python
        assert entry.get("yanked", False) == corpus.yanked.get(dist.filename, False)


def test_json_file_entries_over_html_upstream(server: CheeseboardServer, corpus: Corpus) -> None:
    reply = request(server, PAGE, {"Accept": JSON_TYPE})
    assert reply.status == 200
    assert "<4,>=3.7" in reply.body.decode()  # unescaped in JSON
    check_json_files(reply.json(), corpus)
    check_detail(reply.json(), PROJECT, corpus)


def test_json_file_entries_over_json_upstream(
    json_server: CheeseboardServer, corpus: Corpus
) -> None:
    reply = request(json_server, PAGE, {"Accept": UV_ACCEPT})
    assert reply.status == 200
    assert reply.content_type == JSON_TYPE
    check_json_files(reply.json(), corpus)
    check_detail(reply.json(), PROJECT, corpus)
    html = request(json_server, PAGE)
    anchors = {a.text: a.attrs for a in parse_page(html.body).anchors}
    assert anchors[corpus.wheel.filename]["data-core-metadata"] == (
        f"sha256={metadata_sha(corpus.wheel)}"
    )
    paths = file_paths(json_server, PROJECT)
    meta = request(json_server, paths[corpus.wheel.filename][0] + ".metadata")
    assert meta.status == 200
    assert meta.body == corpus.wheel.metadata
    assert request(json_server, paths[corpus.sdist.filename][0] + ".metadata").status == 404
    no_traceback(json_server)


# --- 9. core metadata ---------------------------------------------------------------------------


def test_wheel_metadata(server: CheeseboardServer, corpus: Corpus) -> None:
    paths = file_paths(server, PROJECT)
    for dist in corpus.files(PROJECT).values():
        path, _ = paths[dist.filename]
        reply = request(server, path + ".metadata")
        if dist.kind == "wheel":
            assert reply.status == 200, dist.filename
            assert reply.body == dist.metadata
            assert hashlib.sha256(reply.body).hexdigest() == metadata_sha(dist)
            assert reply.header("content-encoding") is None
        else:
            assert reply.status == 404, dist.filename


# --- 10. caching of pages -----------------------------------------------------------------------


def _is_strong(etag: str | None) -> bool:
    return etag is not None and re.fullmatch(r'"[^"]*"', etag) is not None


def test_page_validators_and_304(server: CheeseboardServer) -> None:
    for accept in (None, JSON_TYPE):
        headers = {"Accept": accept} if accept else {}
        reply = request(server, PAGE, headers)
        assert reply.status == 200
        etag = reply.header("etag")
        assert _is_strong(etag), etag
        assert etag is not None
        last_modified = reply.header("last-modified")
        assert last_modified
        assert re.search(r"max-age=\d+", reply.header("cache-control") or "")

        for extra in ({}, {"Cache-Control": "max-age=0"}):
            again = request(server, PAGE, {**headers, **extra, "If-None-Match": etag})
            assert again.status == 304
            assert again.body == b""
            assert again.header("etag") == etag

        since = request(server, PAGE, {**headers, "If-Modified-Since": last_modified})
        assert since.status == 304
        assert since.body == b""

        other = request(server, PAGE, {**headers, "If-None-Match": '"something-else"'})
        assert other.status == 200
        assert other.body == reply.body


def test_representations_have_distinct_etags_and_gzip_works(server: CheeseboardServer) -> None:
    gz = {"Accept-Encoding": "gzip"}
    variants = {
        "html": request(server, PAGE),
        "json": request(server, PAGE, {"Accept": JSON_TYPE}),
        "html-gzip": request(server, PAGE, gz),
        "json-gzip": request(server, PAGE, {"Accept": JSON_TYPE, **gz}),
    }
    assert all(r.status == 200 for r in variants.values())
    etags = {name: r.header("etag") for name, r in variants.items()}
    assert all(_is_strong(e) for e in etags.values()), etags
    assert len(set(etags.values())) == len(etags), etags
    for kind in ("html", "json"):
        plain, packed = variants[kind], variants[f"{kind}-gzip"]
        assert plain.header("content-encoding") is None
        assert packed.header("content-encoding") == "gzip"
        assert gzip.decompress(packed.body) == plain.body
        assert packed.content_type == plain.content_type
        assert "accept-encoding" in vary_tokens(packed)
    for refused in ("gzip;q=0, deflate", "gzip; q=0.0", "*, gzip;q=0", "identity"):
        plain = request(server, PAGE, {"Accept-Encoding": refused})
        assert plain.status == 200
        assert plain.header("content-encoding") is None, refused
        assert plain.body == variants["html"].body
    anything = request(server, PAGE, {"Accept-Encoding": "br;q=0.9, *;q=0.5"})
    assert anything.header("content-encoding") == "gzip"
    assert gzip.decompress(anything.body) == variants["html"].body
    # An ETag of one representation never validates another.
    html_etag = etags["html"]
    assert html_etag is not None
    cross = request(server, PAGE, {"Accept": JSON_TYPE, "If-None-Match": html_etag})
    assert cross.status == 200
    assert cross.content_type == JSON_TYPE


# --- 11. HEAD -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Accept": PIP_ACCEPT}, {"Accept-Encoding": "gzip"}],
    ids=["html", "json", "gzip"],
)
def test_head_page_matches_get(server: CheeseboardServer, headers: dict[str, str]) -> None:
    get_status, get_headers, get_body = raw_exchange(server, "GET", PAGE, headers)
    head_status, head_headers, head_body = raw_exchange(server, "HEAD", PAGE, headers)
    assert get_status == head_status == 200
    assert head_body == b""
    for name in ("content-type", "content-length", "etag", "content-encoding", "vary"):
        assert head_headers.get(name) == get_headers.get(name), name
    assert int(get_headers["content-length"]) == len(get_body)


@pytest.mark.parametrize("accept_encoding", [None, "gzip"])
def test_head_wheel(server: CheeseboardServer, corpus: Corpus, accept_encoding: str | None) -> None:
    path, _ = file_paths(server, PROJECT)[corpus.wheel.filename]
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    status, head, body = raw_exchange(server, "HEAD", path, headers)
    assert status == 200
    assert body == b""
    assert "bytes" in head.get("accept-ranges", "")
    assert int(head["content-length"]) == corpus.wheel.size
    assert "content-encoding" not in head
    assert "immutable" in head.get("cache-control", "")


# --- 12. ranges ---------------------------------------------------------------------------------


def check_range_case(
    server: CheeseboardServer, path: str, dist: Dist, case: str, etag: str
) -> None:
    data = dist.path.read_bytes()
    size = len(data)
    assert size > 1100
    if case == "suffix":
        reply = request(server, path, {"Range": "bytes=-1000"})
        assert reply.status == 206
        assert reply.header("content-range") == f"bytes {size - 1000}-{size - 1}/{size}"
        assert reply.body == data[-1000:]
    elif case == "first-100":
        reply = request(server, path, {"Range": "bytes=0-99"})
        assert reply.status == 206
        assert reply.header("content-range") == f"bytes 0-99/{size}"
        assert reply.body == data[:100]
    elif case == "from-10":
        reply = request(server, path, {"Range": "bytes=10-"})
        assert reply.status == 206
        assert reply.header("content-range") == f"bytes 10-{size - 1}/{size}"
        assert reply.body == data[10:]
    elif case == "oversized-suffix":
        reply = request(server, path, {"Range": f"bytes=-{size + 10}"})
        assert reply.status == 206
        assert reply.header("content-range") == f"bytes 0-{size - 1}/{size}"
        assert reply.body == data
    elif case == "past-end":
        reply = request(server, path, {"Range": f"bytes={size}-"})
        assert reply.status == 416
        assert reply.header("content-range") == f"bytes */{size}"
    elif case == "if-range-current":
        reply = request(server, path, {"Range": "bytes=0-99", "If-Range": etag})
        assert reply.status == 206
        assert reply.body == data[:100]
    elif case == "if-range-stale":
        reply = request(server, path, {"Range": "bytes=0-99", "If-Range": '"' + "0" * 64 + '"'})
        assert reply.status == 200
        assert reply.body == data
    elif case == "gzip-accepted":
        reply = request(server, path, {"Accept-Encoding": "gzip, deflate"})
        assert reply.status == 200
        assert reply.header("content-encoding") is None
        assert hashlib.sha256(reply.body).hexdigest() == dist.sha256
    else:  # pragma: no cover
        raise AssertionError(case)
    if reply.status in (200, 206):
        assert int(reply.header("content-length") or -1) == len(reply.body)
        assert reply.header("content-encoding") is None


@pytest.fixture(scope="module")
def cached_wheel(server: CheeseboardServer, corpus: Corpus) -> tuple[str, str]:
    """(path, ETag) of W after one full GET has stored it."""
    path, fragment = file_paths(server, PROJECT)[corpus.wheel.filename]
    assert fragment == corpus.wheel.sha256
    reply = request(server, path)
    assert reply.status == 200
    assert hashlib.sha256(reply.body).hexdigest() == corpus.wheel.sha256
    again = request(server, path, {"Range": "bytes=0-0"})  # served from storage now
    assert again.status == 206
    etag = again.header("etag")
    assert _is_strong(etag), etag
    assert etag is not None
    return path, etag


@pytest.mark.parametrize("case", RANGE_CASES)
def test_ranges_on_cached_wheel(
    server: CheeseboardServer, corpus: Corpus, cached_wheel: tuple[str, str], case: str
) -> None:
    path, etag = cached_wheel
    check_range_case(server, path, corpus.wheel, case, etag)


@pytest.mark.parametrize("case", RANGE_CASES)
def test_ranges_on_first_request(
    server: CheeseboardServer,
    upstream_html: UpstreamServer,
    corpus: Corpus,
    cached_wheel: tuple[str, str],
    case: str,
) -> None:
    """The very first request for a file (nothing stored yet) is a range request."""
    dist = corpus.lazy[case]
    path, fragment = file_paths(server, LAZY_PROJECT)[dist.filename]
    fetched = [r.path for r in upstream_html.requests if r.path.endswith("/" + dist.filename)]
    assert fetched == [], "file must not have been fetched before"
    # Files' ETags are their quoted sha256 (README); the cached wheel shows the rule holds.
    assert cached_wheel[1] == f'"{corpus.wheel.sha256}"'
    check_range_case(server, path, dist, case, f'"{fragment}"')


# --- 13. percent-encoded paths ------------------------------------------------------------------


def test_percent_encoded_plus(server: CheeseboardServer, corpus: Corpus) -> None:
    href_path, _ = file_paths(server, PROJECT)[corpus.wheel.filename]
    plain = unquote(href_path)
    assert "/+f/" in plain
    # Pages may link "+f" either way; pip requests whatever the href says, so both must work.
    for path in (plain, plain.replace("/+f/", "/%2Bf/"), plain.replace("/+f/", "/%2bf/")):
        reply = request(server, path)
        assert reply.status == 200, path
        assert hashlib.sha256(reply.body).hexdigest() == corpus.wheel.sha256
        meta = request(server, path + ".metadata")
        assert meta.status == 200, path
        assert meta.body == corpus.wheel.metadata

    page = request(server, f"/root/pypi/%2Bsimple/{PROJECT}/")
    assert page.status == 200
    assert page.body == request(server, PAGE).body


# --- 15. methods --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/root/pypi/+simple/", PAGE])
def test_post_to_simple_is_405(server: CheeseboardServer, path: str) -> None:
    reply = request(
        server,
        path,
        {"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
        body=b":action=file_upload",
    )
    assert reply.status == 405


# --- 14. path tricks (last: checks the log for tracebacks from everything above) ---------------


def test_path_tricks_never_escape_or_crash(server: CheeseboardServer, corpus: Corpus) -> None:
    wheel = corpus.wheel
    path, sha = file_paths(server, PROJECT)[wheel.filename]
    good_prefix = path.rsplit("/", 1)[0]
    tricks = [
        "/root/pypi/+f/abc/def/..%2F..%2Fetc%2Fpasswd",
        "/root/pypi/+f/abc/def/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/root/pypi/+f/abc/def/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/root/pypi/+f/abc/def/..%5C..%5Cetc%5Cpasswd",
        "/root/pypi/+f/../../../../../etc/passwd",
        "/root/pypi/+e/..%2F..%2F..%2Fetc/passwd",
        f"/root/pypi/+e/x/..%2F{wheel.filename}",
        f"{good_prefix}/..",
        f"{good_prefix}/..%2F{wheel.filename}",
        f"{good_prefix}/{wheel.filename}..",
        f"{good_prefix}/..{wheel.filename}",
        f"{good_prefix}/{wheel.filename}%00",
        f"{good_prefix}/{wheel.filename}%00.metadata",
        f"/root/pypi/+f/000/0000000000000/{wheel.filename}",
        f"/root/pypi/+f/{sha[:3]}/0000000000000/{wheel.filename}",
        f"/root/pypi/+f/000/0000000000000/{wheel.filename}.metadata",
        f"/root/pypi/+f/{sha[3:6]}/{sha[:13]}/{wheel.filename}",
        f"/root/pypi/+f/{sha[:4]}/{sha[4:16]}/{wheel.filename}",  # same prefix, split wrong
        f"/root/pypi/+f/{sha[:3]}/{sha[3:15]}/{wheel.filename}",
        "/root/pypi/+simple/foo%00bar/",
        "/root/pypi/+simple/%00/",
        "/root/pypi/+simple/..%2F..%2Fetc%2Fpasswd/",
        "/root/pypi/+simple/-/",
        "/root/pypi/+simple/lib-a%2F..%2F..%2F/",
        "/root/pypi/+simple/%E2%80%AE/",
    ]
    passwd = Path("/etc/passwd").read_bytes()
    for trick in tricks:
        reply = request(server, trick)
        assert reply.status in (400, 404), (trick, reply.status, reply.body[:200])
        assert b"root:" not in reply.body, trick
        assert passwd[:64] not in reply.body, trick
        assert hashlib.sha256(reply.body).hexdigest() != wheel.sha256, trick
    no_traceback(server)
