"""Refreshing one mirrored project: fetch upstream, enrich, store the links.

Fetching and parsing are separate steps (``mirror.client`` and ``mirror.parse``); this module
orchestrates them and writes the outcome in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import packagetype_of, parse_dist_filename
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.mirror.errors import UpstreamError, UpstreamNotFound, UpstreamUnavailable
from cheeseboard.mirror.outbound import OutboundPolicy
from cheeseboard.mirror.parse import (
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
from cheeseboard.store import project_rows
from cheeseboard.store.records import FileRecord, IndexRecord, NewFile, ProjectRecord

log = logging.getLogger(__name__)

PARSE_IN_THREAD_BYTES = 512 * 1024
"""Upstream pages at least this big are parsed in a worker thread, off the event loop (parsing
runs at roughly 10 MB/s for HTML and 20 MB/s for JSON; numpy's page is about 1.5 MB)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A refresh's result: a new page, "unchanged" (304), or upstream said the name is unknown."""

    page: UpstreamPage | None
    not_found: bool = False
    etag: str | None = None
    upstream_serial: int | None = None


class MirrorRefresher:
    """Fetch a project page from upstream and store it."""

    def __init__(self, client: UpstreamClient, changes: ChangeFeed) -> None:
        self._client = client
        self._changes = changes
        # Upstreams that send PEP 691 JSON with sizes need no JSON-API call; remember who does.
        self._complete_upstreams: set[str] = set()

    async def fetch(self, config: MirrorConfig, name: str, etag: str | None) -> Fetched:
        """Raises UpstreamUnavailable; UpstreamNotFound becomes ``Fetched(not_found=True)``."""
        page_url = f"{config.simple_url}{name}/"
        policy = mirror_policy(config)
        facts_task: asyncio.Task[bytes | None] | None = None
        if config.json_api_url and config.simple_url not in self._complete_upstreams:
            facts_task = asyncio.create_task(self._fetch_facts(config.json_api_url, name, policy))
        try:
            try:
                raw = await self._client.fetch_page(page_url, policy, etag=etag)
            except UpstreamNotFound:
                return Fetched(None, not_found=True)
            if raw is None:
                return Fetched(None, etag=etag)
            page = await _parse(page_url, raw.body, raw.content_type, raw.url)
            if page.is_json and not needs_enrichment(page):
                self._complete_upstreams.add(config.simple_url)
            if needs_enrichment(page) and facts_task is not None:
                body = await facts_task
                facts_task = None
                if body is not None:
                    try:
                        if len(body) < PARSE_IN_THREAD_BYTES:
                            facts = parse_pypi_json(body)
                        else:
                            facts = await asyncio.to_thread(parse_pypi_json, body)
                        page = enrich(page, facts)
                    except PageFormatError as exc:
                        log.warning("ignoring upstream JSON API for %s: %s", name, exc)
            return Fetched(page, etag=raw.etag, upstream_serial=raw.last_serial)
        finally:
            if facts_task is not None:
                facts_task.cancel()

    async def _fetch_facts(self, template: str, name: str, policy: OutboundPolicy) -> bytes | None:
        url = template.format(name=name)
        try:
            raw = await self._client.fetch_page(url, policy, accept="application/json")
        except UpstreamError as exc:
            log.info("upstream JSON API gave nothing for %s: %s", name, exc.reason)
            return None
        return None if raw is None else raw.body

    async def store(
        self, index: IndexRecord, name: str, fetched: Fetched
    ) -> tuple[ProjectRecord | None, list[FileRecord]]:
        """Write the outcome in one transaction; returns the project as stored, with its files."""
        rows = (
            [] if fetched.page is None else [_new_file(link, name) for link in fetched.page.links]
        )
        return await self._changes.write(_store, index.id, name, fetched, rows, time.time())


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
        reason = str(exc) if isinstance(exc, PageFormatError) else f"unreadable page: {exc!r}"
        raise UpstreamUnavailable(page_url, reason) from exc


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
    tx: Transaction, index_id: int, name: str, fetched: Fetched, rows: list[NewFile], now: float
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
        )
    # Even an unchanged page is logged so other workers pick up the new check time.
    tx.log(index_id, name, ChangeKind.MIRROR_PAGE if changed else ChangeKind.MIRROR_CHECKED)
    return project_rows.project_with_files(tx.conn, index_id, name)
