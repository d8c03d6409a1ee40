"""A fake upstream PyPI served over real HTTP on 127.0.0.1, for integration tests.

The mirror under test must talk to something that behaves like PyPI (and like the
plain-HTML mirror our CI reaches), including failing in controlled ways.  This server
runs in a background thread of the test process, records every request and can
inject faults per file or per page.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import html
import json
import re
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from packaging.version import InvalidVersion, Version

from tests.support.packages import Dist, normalize

__all__ = [
    "DEFAULT_UPLOAD_TIME",
    "JSON_CT",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "UpstreamServer",
    "corrupted",
]

DEFAULT_UPLOAD_TIME = "2024-01-02T03:04:05.123456Z"
JSON_CT = "application/vnd.pypi.simple.v1+json"


FaultKind = Literal[
    "corrupt",
    "truncate",
    "status",
    "delay",
    "reset",
    "trickle",
    "stall",
    "cut",
    "pad",
    "rewrite",
    "body",
    "redirect",
    "huge",
    "raw",
]


@dataclass(frozen=True)
class Fault:
    """A failure to inject into the answer for one target.

    - ``corrupt``: flip a few bytes, same length; ``truncate``: declare the full length, send half
      and hang up; ``status``: answer ``status`` with a short text body; ``delay``: wait
      ``seconds`` before answering; ``reset``: TCP RST before any byte.
    - ``trickle``: headers at once, then the body in ``pieces`` parts, each after a pause of
      ``seconds`` (a slow body taking ``pieces * seconds`` in all); ``stall``: headers and half
      the body, then silence for ``seconds`` and a hang-up.
    - ``cut``: a complete, well-framed answer holding only the body up to just after the last
      ``cut_after`` (a page cut off mid-tag, a JSON document cut off mid-value).
    - ``pad``: the body followed by ``body`` (Content-Length covers both); with ``seconds``,
      trickled like ``trickle``.
    - ``rewrite``: the body with each ``substitutions`` pair replaced (e.g. a wrong sha256); the
      ETag, if any, matches the new body, and a conditional request still gets the new body.
    - ``body``: answer 200 with ``body`` as ``content_type`` (and ``headers``) instead.
    - ``redirect``: answer ``status`` (302 unless given) with ``Location: location``.
    - ``huge``: answer 200 as ``content_type`` with ``size`` bytes of links, in 1 MiB writes until
      the client hangs up; with ``declare_length`` a Content-Length of ``size`` is sent first,
      otherwise the body ends when the connection closes. :attr:`UpstreamServer.streamed` then
      holds how many bytes were written.
    - ``raw``: write ``body`` as the whole answer, status line and headers included (or not: a
      server that does not speak HTTP), then close the connection.
    """

    kind: FaultKind
    status: int = 500
    seconds: float = 0.0
    pieces: int = 8
    cut_after: bytes = b""
    substitutions: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    content_type: str = "text/html"
    headers: tuple[tuple[str, str], ...] = ()
    location: str = ""
    size: int = 0
    declare_length: bool = False


# Faults that change the body of the real answer: they need the full answer, never a 304.
_BODY_FAULTS = frozenset({"corrupt", "truncate", "trickle", "stall", "cut", "pad", "rewrite"})
_MIB = 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the upstream saw it (before any fault was applied)."""

    method: str
    path: str
    headers: dict[str, str]
    time: float


@dataclass(frozen=True)
class _Entry:
    dist: Dist
    upload_time: str
    yanked: str | None
    data: bytes  # snapshot at add(): rebuilding the same filename must not change it

    @functools.cached_property
    def digests(self) -> tuple[str, str]:
        """md5 and blake2b-256 of the bytes, computed once: PyPI serves these from a cache,
        and hashing every file on every JSON API request would make this upstream unrealistically
        slow (it dominated cold-fetch benchmarks)."""
        return (
            hashlib.md5(self.data, usedforsecurity=False).hexdigest(),
            hashlib.blake2b(self.data, digest_size=32).hexdigest(),
        )


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def corrupted(body: bytes) -> bytes:
    """Flip a few bytes (first, middle, last) while keeping the length (the ``corrupt`` fault)."""
    if not body:
        return body
    data = bytearray(body)
    for i in {0, len(data) // 2, len(data) - 1}:
        data[i] ^= 0xFF
    return bytes(data)


def _altered(body: bytes, fault: Fault) -> bytes:
    """The body as a ``cut``, ``pad`` or ``rewrite`` fault sends it."""
    if fault.kind == "cut":
        at = body.rfind(fault.cut_after)
        return body[: at + len(fault.cut_after)] if at >= 0 else body[: len(body) // 2]
    if fault.kind == "pad":
        return body + fault.body
    for old, new in fault.substitutions:
        body = body.replace(old, new)
    return body


def _rebodied(response: _Response, body: bytes) -> _Response:
    """``response`` with another body; an ETag is recomputed so that it matches the new bytes."""
    headers = dict(response.headers or {})
    if "ETag" in headers:
        headers["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _Response(response.status, body, headers)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks live connections so stop() can cut them."""

    # socketserver's default listen backlog is 5: a burst of concurrent connections overflows it
    # and the kernel drops SYNs, costing clients a 1 s retransmit. Real indexes have no such
    # limit, so neither does this one.
    request_queue_size = 1024

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], upstream: UpstreamServer) -> None:
        self.upstream = upstream
        self.stopping = threading.Event()
        self.conn_lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.workers: set[threading.Thread] = set()
        super().__init__(addr, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup, which can stall offline."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]
        if self.upstream.tls is not None:
            # The handshake happens on the connection's own thread (its first read), so a
            # client that refuses the certificate never stalls the accepting loop.
            self.socket = self.upstream.tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        thread = threading.Thread(target=self._work, args=(request, client_address), daemon=True)
        with self.conn_lock:
            self.workers.add(thread)
        thread.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.workers.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about hang-ups (routine in fault tests) but show real bugs."""
        if not isinstance(sys.exception(), OSError):
            super().handle_error(request, client_address)

    def cut_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def join_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.conn_lock:
            workers = list(self.workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cheeseboard-test-upstream/1.0"
    disable_nagle_algorithm = True
    timeout = 60
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; tests inspect ``requests`` instead."""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _not_allowed(self) -> None:
        self.server.upstream._record(self)
        self._write(_Response(405, b"method not allowed\n"), head=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _serve(self, *, head: bool) -> None:
        upstream = self.server.upstream
        upstream._record(self)
        target, response = upstream._route(self.path, self.headers)
        fault = upstream._fault_for(target)
        if fault is None:
            self._write(response, head=head)
            return
        if fault.kind in _BODY_FAULTS and response.status == 304:
            # The client's copy is current, but the fault is about the body: send it anyway.
            unconditional = copy.copy(self.headers)
            del unconditional["If-None-Match"]
            target, response = upstream._route(self.path, unconditional)
        if fault.kind == "reset":
            self._reset()
            return
        if fault.kind == "delay":
            if self.server.stopping.wait(fault.seconds):
                self.close_connection = True
                return
            self._write(response, head=head)
        elif fault.kind == "status":
            body = b"" if head else f"injected fault {fault.status}\n".encode()
            self._write(_Response(fault.status, body, {"Content-Type": "text/plain"}), head=head)
        elif fault.kind == "corrupt":
            response.body = corrupted(response.body)
            self._write(response, head=head)
        elif fault.kind == "truncate":
            self._write(response, head=head, truncate=True)
        elif fault.kind in ("trickle", "stall"):
            self._write_slowly(response, fault, head=head)
        elif fault.kind == "pad" and fault.seconds:
            self._write_slowly(
                _rebodied(response, _altered(response.body, fault)), fault, head=head
            )
        elif fault.kind in ("cut", "pad", "rewrite"):
            self._write(_rebodied(response, _altered(response.body, fault)), head=head)
        elif fault.kind == "body":
            headers = {"Content-Type": fault.content_type, **dict(fault.headers)}
            self._write(_Response(200, fault.body, headers), head=head)
        elif fault.kind == "redirect":
            status = fault.status if 300 <= fault.status < 400 else 302
            self._write(_Response(status, b"", {"Location": fault.location}), head=head)
        elif fault.kind == "huge":
            self._write_huge(fault, target or "", head=head)
        elif fault.kind == "raw":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.write(fault.body)

    def _write_slowly(self, response: _Response, fault: Fault, *, head: bool) -> None:
        """Headers now; the body in pieces (trickle) or half of it and then silence (stall)."""
        self._write(
            _Response(response.status, b"", response.headers), head=True, length=len(response.body)
        )
        if head:
            return
        body = response.body
        try:
            if fault.kind == "stall":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.server.stopping.wait(fault.seconds)
                self.close_connection = True
                return
            pieces = max(1, fault.pieces)
            step = -(-len(body) // pieces) or 1
            for start in range(0, len(body), step):
                if self.server.stopping.wait(fault.seconds):
                    self.close_connection = True
                    return
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _write_huge(self, fault: Fault, target: str, *, head: bool) -> None:
        """Stream ``fault.size`` bytes of anchors until done or the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", fault.content_type)
        if fault.declare_length:
            self.send_header("Content-Length", str(fault.size))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if head:
            return
        anchor = b'<a href="../../files/huge-1.0.tar.gz">huge-1.0.tar.gz</a><br/>\n'
        chunk = b"<!DOCTYPE html><html><body>\n" + anchor * (_MIB // len(anchor))
        sent = 0
        try:
            while sent < fault.size and not self.server.stopping.is_set():
                piece = chunk[: fault.size - sent]
                self.wfile.write(piece)
                sent += len(piece)
        except OSError:
            pass
        finally:
            self.server.upstream._record_streamed(target, sent)

    def _reset(self) -> None:
        """Abort with a TCP RST and no response bytes at all."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def _write(
        self,
        response: _Response,
        *,
        head: bool,
        truncate: bool = False,
        length: int | None = None,
    ) -> None:
        headers = dict(response.headers or {})
        self.send_response(response.status)
        if response.status != 304:
            headers["Content-Length"] = str(len(response.body) if length is None else length)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if head or response.status == 304:
            return
        body = response.body[: len(response.body) // 2] if truncate else response.body
        try:
            self.wfile.write(body)
        except OSError:
            self.close_connection = True
        if truncate:
            self.close_connection = True


class UpstreamServer:
    """Fake PyPI: PEP 503/691 simple pages, files, .metadata and the JSON API.

    ``mode="html"`` mimics the CI mirror (HTML only, no caching headers, no
    data-core-metadata), ``mode="json"`` mimics pypi.org (PEP 691 negotiation, ETag).
    """

    def __init__(
        self,
        mode: Literal["html", "json"] = "html",
        *,
        json_api: bool = True,
        serve_metadata: bool = True,
        advertise_core_metadata: bool | None = None,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.mode = mode
        self.tls = tls  # a server context: serve HTTPS (tests/support/certs.py makes one)
        self.json_api = json_api
        self.serve_metadata = serve_metadata
        self.advertise_core_metadata = (
            mode == "json" if advertise_core_metadata is None else advertise_core_metadata
        )
        self.port = port
        self._lock = threading.Lock()
        self._files: dict[str, _Entry] = {}
        self._faults: dict[str, Fault] = {}
        self._requests: list[RecordedRequest] = []
        self._serial = 0
        self._projects_cache: tuple[int, dict[str, list[_Entry]]] | None = None
        self._json_api_cache: dict[tuple[str, int], bytes] = {}
        self._streamed_bytes: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL with trailing slash, e.g. ``http://127.0.0.1:8123/``."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/"

    @property
    def simple_url(self) -> str:
        """The PEP 503 index root, to hand to pip/uv or the mirror."""
        return self.url + "simple/"

    @property
    def running(self) -> bool:
        """Whether the server is currently listening."""
        return self._server is not None

    def start(self) -> None:
        """Bind and serve; a restart re-binds the same port so URLs stay valid."""
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut open connections so clients see refused/reset."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.cut_connections()
        if thread is not None:
            thread.join(5)
        server.join_workers(5)

    def __enter__(self) -> UpstreamServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- content ---------------------------------------------------------------------

    def add(self, dist: Dist, *, upload_time: str | None = None, yanked: str | None = None) -> None:
        """Publish ``dist``; ``yanked`` is the reason ("" = yanked without reason)."""
        entry = _Entry(dist, upload_time or DEFAULT_UPLOAD_TIME, yanked, dist.path.read_bytes())
        with self._lock:
            self._files[dist.filename] = entry
            self._serial += 1

    def remove(self, filename: str) -> None:
        """Unpublish a file (KeyError if it was never added)."""
        with self._lock:
            del self._files[filename]
            self._serial += 1

    def set_fault(self, target: str, fault: Fault | None) -> None:
        """Inject ``fault`` for a filename (``<wheel>.metadata`` for its PEP 658 metadata),
        ``simple/<norm>``, ``pypi/<norm>``, ``simple/`` or ``elsewhere/<path>``."""
        with self._lock:
            if fault is None:
                self._faults.pop(target, None)
            else:
                self._faults[target] = fault

    # -- request log -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def streamed(self, target: str) -> int | None:
        """Bytes the last finished ``huge`` answer for ``target`` wrote (None: none finished)."""
        with self._lock:
            return self._streamed_bytes.get(target)

    def clear_requests(self) -> None:
        """Forget recorded requests (and streamed byte counts), e.g. between phases of one test."""
        with self._lock:
            self._requests.clear()
            self._streamed_bytes.clear()

    def count(self, substring: str, method: str | None = None) -> int:
        """Number of recorded requests whose path contains ``substring``."""
        return sum(
            1
            for r in self.requests
            if substring in r.path and (method is None or r.method == method.upper())
        )

    # -- internals ---------------------------------------------------------------------

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        rec = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers=dict(handler.headers.items()),
            time=time.time(),
        )
        with self._lock:
            self._requests.append(rec)

    def _record_streamed(self, target: str, sent: int) -> None:
        with self._lock:
            self._streamed_bytes[target] = sent

    def _fault_for(self, target: str | None) -> Fault | None:
        if target is None:
            return None
        with self._lock:
            return self._faults.get(target)

    def _projects(self) -> dict[str, list[_Entry]]:
        """Entries grouped by normalized project name, files sorted by version.

        Memoized per serial: regrouping thousands of files on every request made this upstream
        far slower than a real (CDN-cached) index, and the benchmarks measured that instead.
        """
        with self._lock:
            serial = self._serial
            cached = self._projects_cache
            if cached is not None and cached[0] == serial:
                return cached[1]
            entries = list(self._files.values())
        projects: dict[str, list[_Entry]] = {}
        for entry in entries:
            projects.setdefault(normalize(entry.dist.name), []).append(entry)
        for files in projects.values():
            files.sort(key=lambda e: (_version_key(e.dist.version), e.dist.filename))
        grouped = dict(sorted(projects.items()))
        with self._lock:
            self._projects_cache = (serial, grouped)
        return grouped

    def _file_url(self, filename: str) -> str:
        return f"{self.url}files/{quote(filename)}"

    def _route(self, raw_path: str, headers: Any) -> tuple[str | None, _Response]:
        """Map a request to (fault target, response)."""
        path = unquote(urlsplit(raw_path).path)
        accept = headers.get("Accept", "") or ""
        wants_json = self.mode == "json" and JSON_CT in accept
        if path == "/simple/":
            return "simple/", self._negotiated(self._index(wants_json), headers, wants_json)
        if match := re.fullmatch(r"/simple/([^/]+)(/?)", path):
            name, slash = match.groups()
            norm = normalize(name)
            if not slash:
                return f"simple/{norm}", _Response(308, b"", {"Location": f"/simple/{name}/"})
            files = self._projects().get(norm)
            if files is None:
                return f"simple/{norm}", _Response(404)
            page = self._project_json(norm, files) if wants_json else self._project_html(files)
            return f"simple/{norm}", self._negotiated(page, headers, wants_json)
        if path.startswith("/files/"):
            return self._file(path.removeprefix("/files/"), headers)
        if match := re.fullmatch(r"/pypi/([^/]+)/json", path):
            norm = normalize(match.group(1))
            files = self._projects().get(norm)
            if not self.json_api or files is None:
                return f"pypi/{norm}", _Response(404)
            key = (norm, self._serial)
            body = self._json_api_cache.get(key)
            if body is None:
                body = json.dumps(self._pypi_json(files), indent=1).encode()
                self._json_api_cache[key] = body
            return f"pypi/{norm}", _Response(200, body, {"Content-Type": "application/json"})
        if match := re.fullmatch(r"/pypi/([^/]+)/.*", path):
            return f"pypi/{normalize(match.group(1))}", _Response(404)
        if path.startswith("/elsewhere/"):
            # Nothing lives here; faults on ``elsewhere/<rest>`` make redirect targets and chains.
            return path.removeprefix("/"), _Response(404)
        return None, _Response(404)

    def _negotiated(self, body: bytes, headers: Any, is_json: bool) -> _Response:
        """Attach Content-Type, and in json mode ETag/Vary with If-None-Match support."""
        extra = {"Content-Type": JSON_CT if is_json else "text/html"}
        if self.mode != "json":
            return _Response(200, body, extra)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        extra.update({"ETag": etag, "Vary": "Accept"})
        candidates = [
            t.strip().removeprefix("W/") for t in headers.get("If-None-Match", "").split(",")
        ]
        if etag in candidates or "*" in candidates:
            return _Response(304, b"", extra)
        return _Response(200, body, extra)

    def _index(self, as_json: bool) -> bytes:
        names = list(self._projects())
        if as_json:
            doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            return json.dumps(doc).encode()
        links = "".join(f'<a href="{html.escape(n)}/">{html.escape(n)}</a><br/>\n' for n in names)
        return (
            "<!DOCTYPE html><html><head><title>Simple index</title></head><body>\n"
            f"{links}</body></html>\n"
        ).encode()

    def _advertised(self, entry: _Entry) -> bool:
        return self.advertise_core_metadata and entry.dist.kind == "wheel"

    def _project_html(self, files: list[_Entry]) -> bytes:
        name = html.escape(files[0].dist.name)
        parts = [
            f"<!DOCTYPE html><html><head><title>Links for {name}</title></head>"
            f"<body><h1>Links for {name}</h1>\n"
        ]
        for entry in files:
            dist = entry.dist
            attrs = [f'href="../../files/{quote(dist.filename)}#sha256={dist.sha256}"']
            if dist.requires_python is not None:
                attrs.append(f'data-requires-python="{html.escape(dist.requires_python)}"')
            if entry.yanked is not None:
                attrs.append(f'data-yanked="{html.escape(entry.yanked)}"')
            if self._advertised(entry):
                meta = hashlib.sha256(dist.metadata).hexdigest()
                attrs.append(f'data-core-metadata="sha256={meta}"')
                attrs.append(f'data-dist-info-metadata="sha256={meta}"')
            parts.append(f"<a {' '.join(attrs)}>{html.escape(dist.filename)}</a><br/>\n")
        parts.append("</body></html>\n")
        return "".join(parts).encode()

    def _project_json(self, norm: str, files: list[_Entry]) -> bytes:
        out_files: list[dict[str, Any]] = []
        for entry in files:
            dist = entry.dist
            item: dict[str, Any] = {
                "filename": dist.filename,
                "url": self._file_url(dist.filename),
                "hashes": {"sha256": dist.sha256},
                "yanked": entry.yanked or (entry.yanked is not None),
                "size": dist.size,
                "upload-time": entry.upload_time,
            }
            if dist.requires_python is not None:
                item["requires-python"] = dist.requires_python
            if self._advertised(entry):
                meta = {"sha256": hashlib.sha256(dist.metadata).hexdigest()}
                item["core-metadata"] = meta
                item["dist-info-metadata"] = meta
            out_files.append(item)
        versions = sorted({e.dist.version for e in files}, key=_version_key)
        doc = {
            "meta": {"api-version": "1.1"},
            "name": norm,
            "versions": versions,
            "files": out_files,
        }
        return json.dumps(doc).encode()

    def _file(self, filename: str, headers: Any) -> tuple[str, _Response]:
        with self._lock:
            entry = self._files.get(filename)
            meta_entry = (
                self._files.get(filename.removesuffix(".metadata"))
                if filename.endswith(".metadata")
                else None
            )
        if entry is None and meta_entry is not None:
            if not self.serve_metadata or meta_entry.dist.kind != "wheel":
                return filename, _Response(404)
            ct = {"Content-Type": "application/octet-stream"}
            return filename, _Response(200, meta_entry.dist.metadata, ct)
        if entry is None:
            return filename, _Response(404)
        data = entry.data
        base = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        return filename, self._ranged(data, headers.get("Range"), base)

    @staticmethod
    def _ranged(data: bytes, range_header: str | None, base: dict[str, str]) -> _Response:
        """Apply a single ``bytes=`` range (206/416); anything else gets the full body."""
        size = len(data)
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header or "")
        if match is None or match.groups() == ("", ""):
            return _Response(200, data, base)
        first, last = match.groups()
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
            if last and int(last) < start:
                return _Response(200, data, base)
        else:
            start, end = max(0, size - int(last)), size - 1
            if int(last) == 0:
                start = size
        if start >= size or start > end:
            return _Response(416, b"", {**base, "Content-Range": f"bytes */{size}"})
        headers = {**base, "Content-Range": f"bytes {start}-{end}/{size}"}
        return _Response(206, data[start : end + 1], headers)

    def _pypi_json(self, files: list[_Entry]) -> dict[str, Any]:
        by_version: dict[str, list[_Entry]] = {}
        for entry in files:
            by_version.setdefault(entry.dist.version, []).append(entry)
        latest = max(by_version, key=_version_key)
        latest_files = by_version[latest]
        # Prefer a wheel's METADATA for the info block; sdist PKG-INFO is identical here.
        info_dist = next(
            (e.dist for e in latest_files if e.dist.kind == "wheel"), latest_files[0].dist
        )
        meta = BytesParser().parsebytes(info_dist.metadata)
        all_yanked = all(e.yanked is not None for e in latest_files)
        info = {
            "name": info_dist.name,
            "version": latest,
            "summary": meta.get("Summary"),
            "requires_python": meta.get("Requires-Python"),
            "requires_dist": meta.get_all("Requires-Dist") or None,
            "yanked": all_yanked,
            "yanked_reason": (latest_files[0].yanked or None) if all_yanked else None,
            "package_url": f"{self.url}project/{normalize(info_dist.name)}/",
        }
        with self._lock:
            serial = self._serial
        return {
            "info": info,
            "last_serial": serial,
            "releases": {v: [self._json_file(e) for e in es] for v, es in by_version.items()},
            "urls": [self._json_file(e) for e in latest_files],
            "vulnerabilities": [],
        }

    def _json_file(self, entry: _Entry) -> dict[str, Any]:
        dist = entry.dist
        is_wheel = dist.kind == "wheel"
        md5, blake2b = entry.digests
        core: dict[str, str] | bool = (
            {"sha256": hashlib.sha256(dist.metadata).hexdigest()} if is_wheel else False
        )
        return {
            "filename": dist.filename,
            "packagetype": "bdist_wheel" if is_wheel else "sdist",
            "python_version": dist.filename.split("-")[-3] if is_wheel else "source",
            "url": self._file_url(dist.filename),
            "size": dist.size,
            "upload_time": entry.upload_time.split(".")[0].removesuffix("Z"),
            "upload_time_iso_8601": entry.upload_time,
            "digests": {
                "sha256": dist.sha256,
                "md5": md5,
                "blake2b_256": blake2b,
            },
            "md5_digest": md5,
            "requires_python": dist.requires_python,
            "yanked": entry.yanked is not None,
            "yanked_reason": entry.yanked or None,
            "has_sig": False,
            "comment_text": "",
            "downloads": -1,
            "core-metadata": core,
        }
