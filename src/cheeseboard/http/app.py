"""The application factory: services are built in the lifespan and closed there."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from cheeseboard.core.tokens import TokenSigner
from cheeseboard.http import (
    accounts,
    devpi,
    docs,
    files,
    health,
    login,
    pypi_json,
    releases,
    simple,
    tokens,
    upload,
)
from cheeseboard.http.access import unguarded
from cheeseboard.http.access_log import AccessLog
from cheeseboard.http.client_address import ClientAddress
from cheeseboard.http.consistency import CatchUp
from cheeseboard.http.devpi import DevpiHeaders
from cheeseboard.http.errors import domain_error, http_error, os_error, storage_error
from cheeseboard.http.state import AppServices
from cheeseboard.http.ui import actions as web_actions
from cheeseboard.http.ui import pages as web_pages
from cheeseboard.http.ui import static as web_static
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.services.accounts import AccountService
from cheeseboard.services.auth import AuthService
from cheeseboard.services.changes import ChangeFeed
from cheeseboard.services.errors import CheeseboardError
from cheeseboard.services.files import FileService
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.locks import SharedLocks
from cheeseboard.services.mirror import MirrorRefresher
from cheeseboard.services.pages import PageService
from cheeseboard.services.push import PushService
from cheeseboard.services.pypi_json import PypiJsonService
from cheeseboard.services.releases import ReleaseService
from cheeseboard.services.search import SearchService
from cheeseboard.services.throttle import LoginThrottle, VerifyGate
from cheeseboard.services.tokens import TokenService
from cheeseboard.services.uploads import UploadService
from cheeseboard.settings import Settings
from cheeseboard.store import info, pg_changes
from cheeseboard.store.blobs import BlobStore, FileBlobStore
from cheeseboard.store.db import Database
from cheeseboard.store.pg_changes import SerialWatcher
from cheeseboard.store.s3 import S3Client, S3Error, S3Location
from cheeseboard.store.s3_blobs import CacheTrimmer, S3BlobStore
from cheeseboard.store.serial import SerialFile

SETTINGS_ENV = "CHEESEBOARD__SETTINGS_JSON"
_CACHE_TRIM_INTERVAL = 60.0  # seconds between checks of a node's local copies of bucket blobs
log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    """Build the ASGI app for ``settings``; the data directory must be initialised."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.db_url)
        serial_file = SerialFile(settings.layout.serial)
        changes = ChangeFeed(db, serial_file)
        await changes.start()
        watcher = None
        if pg_changes.is_postgres(settings.db_url):
            # Several nodes: commits on the others arrive by notification (or the poll).
            watcher = SerialWatcher(pg_changes.libpq_url(settings.db_url), serial_file)
            watcher.start()
            locks = SharedLocks.on_postgres(pg_changes.libpq_url(settings.db_url))
        else:
            locks = SharedLocks.in_directory(settings.layout.locks)
        indexes = IndexRegistry(db)
        await indexes.load()
        client = UpstreamClient(settings.request_timeout)
        await client.start()
        blobs = await open_blob_store(settings)
        trimming = None
        if isinstance(blobs, S3BlobStore):
            trimmer = CacheTrimmer(
                blobs.cache, settings.blob_cache_size, settings.layout.cache_trim_lock
            )
            trimming = asyncio.create_task(trimmer.run(_CACHE_TRIM_INTERVAL))
        file_service = FileService(settings, db, changes, blobs, client, locks)
        pages = PageService(
            settings,
            db,
            changes,
            MirrorRefresher(client, changes),
            locks,
            indexes,
            after_fetch=file_service.prefetch_metadata,
        )
        secret = await _signing_secret(settings, db)
        throttle = LoginThrottle(settings.login_attempts, settings.login_window)
        # Password checks share the cores among the workers: argon2 work is bounded server-wide.
        gate = VerifyGate(max(1, (os.cpu_count() or 1) // settings.workers))
        auth = AuthService(db, TokenSigner(secret), throttle, gate)
        await auth.load()
        account_service = AccountService(settings, db, changes, auth, indexes)
        changes.subscribe(auth.on_change)
        changes.subscribe(indexes.on_change)
        changes.subscribe(pages.on_change)
        changes.subscribe(file_service.on_change)
        server_uuid = await db.read(info.get_info, "uuid")
        app.state.services = AppServices(
            settings,
            db,
            changes,
            indexes,
            pages,
            file_service,
            PypiJsonService(pages, file_service),
            auth,
            account_service,
            UploadService(settings, db, changes, blobs, pages),
            ReleaseService(db, changes, pages),
            server_uuid or "",
            PushService(db, changes, indexes, blobs, client, pages, settings.push_allow),
            TokenService(changes, auth, indexes),
            SearchService(db, indexes),
        )
        try:
            yield
        finally:
            await file_service.close()
            if watcher is not None:
                await watcher.stop()
            await locks.close()
            await client.close()
            if trimming is not None:
                trimming.cancel()
                await asyncio.gather(trimming, return_exceptions=True)
            if isinstance(blobs, S3BlobStore):
                await blobs.client.close()
            await db.close()
            serial_file.close()

    app = Starlette(
        routes=[
            *health.routes,
            *web_static.routes,
            *web_actions.routes,  # POST-only form targets with "+…" segments of their own
            *web_pages.search_routes,
            *login.routes,
            *tokens.routes,  # before the /{user}/{index} patterns it would match
            *devpi.routes,
            *simple.routes,
            *files.routes,
            *pypi_json.routes,
            *upload.routes,
            *docs.routes,  # …/{project}/{version}/+doc/…, before the pages and releases
            *web_pages.routes,  # browsers only (http/ui/browser.py); everyone else falls through
            *releases.routes,
            *accounts.routes,  # last: its patterns are the most general
        ],
        lifespan=lifespan,
        exception_handlers={
            CheeseboardError: domain_error,
            HTTPException: http_error,
            OSError: os_error,
            S3Error: storage_error,
        },
    )
    missing = unguarded(app.routes)
    if missing:
        # docs/security.md: every route says who may call it (http/access.py).
        raise RuntimeError(f"routes without an access rule: {', '.join(missing)}")
    app.add_middleware(CatchUp)
    app.add_middleware(ClientAddress, settings=settings)
    app.add_middleware(DevpiHeaders)
    if settings.access_log:
        app.add_middleware(AccessLog)  # added last, so outermost: it also times the catch-up
    return app


async def open_blob_store(settings: Settings) -> BlobStore:
    """The data directory's blobs, or the bucket of ``--blob-url`` with them as its cache."""
    local = FileBlobStore(settings.layout.blobs)
    if not settings.blob_url:
        return local
    client = S3Client(S3Location.from_url(settings.blob_url), settings.request_timeout * 6)
    await client.start()
    return S3BlobStore(local, client)


async def _signing_secret(settings: Settings, db: Database) -> bytes:
    """What signs tokens and sessions: the same bytes on every node, or tokens break."""
    if settings.secret_file:
        with open(settings.secret_file, "rb") as handle:
            return handle.read().strip()
    local = settings.layout.secret.read_bytes().strip()
    if not pg_changes.is_postgres(settings.db_url):
        return local
    # Several nodes share the database, so they share the secret stored there: the first node's.
    shared = await db.write(info.shared_secret, local.decode())
    return shared.encode()


def app_from_environment() -> Starlette:
    """Factory for server workers: settings arrive serialized in the environment."""
    return create_app(Settings.from_json(os.environ[SETTINGS_ENV]))
