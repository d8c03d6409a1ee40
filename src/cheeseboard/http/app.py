"""The application factory: services are built in the lifespan and closed there."""

from __future__ import annotations

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
from cheeseboard.http.access_log import AccessLog
from cheeseboard.http.client_address import ClientAddress
from cheeseboard.http.consistency import CatchUp
from cheeseboard.http.devpi import DevpiHeaders
from cheeseboard.http.errors import domain_error, http_error, os_error
from cheeseboard.http.state import AppServices
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.server.settings import Settings
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
from cheeseboard.services.throttle import LoginThrottle
from cheeseboard.services.tokens import TokenService
from cheeseboard.services.uploads import UploadService
from cheeseboard.store import queries
from cheeseboard.store.blobs import FileBlobStore
from cheeseboard.store.db import Database
from cheeseboard.store.serial import SerialFile
from cheeseboard.web import actions as web_actions
from cheeseboard.web import pages as web_pages
from cheeseboard.web import static as web_static

SETTINGS_ENV = "CHEESEBOARD__SETTINGS_JSON"
log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    """Build the ASGI app for ``settings``; the data directory must be initialised."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.db_url)
        serial_file = SerialFile(settings.datadir / "serial")
        changes = ChangeFeed(db, serial_file)
        await changes.start()
        indexes = IndexRegistry(db)
        await indexes.load()
        client = UpstreamClient(settings.request_timeout)
        await client.start()
        locks = SharedLocks(settings.datadir / "locks")
        blobs = FileBlobStore(settings.datadir / "blobs")
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
        secret = (settings.datadir / "secret").read_bytes().strip()
        throttle = LoginThrottle(settings.login_attempts, settings.login_window)
        auth = AuthService(db, TokenSigner(secret), throttle)
        await auth.load()
        account_service = AccountService(settings, db, changes, auth, indexes)
        changes.subscribe(auth.on_change)
        changes.subscribe(indexes.on_change)
        changes.subscribe(pages.on_change)
        changes.subscribe(file_service.on_change)
        server_uuid = await db.read(queries.get_info, "uuid")
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
            PushService(db, changes, indexes, blobs, client),
            TokenService(changes, auth, indexes),
            SearchService(db, indexes),
        )
        try:
            yield
        finally:
            await file_service.close()
            await client.close()
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
            *web_pages.routes,  # browsers only (web/browser.py); everyone else falls through
            *releases.routes,
            *accounts.routes,  # last: its patterns are the most general
        ],
        lifespan=lifespan,
        exception_handlers={
            CheeseboardError: domain_error,
            HTTPException: http_error,
            OSError: os_error,
        },
    )
    app.add_middleware(CatchUp)
    app.add_middleware(ClientAddress)
    app.add_middleware(DevpiHeaders)
    if settings.access_log:
        app.add_middleware(AccessLog)  # added last, so outermost: it also times the catch-up
    return app


def app_from_environment() -> Starlette:
    """Factory for server workers: settings arrive serialized in the environment."""
    return create_app(Settings.from_json(os.environ[SETTINGS_ENV]))
