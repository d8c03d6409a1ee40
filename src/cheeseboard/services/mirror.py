"""Refreshing one mirrored project: fetch upstream, store the links, enrich them.

Fetching and parsing are separate steps (``mirror.client`` and ``mirror.parse``); this module
orchestrates them and writes the outcome in one transaction. Facts an HTML-only upstream's page
lacks (sizes, upload times) follow from its JSON API in a second write, in the background, unless
the mirror needs them before answering (``MirrorConfig.needs_upload_times``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import packagetype_of, parse_dist_filename
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.mirror.errors import UpstreamError, UpstreamNotFound, UpstreamUnavailable
from cheeseboard.mirror.outbound import OutboundPolicy
from cheeseboard.mirror.parse import (
    FileFacts,
    PageFormatError,
    UpstreamLink,
    UpstreamPage,
    enrich,
    needs_enrichment,
    parse_pypi_json,
    parse_simple_page,
)
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.indexes import MirrorConfig
from cheeseboard.services.quiet import Quiet
from cheeseboard.store import project_rows
from cheeseboard.store.records import FileRecord, IndexRecord, NewFile, ProjectRecord

log = logging.getLogger(__name__)

AfterStore = Callable[[Connection, ProjectRecord | None, list[FileRecord]], None]
"""Work that ``MirrorRefresher.store`` runs in its transaction, after the rows are written."""

PARSE_IN_THREAD_BYTES = 512 * 1024
"""Upstream pages at least this big are parsed in a worker thread, off the event loop (parsing
runs at roughly 10 MB/s for HTML and 20 MB/s for JSON; numpy's page is about 1.5 MB)."""
MAX_FACTS_JOBS = 1000
"""Background JSON API fetches in flight at most (one per project): a project refreshed beyond
them is stored without the facts, which its next refresh fetches again."""


@dataclass(frozen=True, slots=True)
class FactsSource:
    """Where the facts a page lacks (sizes, upload times, hashes) come from: the upstream's PyPI
    JSON API document of one project, asked under the mirror's outbound policy."""

    url: str
    policy: OutboundPolicy


@dataclass(frozen=True, slots=True)
class Fetched:
    """A refresh's result: a new page, "unchanged" (304), or upstream said the name is unknown.

    ``facts_later`` names the JSON API whose facts ``store`` applies in the background, after the
    page is stored and answered."""

    page: UpstreamPage | None
    not_found: bool = False
    etag: str | None = None
    upstream_serial: int | None = None
    facts_later: FactsSource | None = None


class MirrorRefresher:
    """Fetch a project page from upstream and store it.

    Upstreams whose pages lack sizes and upload times (HTML only) have them in the PyPI JSON API.
    Unless the mirror's policy needs upload times before it may answer
    (``MirrorConfig.needs_upload_times``), the page is stored and answered from the simple page
    alone, and the JSON API's facts are written to the project's rows in the background, a second
    write through the change feed (every worker's page cache then rebuilds the page once). At most
    one such job runs per project, MAX_FACTS_JOBS in all; ``close`` cancels them.
    """

    def __init__(
        self, client: UpstreamClient, changes: ChangeFeed, quiet: Quiet | None = None
    ) -> None:
        self._client = client
        self._changes = changes
        # Facts jobs wait for a pause in the requests that need the app (services/quiet.py).
        self._quiet = quiet
        # Upstreams that send PEP 691 JSON with sizes need no JSON-API call; remember who does.
        self._complete_upstreams: set[str] = set()
        self._facts_jobs: dict[tuple[int, str], asyncio.Task[None]] = {}  # (index id, project)
        # The client is closed on shutdown (services/container.py): the jobs end first.
        client.on_close(self.close)

    async def fetch(self, config: MirrorConfig, name: str, etag: str | None) -> Fetched:
        """Raises UpstreamUnavailable; UpstreamNotFound becomes ``Fetched(not_found=True)``."""
        page_url = f"{config.simple_url}{name}/"
        policy = mirror_policy(config)
        source: FactsSource | None = None
        if config.json_api_url and config.simple_url not in self._complete_upstreams:
            source = FactsSource(config.json_api_url.format(name=name), policy)
        facts_task: asyncio.Task[bytes | None] | None = None
        if source is not None and config.needs_upload_times:
            # The policy needs the facts before answering: ask for both at once.
            facts_task = asyncio.create_task(self._fetch_facts(source, name))
        later = None if facts_task is not None else source
        try:
            try:
                raw = await self._client.fetch_page(page_url, policy, etag=etag)
            except UpstreamNotFound:
                return Fetched(None, not_found=True)
            if raw is None:
                return Fetched(None, etag=etag, facts_later=later)
            page = await _parse(page_url, raw.body, raw.content_type, raw.url)
            if page.is_json and not needs_enrichment(page):
                self._complete_upstreams.add(config.simple_url)
            if not needs_enrichment(page):
                later = None
            elif facts_task is not None:
                body = await facts_task
                facts_task = None
                facts = None if body is None else await _parse_facts(body, name)
                if facts is not None:
                    page = enrich(page, facts)
            return Fetched(page, etag=raw.etag, upstream_serial=raw.last_serial, facts_later=later)
        finally:
            if facts_task is not None:
                facts_task.cancel()

    async def _fetch_facts(self, source: FactsSource, name: str) -> bytes | None:
        """The JSON API document, or None: its failing never fails the page."""
        try:
            raw = await self._client.fetch_page(
                source.url, source.policy, accept="application/json"
            )
        except UpstreamError as exc:
            log.info("upstream JSON API gave nothing for %s: %s", name, exc.reason)
            return None
        return None if raw is None else raw.body

    async def store(
        self,
        index: IndexRecord,
        name: str,
        fetched: Fetched,
        then: AfterStore | None = None,
    ) -> tuple[ProjectRecord | None, list[FileRecord]]:
        """Write the outcome in one transaction; returns the project as stored, with its files.
        ``then(connection, project, files)`` runs last in that transaction, on the database
        thread: what the caller derives from the stored rows commits with them.

        A new page from an upstream whose pages lack facts gets them from its JSON API in a
        background job (``Fetched.facts_later``), as a refresh that waited for them would."""
        rows = (
            [] if fetched.page is None else [_new_file(link, name) for link in fetched.page.links]
        )
        # A page that lacks facts keeps those already stored for the same files (from an earlier
        # JSON API answer or the cached bytes), rather than dropping them until the facts land.
        keep = fetched.page is not None and needs_enrichment(fetched.page)
        project, records = await self._changes.write(
            _store, index.id, name, fetched, rows, time.time(), keep, then
        )
        if (
            fetched.facts_later is not None
            and fetched.page is not None
            and project is not None
            and project.found
        ):
            # Every new page gets the JSON API's facts again, as when the refresh waited for
            # them: a fact upstream corrected (a wrong core-metadata hash) is learnt again.
            self._start_facts_job(index, name, fetched.facts_later, fetched.page)
        return project, records

    def _start_facts_job(
        self, index: IndexRecord, name: str, source: FactsSource, page: UpstreamPage
    ) -> None:
        key = (index.id, name)
        if key in self._facts_jobs:
            return  # the job in flight fills the rows just stored as well
        if len(self._facts_jobs) >= MAX_FACTS_JOBS:
            log.info("%d JSON API fetches in flight: %s gets its facts later", MAX_FACTS_JOBS, name)
            return
        task = asyncio.create_task(self._apply_facts(index.id, name, source, page))
        self._facts_jobs[key] = task
        task.add_done_callback(lambda _: self._facts_jobs.pop(key, None))

    async def _apply_facts(
        self, index_id: int, name: str, source: FactsSource, page: UpstreamPage
    ) -> None:
        try:
            if self._quiet is not None:
                await self._quiet.settled()
            body = await self._fetch_facts(source, name)
            facts = None if body is None else await _parse_facts(body, name)
            if facts:
                await self._changes.write(_store_facts, index_id, name, facts, page)
        except Exception:  # a background job: nobody else would hear of it
            log.exception("applying upstream JSON API facts to %s failed", name)

    async def wait_for_facts(self) -> None:
        """Wait until the background facts jobs in flight now have ended."""
        jobs = list(self._facts_jobs.values())
        if jobs:
            await asyncio.wait(jobs)

    async def close(self) -> None:
        """Cancel the background facts jobs and wait for them to end."""
        jobs = list(self._facts_jobs.values())
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)


def mirror_policy(config: MirrorConfig) -> OutboundPolicy:
    """Where a mirror's requests may go: anywhere public, and its own upstream's origin even if
    that is loopback or private (root configured it); links to other non-public hosts are
    refused (docs/security.md, "Outbound requests")."""
    return OutboundPolicy.for_mirror(config.simple_url, config.json_api_url)


async def _parse(page_url: str, body: bytes, content_type: str, final_url: str) -> UpstreamPage:
    """Parse an upstream page; one that is not a usable page is upstream failing (the cached page
    stays), never a page to store. Big pages are parsed in a thread: a 30 MB page takes seconds,
    which must not stall every other request."""
    try:
        if len(body) < PARSE_IN_THREAD_BYTES:
            return parse_simple_page(body, content_type, final_url)
        return await asyncio.to_thread(parse_simple_page, body, content_type, final_url)
    except (ValueError, RecursionError) as exc:  # PageFormatError, and anything it missed
        if not isinstance(exc, PageFormatError):
            log.warning("unreadable upstream page %s: %r", page_url, exc)
        reason = str(exc) if isinstance(exc, PageFormatError) else "unreadable page"
        raise UpstreamUnavailable(page_url, reason) from exc


async def _parse_facts(body: bytes, name: str) -> dict[str, FileFacts] | None:
    """The JSON API document's facts per filename, or None (logged) when it does not parse."""
    try:
        if len(body) < PARSE_IN_THREAD_BYTES:
            return parse_pypi_json(body)
        return await asyncio.to_thread(parse_pypi_json, body)
    except PageFormatError as exc:
        log.warning("ignoring upstream JSON API for %s: %s", name, exc)
        return None


def _new_file(link: UpstreamLink, project: str) -> NewFile:
    return NewFile(
        filename=link.filename,
        version=parse_dist_filename(link.filename, project).version,
        packagetype=packagetype_of(link.filename),
        sha256=link.sha256,
        size=link.size,
        requires_python=link.requires_python,
        yanked=link.yanked,
        upload_time=link.upload_time,
        core_metadata_sha256=link.core_metadata_sha256,
        upstream_url=link.url,
    )


def _store(
    tx: Transaction,
    index_id: int,
    name: str,
    fetched: Fetched,
    rows: list[NewFile],
    now: float,
    keep_known_facts: bool,
    then: AfterStore | None = None,
) -> tuple[ProjectRecord | None, list[FileRecord]]:
    if fetched.not_found:
        changed = project_rows.save_mirror_not_found(tx.conn, index_id, name, now)
    elif fetched.page is None:
        project = project_rows.get_project(tx.conn, index_id, name)
        if project is not None:
            project_rows.mark_checked(tx.conn, project.id, now)
        changed = False
    else:
        changed = project_rows.save_mirror_page(
            tx.conn,
            index_id,
            name,
            name,
            rows,
            now,
            fetched.etag,
            fetched.upstream_serial,
            fetched.page.status,
            fetched.page.status_reason,
            keep_known_facts=keep_known_facts,
        )
    # Even an unchanged page is logged so other workers pick up the new check time.
    tx.log(index_id, name, ChangeKind.MIRROR_PAGE if changed else ChangeKind.MIRROR_CHECKED)
    project, records = project_rows.project_with_files(tx.conn, index_id, name)
    if then is not None:
        then(tx.conn, project, records)
    return project, records


def _store_facts(
    tx: Transaction, index_id: int, name: str, facts: dict[str, FileFacts], page: UpstreamPage
) -> bool:
    """Write what ``enrich`` makes of the fetched ``page`` with the JSON API's ``facts`` (what a
    refresh that waited for them stored) to the project's rows: a fact the JSON API gives
    replaces the row's, one it does not give keeps the row's (learnt from the cached bytes or an
    earlier answer); a row's sha256 is never replaced. Logs a page change if any row changed."""
    project = project_rows.get_project(tx.conn, index_id, name)
    if project is None or not project.found:
        return False
    fresh = {link.filename: link for link in enrich(page, facts).links}
    updates = {}
    for record in project_rows.project_files(tx.conn, project.id):
        link = fresh.get(record.filename)
        if link is None or (record.sha256 and link.sha256 and record.sha256 != link.sha256):
            continue
        known = project_rows.KnownFacts(
            record.sha256 or link.sha256,
            record.size if link.size is None else link.size,
            link.upload_time or record.upload_time,
            link.core_metadata_sha256 or record.core_metadata_sha256,
        )
        if known != (record.sha256, record.size, record.upload_time, record.core_metadata_sha256):
            updates[record.id] = known
    if not updates:
        return False
    project_rows.fill_file_facts(tx.conn, updates)
    tx.log(index_id, name, ChangeKind.MIRROR_PAGE)
    return True
