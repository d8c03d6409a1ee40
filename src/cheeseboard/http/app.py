"""The application factory: routes, error handlers and middleware; the services are entered in
the lifespan (services/container.py) and closed there."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.types import ASGIApp

from cheeseboard.http import (
    accounts,
    blocks,
    client_dist,
    devpi,
    docs,
    files,
    groups,
    health,
    login,
    project_status,
    publishers,
    pypi_json,
    releases,
    simple,
    tokens,
    toxresults,
    upload,
)
from cheeseboard.http import audit as audit_api
from cheeseboard.http.access import unguarded
from cheeseboard.http.access_log import AccessLog
from cheeseboard.http.client_address import ClientAddress
from cheeseboard.http.consistency import CatchUp
from cheeseboard.http.devpi import DevpiHeaders
from cheeseboard.http.errors import EXCEPTION_HANDLERS
from cheeseboard.http.hot import HotPath
from cheeseboard.http.request_metrics import RequestMetrics
from cheeseboard.http.ui import actions as web_actions
from cheeseboard.http.ui import audit as web_audit
from cheeseboard.http.ui import oidc as web_oidc
from cheeseboard.http.ui import pages as web_pages
from cheeseboard.http.ui import static as web_static
from cheeseboard.ops.retention_schedule import scheduled_retention
from cheeseboard.services.container import open_services
from cheeseboard.services.metrics import publishing
from cheeseboard.settings import Settings

SETTINGS_ENV = "CHEESEBOARD__SETTINGS_JSON"
log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    """Build the ASGI app for ``settings``; the data directory must be initialised."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            open_services(settings) as built,
            publishing(settings, built.db, built.changes) as metrics_service,
            scheduled_retention(built),  # --retention-interval (ops/retention_schedule.py)
        ):
            app.state.services = built
            app.state.metrics = metrics_service  # /-/metrics (http/health.py)
            if settings.advisories_url is None:
                yield
                return
            from cheeseboard.ops.advisory_schedule import scheduled_imports  # only when asked

            async with scheduled_imports(settings):
                yield

    app = Starlette(
        routes=[
            *health.routes,
            *client_dist.routes,  # /+client/: the server's own client wheel
            *web_static.routes,
            *web_actions.routes,  # POST-only form targets with "+…" segments of their own
            *web_oidc.routes,  # single sign-on for the web UI (OIDC)
            *web_pages.search_routes,
            *login.routes,
            *web_audit.routes,  # /+audit for browsers; everyone else gets the JSON below
            *audit_api.routes,
            *groups.routes,  # /+groups/…, before /{user}/{index}
            *blocks.routes,  # …/+blocks, before the /{user}/{index}/{project} patterns
            *tokens.routes,  # before the /{user}/{index} patterns it would match
            *publishers.routes,  # /_/oidc/…, /+oidc/…, …/+publishers: before devpi's patterns
            *devpi.routes,
            *simple.routes,
            *files.routes,
            *toxresults.routes,  # POST to a release file's +f URL (devpi test)
            *pypi_json.routes,
            *project_status.routes,  # …/{project}/+status, before the {version} patterns
            *upload.routes,
            *docs.routes,  # …/{project}/{version}/+doc/…, before the pages and releases
            *web_pages.routes,  # browsers only (http/ui/browser.py); everyone else falls through
            *releases.routes,
            *accounts.routes,  # last: its patterns are the most general
        ],
        lifespan=lifespan,
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    missing = unguarded(app.routes)
    if missing:
        # docs/security.md: every route says who may call it (http/access.py).
        raise RuntimeError(f"routes without an access rule: {', '.join(missing)}")
    app.add_middleware(CatchUp)
    app.add_middleware(ClientAddress, settings=settings)
    app.add_middleware(DevpiHeaders)
    return app


def serving_app(settings: Settings) -> ASGIApp:
    """The app as workers serve it: the hot path (http/hot.py) in front of ``create_app`` in
    the access log (which also times the catch-up); the hot path logs and counts its own
    answers, RequestMetrics counts the others (http/request_metrics.py)."""
    app = create_app(settings)
    counted = RequestMetrics(app)
    if not settings.access_log:
        return HotPath(app, counted)
    logged = AccessLog(counted)
    return HotPath(app, logged, logged.record)


def app_from_environment() -> ASGIApp:
    """Factory for server workers: settings arrive serialized in the environment."""
    return serving_app(Settings.from_json(os.environ[SETTINGS_ENV]))
