"""The hot path: GET and HEAD of a cached simple page or a stored file, answered before routing.

Nearly every request an installer makes is one of these, and each can be answered from memory:
a page's rendered bytes with its header block, or a file's path for the server to send
(``pathsend``). Routing through Starlette's route list, its middlewares and a Request object
cost about three quarters of the CPU of such a request (profile in issue 19's note).

The answers are the routes' own: the rules are taken from the app's route table (a rule that
looks at credentials turns the hot path off for that route), the data comes from the services'
synchronous ``peek`` methods, which ``project_page`` and ``open`` use too, and the headers from
the same functions in http/responses.py. Anything this module does not answer exactly as the
routes would falls through to the app unchanged: a query string, a Range, If-Range or
If-Modified-Since header, a page that needs the database or upstream, a worker that has other
workers' changes to apply first, a name that is not in normal form.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from cheeseboard.core import metrics
from cheeseboard.core.names import is_valid_project_name, normalize_project_name
from cheeseboard.core.negotiation import Representation, negotiate
from cheeseboard.http.access import GuardedRoute, Rule, Target
from cheeseboard.http.devpi import devpi_headers
from cheeseboard.http.responses import (
    accepts_gzip,
    body_headers,
    etag_matches,
    file_headers,
    page_headers,
)
from cheeseboard.services.auth import ANONYMOUS, Identity
from cheeseboard.services.container import AppServices
from cheeseboard.services.files import StoredFile
from cheeseboard.services.pages import CachedPage, Rendered
from cheeseboard.store.records import FileRecord, IndexRecord

PAGE_ROUTE = "/{user}/{index}/+simple/{project}/"
FILE_ROUTE = "/{user}/{index}/+f/{h3}/{h13}/{filename}"
_METADATA = ".metadata"
_MEMO_ENTRIES = 1024
"""Distinct Accept and Accept-Encoding values whose outcome is remembered (clients choose them,
so the memo is cleared when full); real clients send a handful."""
_HEAD_ENTRIES = 4096  # header blocks of pages kept encoded; cleared when full
SMALL_FILE = 64 * 1024
"""Stored files up to this size (most .metadata files and small wheels) are sent from memory;
bigger ones go out through the server's ``pathsend``. Reading a small file on every request
cost more than the rest of the request: each system call releases the GIL to the server's own
threads and waits to get it back."""
STAT_SECONDS = 1.0  # how long what storage said about a file's bytes is trusted
SMALL_FILES_MEMORY = 16 * 1024 * 1024  # bytes of small files kept per worker; cleared when full
_CREDENTIALS = frozenset({b"authorization", b"x-devpi-auth"})
_FALLS_THROUGH = frozenset({b"if-modified-since", b"range", b"if-range"})

Head = list[tuple[bytes, bytes]]
Answer = tuple[int, Head, bytes, str | None, int]
"""Status, headers, body, the path to send instead of a body, and Content-Length (0 for a 304)."""
RequestLog = Callable[[Scope, int, int, float], None]  # scope, status, bytes, perf_counter start


def route_rule(app: Starlette, path: str) -> Rule:
    """The GET rule of the app's route for ``path`` (a route pattern)."""
    for route in app.routes:
        if isinstance(route, GuardedRoute) and route.path == path:
            return route.rule("GET")
    raise LookupError(f"the app has no route {path}")


def _encode(headers: dict[str, str]) -> Head:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


class HotPath:
    """ASGI app in front of ``app``: answers cached pages and stored files itself."""

    def __init__(
        self, app: Starlette, inner: ASGIApp | None = None, log: RequestLog | None = None
    ) -> None:
        """``app`` for the routes and services; ``inner`` (default: ``app``) is what answers
        what the hot path leaves, e.g. ``app`` inside the access log; ``log`` records the
        requests the hot path answers itself."""
        self.app = app
        self._inner: ASGIApp = inner if inner is not None else app
        self._log = log
        self._page_rule = route_rule(app, PAGE_ROUTE)
        self._file_rule = route_rule(app, FILE_ROUTE)
        self._representations: dict[bytes, Representation | None] = {}
        self._gzip: dict[bytes, bool] = {}
        self._heads: dict[tuple[Any, ...], Head] = {}
        self._file_head_cache: dict[tuple[str, int, float], tuple[Head, Head]] = {}
        self._bodies: dict[tuple[str, int, float], bytes] = {}
        self._stored_files: dict[tuple[int, str], tuple[float, FileRecord, StoredFile]] = {}
        self._bodies_size = 0
        self._devpi: tuple[int, Head] = (-1, [])
        # (rule, index, identity) -> (index, serial, admitted, identity): ``_reader``
        self._decisions: dict[tuple[int, int, int], tuple[IndexRecord, int, bool, Identity]] = {}
        self._first_answer = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            started = time.perf_counter()
            services: AppServices | None = getattr(self.app.state, "services", None)
            if services is not None:
                answer = None if services.changes.behind() else self.answer(scope, services)
                if answer is None:
                    services.quiet.touch()  # work for the app: what can wait, waits
                else:
                    await self._send(scope, send, answer)
                    # A page's path ends with "/", a file's with its name (``answer``).
                    page = scope["path"][-1] == "/"
                    if not page:
                        metrics.count("file_cache_hits_total")
                    metrics.observe_request(
                        "page" if page else "file",
                        answer[0],
                        time.perf_counter() - started,
                        len(answer[2]) if answer[3] is None else answer[4],
                    )
                    if self._log is not None:
                        self._log(scope, answer[0], answer[4], started)
                    if self._first_answer:
                        self._answered(services)
                    return
        await self._inner(scope, receive, send)
        if self._first_answer and scope["type"] == "http":
            services = getattr(self.app.state, "services", None)
            if services is not None:
                self._answered(services)

    def _answered(self, services: AppServices) -> None:
        """After this worker's first answer: what could wait for it starts now (importing the
        upstream client, mirror/client.py), rather than beside it."""
        self._first_answer = False
        services.upstream.warm_up()

    def answer(self, scope: Scope, services: AppServices) -> Answer | None:
        """The response to ``scope``, or None when the app must answer it."""
        if (
            scope["method"] not in ("GET", "HEAD")
            or scope.get("query_string")
            or scope.get("root_path")
        ):
            return None
        parts = scope["path"].split("/")
        if len(parts) == 6 and parts[3] == "+simple" and not parts[5]:
            return self._page(scope, services, parts[1], parts[2], parts[4])
        if len(parts) == 7 and parts[3] == "+f":
            return self._file(scope, services, parts)
        return None

    # --- pages -------------------------------------------------------------------------------

    def _page(
        self, scope: Scope, services: AppServices, user: str, index_name: str, project: str
    ) -> Answer | None:
        index = services.indexes.get(user, index_name)
        if index is None or not is_valid_project_name(project):
            return None
        if normalize_project_name(project) != project:
            return None  # the route redirects
        accept: bytes | None = None
        accept_encoding = b""
        if_none_match: bytes | None = None
        credentials: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"accept":
                accept = value if accept is None else accept
            elif name == b"accept-encoding":
                accept_encoding = accept_encoding or value
            elif name == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match
            elif name in _CREDENTIALS:
                credentials.setdefault(name.decode(), value.decode("latin-1"))
            elif name in _FALLS_THROUGH:
                return None
        admitted, reader = self._reader(self._page_rule, services, user, index, credentials)
        if not admitted:
            return None
        hidden = services.reads.hidden_bases(reader, index)
        cached = services.pages.peek(index, project, hidden)
        if cached is None or not cached.found:
            return None
        representation = self._representation(accept)
        if representation is None:
            return None  # the route answers 406 with the reason
        gzipped = self._accepts_gzip(accept_encoding) and cached.can_gzip(representation)
        max_age = (
            services.settings.mirror_page_max_age
            if index.type == "mirror"
            else services.settings.page_max_age
        )
        devpi = self._devpi_head(services)
        rendered = cached.render(representation, gzipped)
        if if_none_match is not None and etag_matches(
            if_none_match.decode("latin-1"), rendered.etag
        ):
            head = self._page_head(cached, rendered, representation, gzipped, max_age, False)
            return 304, head + devpi, b"", None, 0
        head = self._page_head(cached, rendered, representation, gzipped, max_age, True)
        body = rendered.body if scope["method"] == "GET" else b""
        return 200, head + devpi, body, None, len(rendered.body)

    def _page_head(
        self,
        cached: CachedPage,
        rendered: Rendered,
        representation: Representation,
        gzipped: bool,
        max_age: int,
        with_body: bool,
    ) -> Head:
        key = (
            rendered.etag,
            cached.last_modified,
            cached.page.last_serial,
            bool(cached.stale_reason),
            max_age,
            with_body,
        )
        head = self._heads.get(key)
        if head is None:
            headers = page_headers(cached, rendered, max_age)
            if with_body:
                headers.update(body_headers(rendered, representation, gzipped))
            head = _encode(headers)
            if len(self._heads) >= _HEAD_ENTRIES:
                self._heads.clear()
            self._heads[key] = head
        return head

    def _reader(
        self,
        rule: Rule,
        services: AppServices,
        user: str,
        index: IndexRecord,
        credentials: dict[str, str],
    ) -> tuple[bool, Identity | None]:
        """Whether the route's rule admits the caller, as far as memory knows their credentials
        (``AuthService.identify_known``), and who they are. Not admitted: the route answers (it
        checks the credentials, or refuses as it must).

        The outcome is remembered per rule, index object and identity object, until the serial
        moves: index rows are replaced, never changed in place, and every change that could
        alter a read decision (indexes, users, groups) is a logged change. A caller without
        credentials is ``ANONYMOUS``; a user's identity is the same object while its credentials
        stay valid (``identify_known``), a scoped token's a new one each time, never
        remembered here. It was a tenth of the hot path's time with the GIL (issue 19)."""
        if rule.check is None:
            return True, None
        if credentials:
            identity = services.auth.identify_known(credentials, index.fullname)
            if identity is None:
                return False, None
        else:
            identity = ANONYMOUS
        memo_key = (id(rule), id(index), id(identity))
        serial = services.changes.applied  # the serial: ``__call__`` found it not behind
        known = self._decisions.get(memo_key)
        if known is not None and known[0] is index and known[3] is identity and known[1] == serial:
            return known[2], identity
        settings = services.settings
        target = Target(
            user,
            index,
            settings.restrict_modify,
            settings.open_registration,
            services.reads,
            names_index=True,
        )
        decision = rule.check(identity, target)
        admitted = decision is None or decision.allowed
        if identity.token_indexes is None:
            if len(self._decisions) >= _HEAD_ENTRIES:
                self._decisions.clear()
            self._decisions[memo_key] = (index, serial, admitted, identity)
        return admitted, identity

    def _representation(self, accept: bytes | None) -> Representation | None:
        key = accept if accept is not None else b"\0none"
        try:
            return self._representations[key]
        except KeyError:
            pass
        choice = negotiate(accept.decode("latin-1") if accept is not None else None, None)
        if len(self._representations) >= _MEMO_ENTRIES:
            self._representations.clear()
        self._representations[key] = choice.representation
        return choice.representation

    def _accepts_gzip(self, accept_encoding: bytes) -> bool:
        known = self._gzip.get(accept_encoding)
        if known is None:
            known = accepts_gzip(accept_encoding.decode("latin-1"))
            if len(self._gzip) >= _MEMO_ENTRIES:
                self._gzip.clear()
            self._gzip[accept_encoding] = known
        return known

    def _devpi_head(self, services: AppServices) -> Head:
        serial = services.changes.serial
        if self._devpi[0] != serial:
            self._devpi = (serial, devpi_headers(services))
        return self._devpi[1]

    # --- files -------------------------------------------------------------------------------

    def _file(self, scope: Scope, services: AppServices, parts: list[str]) -> Answer | None:
        user, index_name, h3, h13, filename = parts[1], parts[2], parts[4], parts[5], parts[6]
        if_none_match: bytes | None = None
        credentials: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match
            elif name in _CREDENTIALS:
                credentials.setdefault(name.decode(), value.decode("latin-1"))
            elif name in _FALLS_THROUGH:
                return None
        index = services.indexes.get(user, index_name)
        if index is None:
            return None
        if not self._reader(self._file_rule, services, user, index, credentials)[0]:
            return None
        metadata = filename.endswith(_METADATA)
        record = services.files.peek_record(
            index, filename[: -len(_METADATA)] if metadata else filename
        )
        if record is None or not record.sha256:
            return None
        if services.project_status.is_quarantined(record.project_id):
            return None  # the route refuses it (PEP 792)
        if services.guard.plan(index) is not None and services.guard.withholds(index, record):
            return None  # the route refuses it, saying why (services/guard.py)
        if (h3, h13) != (record.sha256[:3], record.sha256[3:16]):
            return None  # the route answers 404
        stored = self._stored(services, index.id, filename, record, metadata)
        if stored is None or stored.mtime is None:
            return None
        full, bare = self._file_heads(stored.sha256, stored.size, stored.mtime)
        devpi = self._devpi_head(services)
        if if_none_match is not None and etag_matches(
            if_none_match.decode("latin-1"), f'"{stored.sha256}"'
        ):
            return 304, bare + devpi, b"", None, 0
        if scope["method"] == "HEAD":
            return 200, full + devpi, b"", None, stored.size
        if stored.size <= SMALL_FILE:
            body = self._small_body(stored.path, stored.size, stored.mtime)
            return None if body is None else (200, full + devpi, body, None, stored.size)
        if "http.response.pathsend" not in scope.get("extensions", {}):
            return None  # the route streams the file itself
        return 200, full + devpi, b"", str(stored.path), stored.size

    def _stored(
        self,
        services: AppServices,
        index_id: int,
        filename: str,
        record: FileRecord,
        metadata: bool,
    ) -> StoredFile | None:
        """What ``peek``/``peek_metadata`` said about this row's bytes at most STAT_SECONDS
        ago: a row in memory is replaced (a new object) when it changes, and stored bytes never
        change in place, so only a file's Last-Modified could lag, by that much at most."""
        key = (index_id, filename)
        now = time.monotonic()
        known = self._stored_files.get(key)
        if known is not None and known[1] is record and now - known[0] < STAT_SECONDS:
            return known[2]
        stored = services.files.peek_metadata(record) if metadata else services.files.peek(record)
        if stored is None:
            self._stored_files.pop(key, None)
            return None
        if len(self._stored_files) >= _HEAD_ENTRIES:
            self._stored_files.clear()
        self._stored_files[key] = (now, record, stored)
        return stored

    def _small_body(self, path: Path, size: int, mtime: float) -> bytes | None:
        """A small stored file's bytes, from memory after the first read. Blobs never change
        in place (they are named by their digest); the key has size and mtime all the same."""
        key = (str(path), size, mtime)
        body = self._bodies.get(key)
        if body is None:
            with open(path, "rb") as handle:
                body = handle.read(size + 1)
            if len(body) != size:
                return None  # replaced while we looked: let the route answer
            if self._bodies_size + size > SMALL_FILES_MEMORY:
                self._bodies.clear()
                self._bodies_size = 0
            self._bodies[key] = body
            self._bodies_size += size
        return body

    def _file_heads(self, sha256: str, size: int, mtime: float) -> tuple[Head, Head]:
        """A stored file's encoded headers for a 200 and for a 304 (no length)."""
        key = (sha256, size, mtime)
        heads = self._file_head_cache.get(key)
        if heads is None:
            bare = _encode(file_headers(sha256, size, mtime))
            heads = ([*bare, (b"content-length", str(size).encode())], bare)
            if len(self._file_head_cache) >= _HEAD_ENTRIES:
                self._file_head_cache.clear()
            self._file_head_cache[key] = heads
        return heads

    # --- sending -----------------------------------------------------------------------------

    @staticmethod
    async def _send(scope: Scope, send: Send, answer: Answer) -> None:
        status, headers, body, path, _ = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if path is not None:
            await send({"type": "http.response.pathsend", "path": path})
        else:
            await send({"type": "http.response.body", "body": body})
