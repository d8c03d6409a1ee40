"""Simple pages: built once, rendered once per representation, served from memory.

A cached page stays valid until the change feed reports a change to its project (from this process
or another worker) or, for mirrors, until it is older than the mirror's cache expiry. A refresh is
single-flight per project across tasks and worker processes; when upstream fails, the stale page is
served and upstream is left alone for a short back-off. An expiry of 0 (devpi's "revalidate every
time") sends every request upstream (a conditional request with the stored ETag), still one at a
time per project: requests that queued behind a refresh share its outcome.

Costs an anonymous caller can impose stay bounded (docs/security.md, "Limits"): a name upstream does
not have leaves no row and no changelog entry, only an entry in a bounded in-memory cache of
not-found pages (MAX_MISSING_NAMES); a forced refresh (devpi's refresh button) fetches a project at
most once per FORCED_REFRESH_INTERVAL, and concurrent ones share that fetch.

Pages survive restarts and are shared by workers and nodes. What decides whether a page's bytes
must be built is its content, not the change that dropped it from memory: a hash of the page model
(every file link, status, name, index) and of the renderer (``fingerprint``). The page's row in
store/page_rows.py holds the fingerprint its content last had, the serial (``_last-serial``, also
``X-PyPI-Last-Serial``) and the time (``Last-Modified``) it got it; the renderings of that content
are stored on the node's disk (store/page_bodies.py, written atomically, verified on load, bounded
by MAX_STORED_PAGE_BYTES). A page dropped from memory (a change, a restart, another worker) is
read from the database as before, then:

- same fingerprint as the row: the serial and time are the row's and the renderings are loaded
  (one file per kind, gzipped: decompressing and hashing cost a fraction of rendering and
  compressing), so bytes, ETag and Last-Modified are the same in every worker, node and restart;
- another fingerprint: the content changed; the first builder replaces the row in a write
  transaction (later ones adopt it), renders on demand and stores the renderings for the others.

So a change that does not alter a page (bytes cached, an unchanged upstream page checked again,
an index's title edited) costs a load, not a build, and one that does (an upload, a yank, a new
upstream file, a core-metadata hash learnt, a bases or whitelist change) is built once per node,
not once per worker and restart. Measured (two workers on one SQLite data directory): 20 pages
fetched in each worker after a restart, 40 builds before, 0 now; a mirror page whose 10 wheels are
downloaded one after another, fetched by both workers after each download: 0 builds before and now
when upstream advertises sizes and core metadata (the bytes change nothing), 14 before and 9 now
from an HTML upstream without either (each download adds them to the page: built once, the other
worker loads it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import Connection

import cheeseboard.core.pages
from cheeseboard import __version__
from cheeseboard.core import metrics
from cheeseboard.core.mirror_policy import CachedState, decide
from cheeseboard.core.negotiation import Representation
from cheeseboard.core.pages import (
    FileLink,
    ProjectList,
    ProjectPage,
    collect_versions,
    render_list_html,
    render_list_json,
    render_project_html,
    render_project_json,
)
from cheeseboard.core.release_policy import BlockSet
from cheeseboard.core.sro import (
    IndexNode,
    MirrorDecision,
    merge_by_filename,
    mirror_decision,
    resolution_order,
)
from cheeseboard.mirror.errors import UpstreamUnavailable
from cheeseboard.mirror.parse import UpstreamLink
from cheeseboard.services.changes import ChangeFeed, Epochs
from cheeseboard.services.errors import NotFound, UpstreamFailed
from cheeseboard.services.guard import Plan, ReleaseGuard
from cheeseboard.services.indexes import IndexRegistry, mirror_config
from cheeseboard.services.locks import LockTimeout, SharedLocks
from cheeseboard.services.mirror import MirrorRefresher
from cheeseboard.settings import Settings
from cheeseboard.store import page_rows, project_rows, project_status_rows
from cheeseboard.store.db import Database
from cheeseboard.store.page_bodies import PageBodies, StoredBody
from cheeseboard.store.page_rows import PageState
from cheeseboard.store.records import Change, FileRecord, IndexRecord, ProjectRecord

log = logging.getLogger(__name__)

_STALE_RETRY_SECONDS = 30.0  # after an upstream failure, serve stale this long before retrying
_ZERO_EXPIRY_RETRY_SECONDS = 5.0
"""That back-off on a mirror that revalidates every request (expiry 0; shorter expiries are
their own back-off): without one, request after request during an outage would wait out
upstream's timeout."""
MAX_MISSING_NAMES = 10_000
"""Not-found pages kept in memory (names; the least recently stored goes first). Random names
then cost a few MB at most, and one upstream request each per expiry while remembered."""
MAX_FILTERED_PAGES = 1000
MAX_GUARDED_PAGES = 10_000  # pages as the supply-chain guard lets them be seen; oldest go first
"""Pages kept for readers who may not read some bases of a stage (the oldest go first)."""
FORCED_REFRESH_INTERVAL = 10.0
"""Seconds after a forced refresh of a project during which another one does not fetch again:
twenty anonymous refreshes of a 4,000-file page cost one upstream fetch, not twenty."""
_FORCED_ENTRIES = 100_000  # forced-refresh times remembered; the oldest go first
_GZIP_MIN_BYTES = 1024
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
MAX_STORED_PAGE_BYTES = 256 * 1024**2
"""Bytes of rendered pages each node keeps on disk (DATADIR/pages); least recently used go first."""
_KINDS: dict[str, tuple[Representation, ...]] = {"html": ("html", "v1html"), "json": ("json",)}


def _renderer_version() -> bytes:
    """Part of every page fingerprint: a new renderer (any change to core/pages.py) renders
    every page again instead of loading bytes the old one made."""
    path = getattr(cheeseboard.core.pages, "__file__", None)
    try:
        source = Path(path).read_bytes() if path else b""
    except OSError:
        source = b""
    if not source:  # no source installed: the release will do
        source = f"{__version__} {cheeseboard.core.pages.API_VERSION}".encode()
    return hashlib.sha256(source).digest()


_RENDERER = _renderer_version()


def fingerprint(page: ProjectPage | ProjectList) -> str:
    """What decides whether a page's bytes must be built again: a hash of everything its
    renderings show except ``last_serial`` (which comes with the stored state), and of the
    renderer."""
    digest = hashlib.sha256(_RENDERER)
    digest.update(repr(dataclasses.replace(page, last_serial=0)).encode())
    return digest.hexdigest()


class _Unread:
    """A page state not read yet (``_settle`` reads it)."""


UNREAD = _Unread()


def _kind(representation: Representation) -> str:
    return "json" if representation == "json" else "html"


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One representation's bytes with its strong ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes, kind: str) -> Rendered:
        return cls.digested(body, hashlib.sha256(body).hexdigest(), kind)

    @classmethod
    def digested(cls, body: bytes, digest: str, kind: str) -> Rendered:
        """``of`` with the body's sha256 (hex) known already."""
        return cls(body, f'"{digest[:40]}-{kind}"')


@dataclass(slots=True)
class CachedPage:
    """A page and its renderings. Mutable only in its caches and staleness marks."""

    page: ProjectPage | ProjectList
    last_modified: str  # HTTP date
    checked_at: float | None = None  # mirrors: when upstream was last asked (wall clock)
    upstream_etag: str | None = None  # mirrors: validator for the next upstream request
    found: bool = True
    stale_reason: str | None = None
    retry_at: float = 0.0  # monotonic time before which upstream is not asked again
    valid_until: float | None = None  # stage pages: when an included mirror part expires
    _renders: dict[tuple[str, bool], Rendered] = field(default_factory=dict)
    # Other documents derived from this page (JSON API), dropped with it.
    extras: dict[str, Rendered] = field(default_factory=dict)
    # Persistence (PageService._settle): the page's fingerprint, whether its renderings came
    # from the store, and where a fresh rendering is handed to be stored.
    fingerprint: str | None = None
    stored_as: tuple[int, str] | None = None  # (index id, project or page_rows.LIST_KEY)
    from_store: bool = False
    store: Callable[[CachedPage, str, bytes, bytes | None], None] | None = None

    def render(self, representation: Representation, gzipped: bool) -> Rendered:
        key = (representation, gzipped)
        cached = self._renders.get(key)
        if cached is not None:
            return cached
        plain = self._renders.get((representation, False))
        fresh = plain is None
        if plain is None:
            plain = self._render_plain(representation)
        rendered = plain
        if gzipped:
            rendered = Rendered(_gzip(plain.body), plain.etag[:-1] + '-gz"')
            self._renders[key] = rendered
        if fresh and self.store is not None:
            self.store(self, _kind(representation), plain.body, rendered.body if gzipped else None)
        return rendered

    def _render_plain(self, representation: Representation) -> Rendered:
        """Render from the model, for every representation of the same kind (HTML ones share
        their bytes)."""
        kind = _kind(representation)
        metrics.count("page_renders_total")
        if self.from_store:
            metrics.count("page_builds_total")  # a rendering the store did not have
        if isinstance(self.page, ProjectPage):
            body = (
                render_project_json(self.page) if kind == "json" else render_project_html(self.page)
            )
        else:
            body = render_list_json(self.page) if kind == "json" else render_list_html(self.page)
        digest = hashlib.sha256(body).hexdigest()
        for sibling in _KINDS[kind]:
            self._renders[(sibling, False)] = Rendered.digested(body, digest, sibling)
        return self._renders[(representation, False)]

    def adopt(self, kind: str, stored: StoredBody) -> None:
        """Take a stored rendering of this page's content (all representations of its kind)."""
        for representation in _KINDS[kind]:
            plain = Rendered.digested(stored.plain, stored.digest, representation)
            self._renders[(representation, False)] = plain
            self._renders[(representation, True)] = Rendered(
                stored.gzipped, plain.etag[:-1] + '-gz"'
            )

    def can_gzip(self, representation: Representation) -> bool:
        return len(self.render(representation, False).body) >= _GZIP_MIN_BYTES


def file_path(index: IndexRecord, record: FileRecord) -> str:
    """Server-relative path of a file: devpi's ``+f`` for hashed files, ``+e`` otherwise."""
    if record.sha256:
        digest = record.sha256
        return f"{index.fullname}/+f/{digest[:3]}/{digest[3:16]}/{record.filename}"
    where = ""
    if record.upstream_url:
        parts = urlsplit(record.upstream_url)
        where = f"{parts.scheme}_{parts.netloc}{parts.path.rsplit('/', 1)[0]}"
    return f"{index.fullname}/+e/{_UNSAFE_PATH_CHARS.sub('_', where) or '_'}/{record.filename}"


def _file_link(index: IndexRecord, record: FileRecord) -> FileLink:
    return FileLink(
        filename=record.filename,
        path=file_path(index, record),
        version=record.version,
        sha256=record.sha256,
        size=record.size,
        requires_python=record.requires_python,
        yanked=record.yanked,
        upload_time=record.upload_time,
        core_metadata_sha256=record.core_metadata_sha256,
    )


@dataclass(frozen=True, slots=True)
class _Attempt:
    """How a refresh of a mirror project ended (monotonic time): with a page (fresh, or the cached
    one marked stale), or failing with nothing cached. Kept for the requests queued behind it."""

    ended: float
    page: CachedPage | None
    failure: str


class PageService:
    """Project pages and project lists for every index."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        changes: ChangeFeed,
        refresher: MirrorRefresher,
        locks: SharedLocks,
        registry: IndexRegistry,
        after_fetch: Callable[[IndexRecord, str, Sequence[UpstreamLink]], None] | None = None,
        page_dir: Path | None = None,
        page_store_bytes: int = MAX_STORED_PAGE_BYTES,
    ) -> None:
        self._after_fetch = after_fetch
        self._registry = registry
        self._settings = settings
        self._db = db
        self._changes = changes
        self._refresher = refresher
        self._locks = locks
        self._pages: dict[str, dict[int, CachedPage]] = {}  # project -> index id -> page
        # Pages saying "no such project", bounded: their names come from anyone's requests.
        self._missing: OrderedDict[str, dict[int, CachedPage]] = OrderedDict()
        self._forced: OrderedDict[tuple[int, str], float] = OrderedDict()  # monotonic end times
        self._lists: dict[int, CachedPage] = {}
        # Pages of stages as readers who may not read some bases see them (usually none).
        self._filtered: OrderedDict[tuple[int, str, frozenset[str]], CachedPage] = OrderedDict()
        self._attempts: dict[tuple[int, str], _Attempt] = {}  # (index id, project), oldest first
        # Pages built from rows read before a change was applied are served but not cached.
        self._epochs = Epochs()
        self._lists_epoch = 0
        self._bodies = PageBodies(page_dir or settings.datadir / "pages", page_store_bytes)
        self._saving: set[asyncio.Future[None]] = set()
        # Renderings stored before a change of a kind this version does not know are not used.
        self._stored_after = 0.0
        # The supply-chain guard (services/guard.py) and the pages as it lets them be seen:
        # (index id, project, hidden bases) -> (the full page, the guarded view of it).
        self._guard: ReleaseGuard | None = None
        self._guarded: OrderedDict[
            tuple[int, str, frozenset[str]], tuple[CachedPage, CachedPage]
        ] = OrderedDict()

    def use_guard(self, guard: ReleaseGuard) -> None:
        """Serve every page through ``guard`` (made after this service: it needs order_of)."""
        self._guard = guard

    # --- invalidation ------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        if change.kind.only_caches_bytes and not self._settings.offline:
            return  # bytes arrived but nothing on the page changed (offline pages list them)
        if not change.kind.known:
            # It may concern anything (a newer node's change): render pages again rather than
            # trust what the store holds.
            self._stored_after = time.time()
        if change.project is not None:
            # Drop the project in every index: stage pages include their bases' files.
            self._pages.pop(change.project, None)
            self._missing.pop(change.project, None)
        else:
            self._pages.clear()
            self._missing.clear()
        self._epochs.bump(change.project)
        self._filtered.clear()
        self._guarded.clear()
        if change.kind.changes_project_lists:
            self._lists.clear()
            self._lists_epoch += 1

    # --- project pages -----------------------------------------------------------------------

    def _cached(self, name: str, index_id: int) -> CachedPage | None:
        page = self._pages.get(name, {}).get(index_id)
        return page if page is not None else self._missing.get(name, {}).get(index_id)

    def _keep(self, name: str, index_id: int, page: CachedPage) -> None:
        """Cache a page: found ones without bound (they are real projects), not-found ones in
        the bounded ``_missing``."""
        if page.found:
            self._pages.setdefault(name, {})[index_id] = page
            if name in self._missing:
                self._missing[name].pop(index_id, None)
            return
        self._pages.get(name, {}).pop(index_id, None)
        self._missing.setdefault(name, {})[index_id] = page
        self._missing.move_to_end(name)
        while len(self._missing) > MAX_MISSING_NAMES:
            self._missing.popitem(last=False)

    def peek(
        self, index: IndexRecord, name: str, hidden: frozenset[str] = frozenset()
    ) -> CachedPage | None:
        """The page ``project_page`` would answer right now from memory, found or not, or None
        when answering needs the database or upstream. Synchronous: the hot path
        (http/hot.py) serves what this returns without awaiting anything."""
        if hidden:
            cached = self._filtered.get((index.id, name, hidden))
        else:
            cached = self._cached(name, index.id)
        if cached is None:
            return None
        if index.type == "mirror":
            expiry = mirror_config(index, self._settings.mirror_cache_expiry).cache_expiry
            usable = self._settings.offline or self._usable(cached, expiry)
        else:
            usable = cached.valid_until is None or time.time() < cached.valid_until
        if not usable:
            return None
        metrics.count("page_cache_hits_total")
        return self.guarded(index, name, hidden, cached)

    def guarded(
        self, index: IndexRecord, name: str, hidden: frozenset[str], full: CachedPage
    ) -> CachedPage:
        """``full`` as the supply-chain guard lets ``index`` offer it now: the same object when
        nothing applies; else a view without the held files, kept until a file comes of age or
        an exemption expires (its ``valid_until``) or a change drops it. Synchronous and in
        memory, for the hot path as much as for the routes."""
        if self._guard is None or not full.found or not isinstance(full.page, ProjectPage):
            return full
        plan = self._guard.plan(index)
        if plan is None:
            return full
        key = (index.id, name, hidden)
        known = self._guarded.get(key)
        now = time.time()
        if known is not None and known[0] is full:
            view = known[1]
            if view.valid_until is None or now < view.valid_until:
                return view
        page, recheck = plan.filter(full.page, now)
        if page is full.page and recheck is None:
            view = full
        else:
            view = CachedPage(
                page=page,
                last_modified=full.last_modified,
                checked_at=full.checked_at,
                found=True,
                stale_reason=full.stale_reason,
                retry_at=full.retry_at,
                valid_until=recheck,
            )
        self._guarded[key] = (full, view)
        self._guarded.move_to_end(key)
        while len(self._guarded) > MAX_GUARDED_PAGES:
            self._guarded.popitem(last=False)
        return view

    def as_of(self, index: IndexRecord, full: CachedPage, moment: float) -> CachedPage:
        """``full`` as it would have looked at ``moment`` (``+at`` URLs): files uploaded later,
        or of unknown age, left out, and the guard's rules applied as they stood then. Built
        per request (the moment is the client's), never cached."""
        if not full.found or not isinstance(full.page, ProjectPage):
            return full
        plan = self._guard.plan(index) if self._guard is not None else None
        if plan is None:
            plan = Plan(index.fullname, {}, {}, BlockSet())
        page, _ = plan.filter(full.page, moment, as_of=moment)
        page = dataclasses.replace(page, links_up=6)  # under <user>/<index>/+at/<time>/
        return CachedPage(
            page=page,
            last_modified=full.last_modified,
            checked_at=full.checked_at,
            found=True,
            stale_reason=full.stale_reason,
        )

    async def project_page(
        self,
        index: IndexRecord,
        name: str,
        hidden: frozenset[str] = frozenset(),
        as_of: float | None = None,
    ) -> CachedPage:
        """The page of ``name`` (normalized) on ``index``, merging no base named in ``hidden``
        (the bases its reader may not read: services/visibility.py), as the supply-chain guard
        lets it be seen now, or as it looked at ``as_of``. Raises NotFound or UpstreamFailed."""
        page = self.peek(index, name, hidden) if as_of is None else None
        if page is None:
            metrics.count("page_cache_misses_total")
            cached = self._cached(name, index.id)
            if index.type == "mirror":
                page = await self._mirror_page(index, name, cached)
            else:
                page = await self._stage_page(index, name, hidden)
            if as_of is None:
                page = self.guarded(index, name, hidden, page)
            else:
                page = self.as_of(index, page, as_of)
        if not page.found:
            raise NotFound(f"no project {name!r} on {index.fullname}")
        return page

    async def _mirror_page(
        self, index: IndexRecord, name: str, cached: CachedPage | None
    ) -> CachedPage:
        config = mirror_config(index, self._settings.mirror_cache_expiry)
        if cached is not None and self._usable(cached, config.cache_expiry):
            return cached
        if self._settings.offline:
            return cached or await self._load(index, name)
        queued_at = time.monotonic()
        try:
            async with self._locks.hold(f"page:{index.id}:{name}", self._lock_wait):
                if self._changes.behind():
                    await self._changes.catch_up()
                current = self._cached(name, index.id)
                if current is not None and self._usable(current, config.cache_expiry):
                    return current  # another task refreshed it while we waited
                attempt = self._attempts.get((index.id, name))
                if attempt is not None and attempt.ended >= queued_at:
                    # The refresh this request queued behind has just ended: share its outcome.
                    # Asking upstream again would have every queued request wait out a hanging
                    # upstream's timeout in turn.
                    if attempt.page is None:
                        raise UpstreamFailed(attempt.failure)
                    return attempt.page
                stored = await self._load(index, name)
                if self._usable(stored, config.cache_expiry):
                    return stored  # another worker process refreshed it
                return await self._refresh(index, name, stored if stored.checked_at else None)
        except LockTimeout:
            # Another task or worker has been refreshing longer than we wait (a huge page?).
            known = self._cached(name, index.id) or cached
            if known is not None and known.found and known.checked_at is not None:
                known.stale_reason = known.stale_reason or "a refresh is still running"
                return known
            raise UpstreamFailed(
                f"upstream {config.simple_url} is slow for {name!r}: a refresh is still running"
            ) from None

    @property
    def _lock_wait(self) -> float:
        """How long a request waits for another's refresh of the same page."""
        return self._settings.request_timeout * 4

    @staticmethod
    def _usable(page: CachedPage, expiry: float) -> bool:
        if page.retry_at > time.monotonic():
            return True  # upstream failed a moment ago: keep serving what we have
        state = CachedState(page.checked_at, page.found)
        return decide(state, time.time(), expiry, offline=False).action == "serve"

    async def _refresh(
        self, index: IndexRecord, name: str, previous: CachedPage | None
    ) -> CachedPage:
        config = mirror_config(index, self._settings.mirror_cache_expiry)
        if self._guard is not None and self._guard.needs_upload_times(index):
            # A cooldown or cut-off judges these files by age: the page waits for upload times.
            config = dataclasses.replace(config, needs_upload_times=True)
        etag = previous.upstream_etag if previous is not None and previous.found else None
        # Taken before our own write, which then voids it: the next request loads the stored
        # page, rather than this one caching rows a change applied meanwhile may have outdated.
        ticket = self._epochs.ticket()
        started = time.perf_counter()
        try:
            fetched = await self._refresher.fetch(config, name, etag)
        except UpstreamUnavailable as exc:
            metrics.observe_upstream(index.fullname, "page", "error", time.perf_counter() - started)
            log.warning("upstream failed for %s/%s: %s", index.fullname, name, exc)
            if previous is None or not previous.found:
                failed = UpstreamFailed(
                    f"upstream {config.simple_url} failed for {name!r} and nothing is cached: "
                    f"{exc.reason}"
                )
                self._attempted(index, name, None, failed.message)
                raise failed from exc
            previous.stale_reason = exc.reason
            backoff = min(_STALE_RETRY_SECONDS, config.cache_expiry or _ZERO_EXPIRY_RETRY_SECONDS)
            previous.retry_at = time.monotonic() + backoff
            if self._epochs.current(name, ticket):
                self._keep(name, index.id, previous)
            self._attempted(index, name, previous)
            return previous
        outcome = "not-found" if fetched.not_found else "ok"
        metrics.observe_upstream(index.fullname, "page", outcome, time.perf_counter() - started)
        if fetched.not_found and (previous is None or not previous.found):
            # Nothing to forget: remember the answer in memory only, so that random names
            # leave no project row and no changelog entry behind.
            page = self._not_found(index, name, ticket)
            self._attempted(index, name, page)
            return page
        if self._after_fetch is not None and fetched.page is not None:
            self._after_fetch(index, name, fetched.page.links)
        claimed: list[PageState] = []

        def claim(conn: Connection, project: ProjectRecord | None, rows: list[FileRecord]) -> None:
            # The page's state is claimed in the transaction that stores its rows: a cold page
            # then costs one write instead of a write, a read and another write (issue 19).
            content, found = self._content(index, name, project, rows)
            if found:
                claimed.append(page_rows.claim_state(conn, index.id, name, fingerprint(content)))

        project, records = await self._refresher.store(index, name, fetched, then=claim)
        state = claimed[0] if claimed else UNREAD
        page = await self._build(index, name, project, records, ticket, state, previous)
        self._attempted(index, name, page)
        return page

    def _not_found(self, index: IndexRecord, name: str, ticket: int) -> CachedPage:
        """Upstream's "no such project", checked now, cached in memory (bounded)."""
        page = CachedPage(
            page=ProjectPage(
                index=index.fullname,
                name=name,
                files=(),
                versions=(),
                last_serial=self._changes.serial,
                status=None,
                status_reason=None,
            ),
            last_modified=formatdate(time.time(), usegmt=True),
            checked_at=time.time(),
            found=False,
        )
        if self._epochs.current(name, ticket):
            self._keep(name, index.id, page)
        return page

    def _attempted(
        self, index: IndexRecord, name: str, page: CachedPage | None, failure: str = ""
    ) -> None:
        """Note how a refresh ended, for the requests queued behind it (``_mirror_page``); notes
        older than the longest such wait are dropped."""
        now = time.monotonic()
        self._attempts.pop((index.id, name), None)
        self._attempts[(index.id, name)] = _Attempt(now, page, failure)
        while True:  # ends at the latest at the note just added
            oldest = next(iter(self._attempts))
            if self._attempts[oldest].ended >= now - self._lock_wait:
                break
            del self._attempts[oldest]

    async def _load(self, index: IndexRecord, name: str) -> CachedPage:
        """Build the page from the database and cache it."""
        ticket = self._epochs.ticket()
        project, records, state = await self._db.read(_page_rows, index.id, name)
        return await self._build(index, name, project, records, ticket, state)

    async def _build(
        self,
        index: IndexRecord,
        name: str,
        project: ProjectRecord | None,
        records: list[FileRecord],
        ticket: int,
        state: PageState | _Unread | None = UNREAD,
        previous: CachedPage | None = None,
    ) -> CachedPage:
        """Make the page from stored rows, with its stored renderings if its content has not
        changed (``_settle``); cache it unless a change to the project was applied since
        ``ticket`` was taken (before the rows were read)."""
        page, found = self._content(index, name, project, records)
        cached = CachedPage(
            page=page,
            last_modified=formatdate(time.time(), usegmt=True),
            checked_at=project.checked_at if project else None,
            upstream_etag=project.upstream_etag if project else None,
            found=found,
        )
        await self._settle(index.id, name, cached, state, previous)
        if self._epochs.current(name, ticket):
            self._keep(name, index.id, cached)
        return cached

    def _content(
        self,
        index: IndexRecord,
        name: str,
        project: ProjectRecord | None,
        records: list[FileRecord],
    ) -> tuple[ProjectPage, bool]:
        """The page stored rows make, and whether it is found. Pure, so it may run on the
        database thread (``_refresh``) as well as on the loop (``_build``)."""
        if self._settings.offline:
            records = [r for r in records if r.blob_sha256 is not None]
        links = tuple(_file_link(index, r) for r in records)
        found = project is not None and project.found
        if self._settings.offline and not links:
            found = False
        page = ProjectPage(
            index=index.fullname,
            name=name,
            files=links,
            versions=collect_versions(links),
            last_serial=self._changes.serial,
            status=project.status if project else None,
            status_reason=project.status_reason if project else None,
        )
        return page, found

    # --- persistence ---------------------------------------------------------------------------

    async def _settle(
        self,
        index_id: int,
        key: str,
        cached: CachedPage,
        state: PageState | _Unread | None,
        previous: CachedPage | None,
    ) -> None:
        """Give a page just built from rows the serial and time its content has had since it
        last changed (the same on every worker and node), and the renderings stored for that
        content: loaded, not rendered. A page with new content is counted as a build and its
        renderings are stored as they are made (``_save``). Pages saying "not found" are not
        stored (anyone can ask for any name)."""
        if not cached.found:
            metrics.count("page_builds_total")
            return
        fp = fingerprint(cached.page)
        cached.fingerprint = fp
        cached.stored_as = (index_id, key)
        cached.store = self._save_later
        if previous is not None and previous.fingerprint == fp and previous.found:
            # The page just refreshed or reloaded is the one in memory: keep its renderings.
            cached.page = previous.page
            cached.last_modified = previous.last_modified
            cached._renders = previous._renders
            cached.from_store = True
            metrics.count("page_store_loads_total")
            return
        if isinstance(state, _Unread):
            state = await self._db.read(page_rows.get_state, index_id, key)
        if state is None or state.fingerprint != fp:
            try:
                state = await self._db.write(page_rows.claim_state, index_id, key, fp)
            except OSError as exc:
                # A full disk (store/db.py): reads keep working. This node serves the page
                # with a state of its own, stores nothing, and settles it on a later build.
                log.warning("page state of %s not stored: %s", key, exc)
                cached.stored_as = cached.fingerprint = None
                metrics.count("page_builds_total")
                return
        cached.page = dataclasses.replace(cached.page, last_serial=state.serial)
        cached.last_modified = formatdate(state.modified, usegmt=True)
        if state.new:  # claimed just now: nothing stored for it to load
            metrics.count("page_builds_total")
            return
        stored = await asyncio.to_thread(self._load_bodies, index_id, key, fp, state.serial)
        for kind, body in stored.items():
            cached.adopt(kind, body)
        cached.from_store = bool(stored)
        metrics.count("page_store_loads_total" if stored else "page_builds_total")

    def _load_bodies(self, index_id: int, key: str, fp: str, serial: int) -> dict[str, StoredBody]:
        found = {}
        for kind in _KINDS:
            body = self._bodies.load(index_id, key, kind, fp, serial, self._stored_after)
            if body is not None:
                found[kind] = body
        return found

    def _save_later(self, page: CachedPage, kind: str, plain: bytes, gzipped: bytes | None) -> None:
        """Store a fresh rendering of ``page`` on a worker thread (compressing it there if
        needed); ``flush`` waits for the writes under way."""
        if page.fingerprint is None or page.stored_as is None:
            return
        index_id, key = page.stored_as
        save = _Save(self._bodies, index_id, key, kind, page.fingerprint, page.page.last_serial)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            save(plain, gzipped)
            return
        future = loop.run_in_executor(None, save, plain, gzipped)
        self._saving.add(future)
        future.add_done_callback(self._saving.discard)

    async def flush(self) -> None:
        """Wait until the renderings being stored are on disk (at shutdown, and in tests)."""
        while self._saving:
            await asyncio.gather(*list(self._saving), return_exceptions=True)

    # --- stage pages ---------------------------------------------------------------------------

    def _nodes(self) -> dict[str, IndexNode]:
        return {
            index.fullname: IndexNode.from_config(
                index.fullname, {**index.config, "type": index.type}
            )
            for index in self._registry.all()
        }

    def order_of(self, index: IndexRecord) -> list[IndexRecord]:
        """``index`` and its bases in resolution order (mirrors last), as they exist now."""
        names = resolution_order(index.fullname, self._nodes())
        return [ix for fullname in names if (ix := self._registry.by_name(fullname)) is not None]

    async def _resolve(
        self, index: IndexRecord, name: str, hidden: frozenset[str] = frozenset()
    ) -> tuple[list[IndexRecord], dict[int, list[FileRecord]], set[str], MirrorDecision]:
        """Resolution order of ``index`` without the ``hidden`` bases, the stages' files of
        ``name``, the stages that have it, and whether mirrors take part (dependency-confusion
        guard)."""
        nodes = self._nodes()
        names = [n for n in resolution_order(index.fullname, nodes) if n not in hidden]
        order = [ix for fullname in names if (ix := self._registry.by_name(fullname)) is not None]
        stages = [ix for ix in order if ix.type != "mirror"]
        stage_files = await self._db.read(project_rows.stage_files, [ix.id for ix in stages], name)
        holders = {ix.fullname for ix in stages if stage_files.get(ix.id)}
        decision = mirror_decision(name, index.fullname, names, nodes, holders.__contains__)
        return order, stage_files, holders, decision

    async def _stage_page(
        self, index: IndexRecord, name: str, hidden: frozenset[str] = frozenset()
    ) -> CachedPage:
        """Merge the project's files along the stage resolution order (first filename wins),
        leaving out the ``hidden`` bases as if they were not there.

        Mirrors take part only if no stage in the order has the project, or it is whitelisted
        (dependency-confusion guard, docs/devpi-protocol.md §7).
        """
        ticket = self._epochs.ticket()
        order, stage_files, holders, decision = await self._resolve(index, name, hidden)
        # PEP 792 statuses set on the stages (services/project_status.py): a quarantined
        # project offers no files, through this index or any that inherits from it.
        own = await self._db.read(
            project_status_rows.statuses_of, [ix.id for ix in order if ix.type != "mirror"], name
        )
        groups: list[tuple[str, tuple[FileLink, ...]]] = []
        valid_until: float | None = None
        status: tuple[str | None, str | None] = (None, None)
        for member in order:
            if own.get(member.id, (None, None))[0] == project_status_rows.QUARANTINED:
                continue
            if member.type != "mirror":
                # Documentation zips are files of a release, but not installable: not listed.
                records = [r for r in stage_files.get(member.id, []) if r.packagetype != "doczip"]
                groups.append((member.fullname, tuple(_file_link(member, r) for r in records)))
                continue
            if not decision.use_mirrors:
                log.debug("%s/%s: %s", index.fullname, name, decision.reason)
                continue
            try:
                part = await self._mirror_page(member, name, self._cached(name, member.id))
            except UpstreamFailed:
                if holders:
                    continue  # local files are still worth serving
                raise
            if not part.found or not isinstance(part.page, ProjectPage):
                continue
            groups.append((member.fullname, part.page.files))
            expiry = mirror_config(member, self._settings.mirror_cache_expiry).cache_expiry
            if part.checked_at is not None:
                until = part.checked_at + expiry
                valid_until = until if valid_until is None else min(valid_until, until)
            status = (part.page.status, part.page.status_reason)
        links = tuple(merge_by_filename(groups, lambda link: link.filename))
        if index.id in own:  # the stage's own status, not its bases'
            status = own[index.id]
            if status[0] == project_status_rows.QUARANTINED:
                links = ()
        page = ProjectPage(
            index=index.fullname,
            name=name,
            files=links,
            versions=collect_versions(links),
            last_serial=self._changes.serial,
            status=status[0],
            status_reason=status[1],
        )
        cached = CachedPage(
            page=page,
            last_modified=formatdate(time.time(), usegmt=True),
            found=bool(links) or bool(holders),
            valid_until=valid_until,
        )
        if hidden:
            # A reader's partial view: kept in memory only (bounded), never stored or shared.
            if self._epochs.current(name, ticket):
                self._filtered[(index.id, name, hidden)] = cached
                while len(self._filtered) > MAX_FILTERED_PAGES:
                    self._filtered.popitem(last=False)
            return cached
        await self._settle(index.id, name, cached, UNREAD, self._cached(name, index.id))
        if self._epochs.current(name, ticket):
            self._keep(name, index.id, cached)
        return cached

    async def members_for(
        self, index: IndexRecord, name: str, hidden: frozenset[str] = frozenset()
    ) -> list[tuple[IndexRecord, bool]]:
        """The indexes whose releases of ``name`` show through ``index``: its resolution
        order without the ``hidden`` bases, and without the mirrors when the
        dependency-confusion guard hides them (deciding as if the hidden bases were not there,
        so nothing tells that one of them holds ``name``)."""
        order, _, _, decision = await self._resolve(index, name, hidden)
        return [
            (ix, ix.type == "mirror") for ix in order if ix.type != "mirror" or decision.use_mirrors
        ]

    async def refresh(self, index: IndexRecord, name: str) -> list[str]:
        """Fetch ``name`` from upstream now in every mirror of ``index``'s resolution order
        (devpi's refresh button); returns the mirrors refreshed.

        Anyone may ask, so it is bounded: a project refreshed this way less than
        FORCED_REFRESH_INTERVAL ago is not fetched again, and a refresh that waited for another
        one of the same project (any process of this node) takes that one's outcome.
        """
        refreshed = []
        for fullname in resolution_order(index.fullname, self._nodes()):
            member = self._registry.by_name(fullname)
            if member is None or member.type != "mirror" or self._settings.offline:
                continue
            await self._forced_refresh(member, name)
            refreshed.append(member.fullname)
        return refreshed

    async def _forced_refresh(self, member: IndexRecord, name: str) -> None:
        key = (member.id, name)
        queued_at = time.monotonic()
        last = self._forced.get(key)
        if last is not None and queued_at - last < FORCED_REFRESH_INTERVAL:
            return
        try:
            async with self._locks.hold(f"page:{member.id}:{name}", self._lock_wait):
                attempt = self._attempts.get(key)
                if attempt is not None and attempt.ended >= queued_at:
                    return  # the refresh we queued behind has just fetched it
                previous = await self._load(member, name)
                if not previous.found:
                    previous = self._cached(name, member.id) or previous
                try:
                    await self._refresh(member, name, previous if previous.checked_at else None)
                finally:
                    self._forced_at(key)
        except LockTimeout:
            return  # another process has been refreshing it all this time

    def _forced_at(self, key: tuple[int, str]) -> None:
        now = time.monotonic()
        self._forced.pop(key, None)
        self._forced[key] = now
        while self._forced:
            oldest, at = next(iter(self._forced.items()))
            if at >= now - FORCED_REFRESH_INTERVAL and len(self._forced) <= _FORCED_ENTRIES:
                break
            del self._forced[oldest]

    async def upstream_holders(self, index: IndexRecord, name: str) -> list[str]:
        """The mirrors in ``index``'s resolution order that know ``name`` upstream.

        Raises UpstreamFailed when a mirror cannot tell (its upstream is down, nothing cached).
        """
        holders = []
        for fullname in resolution_order(index.fullname, self._nodes()):
            member = self._registry.by_name(fullname)
            if member is None or member.type != "mirror":
                continue
            part = await self._mirror_page(member, name, self._cached(name, member.id))
            if part.found:
                holders.append(member.fullname)
        return holders

    # --- project lists -----------------------------------------------------------------------

    async def project_list(
        self, index: IndexRecord, hidden: frozenset[str] = frozenset()
    ) -> CachedPage:
        """An index's project names (not those only ``hidden`` bases have). Mirrors list the
        names seen so far, never upstream's list."""
        cached = None if hidden else self._lists.get(index.id)
        if cached is not None:
            return cached
        epoch = self._lists_epoch
        members = [
            member
            for fullname in resolution_order(index.fullname, self._nodes())
            if fullname not in hidden and (member := self._registry.by_name(fullname)) is not None
        ]
        names, state = await self._db.read(_list_rows, index.id, [m.id for m in members])
        listing = ProjectList(index.fullname, tuple(names), self._changes.serial)
        cached = CachedPage(page=listing, last_modified=formatdate(time.time(), usegmt=True))
        if hidden:
            return cached  # a reader's partial view: not stored, not cached
        await self._settle(index.id, page_rows.LIST_KEY, cached, state, None)
        if epoch == self._lists_epoch:  # else a change applied during the read outdated it
            self._lists[index.id] = cached
        return cached


@dataclass(frozen=True, slots=True)
class _Save:
    """Storing one rendering; run on a worker thread. Failing only costs a later render."""

    bodies: PageBodies
    index_id: int
    key: str
    kind: str
    fingerprint: str
    serial: int

    def __call__(self, plain: bytes, gzipped: bytes | None) -> None:
        try:
            self.bodies.save(
                self.index_id,
                self.key,
                self.kind,
                self.fingerprint,
                self.serial,
                plain,
                gzipped if gzipped is not None else _gzip(plain),
            )
        except OSError as exc:
            log.warning("could not store a rendered page under %s: %s", self.bodies.root, exc)


def _page_rows(
    conn: Connection, index_id: int, name: str
) -> tuple[ProjectRecord | None, list[FileRecord], PageState | None]:
    """A project, its files and its page state, read in one transaction."""
    project, records = project_rows.project_with_files(conn, index_id, name)
    return project, records, page_rows.get_state(conn, index_id, name)


def _list_rows(
    conn: Connection, index_id: int, member_ids: list[int]
) -> tuple[list[str], PageState | None]:
    names = project_rows.project_names_of(conn, member_ids)
    return names, page_rows.get_state(conn, index_id, page_rows.LIST_KEY)
