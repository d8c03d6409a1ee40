"""The services of one app instance: built in an ``AsyncExitStack``, closed in reverse order.

``open_services`` is what the HTTP app enters in its lifespan (http/app.py): the database, the
change feed and its watcher, the locks, the index registry, the upstream client, the blob store
(with its background work) and the use cases on top of them. Whatever was opened before a failure
is closed again, so a node that cannot start leaves nothing running.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from cheeseboard.core.tokens import TokenSigner
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.services.accounts import AccountService
from cheeseboard.services.advisories import AdvisoryService
from cheeseboard.services.auth import AuthService
from cheeseboard.services.blocks import BlockService
from cheeseboard.services.browse import BrowseService
from cheeseboard.services.changes import ChangeFeed
from cheeseboard.services.directory_signin import DirectorySignIn
from cheeseboard.services.docs import DocService
from cheeseboard.services.files import FileService
from cheeseboard.services.groups import GroupService
from cheeseboard.services.guard import ReleaseGuard
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.issuer_keys import IssuerKeys
from cheeseboard.services.ldap import Directory
from cheeseboard.services.locks import SharedLocks
from cheeseboard.services.mirror import MirrorRefresher
from cheeseboard.services.pages import PageService
from cheeseboard.services.project_status import ProjectStatusService
from cheeseboard.services.publishers import PublisherService
from cheeseboard.services.push import PushService
from cheeseboard.services.pypi_json import PypiJsonService
from cheeseboard.services.quiet import Quiet
from cheeseboard.services.releases import ReleaseService
from cheeseboard.services.search import SearchService
from cheeseboard.services.status import StatusService
from cheeseboard.services.throttle import LoginThrottle, VerifyGate
from cheeseboard.services.tokens import TokenService
from cheeseboard.services.toxresults import ToxResultService
from cheeseboard.services.uploads import UploadService
from cheeseboard.services.visibility import ReadAccess
from cheeseboard.settings import Settings
from cheeseboard.store import info, pg_changes
from cheeseboard.store.blob_stores import open_blob_store
from cheeseboard.store.db import Database
from cheeseboard.store.pg_changes import SerialWatcher
from cheeseboard.store.serial import SerialFile


@dataclass(frozen=True, slots=True)
class AppServices:
    """Everything a request may use, built once per worker by ``open_services``."""

    settings: Settings
    db: Database
    changes: ChangeFeed
    indexes: IndexRegistry
    pages: PageService
    files: FileService
    pypi_json: PypiJsonService
    auth: AuthService
    accounts: AccountService
    uploads: UploadService
    releases: ReleaseService
    server_uuid: str
    push: PushService
    tokens: TokenService
    search: SearchService
    browse: BrowseService
    docs: DocService
    status: StatusService
    reads: ReadAccess
    project_status: ProjectStatusService
    guard: ReleaseGuard
    blocks: BlockService
    toxresults: ToxResultService
    groups: GroupService
    publishers: PublisherService
    upstream: UpstreamClient
    quiet: Quiet


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[AppServices]:
    """Build the services for ``settings`` (the data directory must be initialised); close
    them, last opened first, when the block ends."""
    async with AsyncExitStack() as stack:
        db = Database(settings.db_url)
        stack.push_async_callback(db.close)
        serial_file = SerialFile(settings.layout.serial)
        stack.callback(serial_file.close)
        changes = ChangeFeed(db, serial_file)
        await changes.start()
        if pg_changes.is_postgres(settings.db_url):
            # Several nodes: commits on the others arrive by notification (or the poll).
            watcher = SerialWatcher(pg_changes.libpq_url(settings.db_url), serial_file)
            watcher.start()
            stack.push_async_callback(watcher.stop)
            locks = SharedLocks.on_postgres(pg_changes.libpq_url(settings.db_url))
        else:
            locks = SharedLocks.in_directory(settings.layout.locks)
        stack.push_async_callback(locks.close)
        indexes = IndexRegistry(db)
        await indexes.load()
        client = UpstreamClient(settings.request_timeout, settings.ca_bundle)
        await client.start()
        stack.push_async_callback(client.close)
        blobs = open_blob_store(settings)
        await blobs.start()
        stack.push_async_callback(blobs.close)
        quiet = Quiet()  # background work waits for a pause in real requests
        file_service = FileService(settings, db, changes, blobs, client, locks)
        stack.push_async_callback(file_service.close)
        pages = PageService(
            settings,
            db,
            changes,
            MirrorRefresher(client, changes, quiet),
            locks,
            indexes,
            after_fetch=file_service.prefetch_metadata,
        )
        stack.push_async_callback(pages.flush)  # renderings being saved reach the disk
        guard = ReleaseGuard(db, indexes, pages.order_of)
        await guard.load()
        pages.use_guard(guard)
        secret = await _signing_secret(settings, db)
        throttle = LoginThrottle(settings.login_attempts, settings.login_window)
        # Password checks share the cores among the workers: argon2 work is bounded server-wide.
        gate = VerifyGate(max(1, (os.cpu_count() or 1) // settings.workers))
        directory = _directory(settings, changes)
        auth = AuthService(db, TokenSigner(secret), throttle, gate, directory)
        await auth.load()
        account_service = AccountService(settings, db, changes, auth, indexes)
        changes.subscribe(auth.on_change)
        changes.subscribe(indexes.on_change)
        reads = ReadAccess(settings, indexes)
        changes.subscribe(reads.on_change)  # after the registry: it reads the reloaded one
        changes.subscribe(guard.on_change)  # after the registry too, before the pages
        changes.subscribe(pages.on_change)
        changes.subscribe(file_service.on_change)
        project_status = ProjectStatusService(db, changes)
        await project_status.load()
        changes.subscribe(project_status.on_change)
        advisories = AdvisoryService(db)  # loads nothing until a project is asked about
        changes.subscribe(advisories.on_change)
        server_uuid = await db.read(info.get_info, "uuid")
        yield AppServices(
            settings,
            db,
            changes,
            indexes,
            pages,
            file_service,
            PypiJsonService(pages, file_service, advisories),
            auth,
            account_service,
            UploadService(settings, db, changes, blobs, pages),
            ReleaseService(db, changes, pages),
            server_uuid or "",
            PushService(db, changes, indexes, blobs, client, pages, settings.push_allow),
            TokenService(changes, auth, indexes),
            SearchService(db, indexes),
            BrowseService(db),
            DocService(db),
            StatusService(settings, db, changes),
            reads,
            project_status,
            guard,
            BlockService(changes, guard),
            ToxResultService(db, changes),
            groups=GroupService(db, changes, auth),
            publishers=PublisherService(
                db,
                changes,
                auth,
                indexes,
                IssuerKeys(client, settings.oidc_issuers),
                settings.oidc_audience,
            ),
            upstream=client,
            quiet=quiet,
        )


def _directory(settings: Settings, changes: ChangeFeed) -> DirectorySignIn | None:
    """Sign-in against the config file's LDAP directory, if it names one."""
    if settings.ldap is None:
        return None
    return DirectorySignIn(Directory(settings.ldap), changes)


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
