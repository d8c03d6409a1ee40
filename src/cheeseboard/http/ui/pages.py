"""The web UI's pages: home, user, index, project and version, search, and the error page.

Pages answer browsers only (http/ui/browser.py); the same URLs give installers and devpi-client
their simple pages and JSON. Nothing here changes state: forms post to http/ui/actions.py.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cheeseboard import __version__
from cheeseboard.core import acl
from cheeseboard.core.indexconfig import POLICY_KEYS
from cheeseboard.core.names import normalize_project_name
from cheeseboard.http.access import PUBLIC, READ
from cheeseboard.http.state import AppServices, base_url, index_of, reader_of, services
from cheeseboard.http.ui import session as sessions
from cheeseboard.http.ui.browser import BrowserRoute, WebRoute, web_reader
from cheeseboard.http.ui.templating import render
from cheeseboard.http.ui.views import guard_view, project_view
from cheeseboard.services.auth import Identity
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.visibility import Reader
from cheeseboard.store.records import IndexRecord

PROJECTS_PER_PAGE = 100


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    try:
        return max(1, min(int(raw), 100_000))
    except ValueError:
        raise BadRequest(f"page must be a number, not {raw!r}") from None


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error as a page, for browsers (APIs keep their JSON and text answers). Domain errors
    raised by the pages and forms arrive here through http/errors.py."""
    app: AppServices | None = getattr(request.app.state, "services", None)
    session = sessions.current(request, app.auth) if app else sessions.Session(None, "")
    return render(
        request,
        "error.html",
        session,
        http_status=status,
        headers=headers,
        status_code=status,
        message=message,
    )


def _session(request: Request) -> sessions.Session:
    return sessions.current(request, services(request).auth)


async def _readable(request: Request, app: AppServices) -> list[IndexRecord]:
    """The indexes the page's reader may read (the others are not shown, nor counted)."""
    reader = await web_reader(request)
    return app.reads.readable(reader, sorted(app.indexes.all(), key=lambda ix: ix.fullname))


def _visible_bases(app: AppServices, reader: Reader, index: IndexRecord) -> list[str]:
    """The bases ``index`` names that ``reader`` may read (the others are not there for them)."""
    hidden = app.reads.hidden_bases(reader, index)
    return [str(base) for base in index.config.get("bases", ()) if str(base) not in hidden]


async def home(request: Request) -> Response:
    app = services(request)
    counts = await app.browse.project_counts()
    indexes = await _readable(request, app)
    users = [(user, [ix for ix in indexes if ix.user == user.name]) for user in app.auth.users()]
    reader = await web_reader(request)
    bases = {ix.id: _visible_bases(app, reader, ix) for ix in indexes}
    status = {
        "version": __version__,
        "serial": app.changes.serial,
        "users": len(users),
        "indexes": len(indexes),
        "projects": sum(counts.get(ix.id, 0) for ix in indexes if ix.type == "stage"),
        "mirrored": sum(counts.get(ix.id, 0) for ix in indexes if ix.type == "mirror"),
        "offline": app.settings.offline,
    }
    return render(
        request,
        "home.html",
        _session(request),
        users=users,
        counts=counts,
        status=status,
        bases=bases,
    )


async def user_page(request: Request) -> Response:
    app = services(request)
    name = request.path_params["user"]
    record = app.auth.user(name)
    if record is None:
        raise NotFound(f"no user {name!r}")
    counts = await app.browse.project_counts()
    readable = await _readable(request, app)
    indexes = sorted((ix for ix in readable if ix.user == name), key=lambda ix: ix.name)
    return render(
        request, "user.html", _session(request), user=record, indexes=indexes, counts=counts
    )


def _usage(root: str, index: IndexRecord) -> dict[str, str]:
    simple = f"{root}{index.fullname}/+simple/"
    return {"simple": simple, "upload": f"{root}{index.fullname}/", "root": root}


async def index_page(request: Request) -> Response:
    app = services(request)
    index = index_of(request)
    number = page_number(request)
    hidden = app.reads.hidden_bases(reader_of(request), index)
    order = [ix for ix in app.pages.order_of(index) if ix.fullname not in hidden]
    stages = [ix.id for ix in order if ix.type == "stage"]
    own = [index.id] if index.type == "mirror" else stages or [index.id]
    rows, total = await app.browse.index_projects(
        own, PROJECTS_PER_PAGE, (number - 1) * PROJECTS_PER_PAGE
    )
    # The type and bases have rows of their own; the guard has its own section.
    shown = {"type", "bases", *POLICY_KEYS}
    config = {k: v for k, v in sorted(index.config.items()) if k not in shown}
    bases = _visible_bases(app, reader_of(request), index)
    session = _session(request)
    return render(
        request,
        "index.html",
        session,
        index=index,
        order=order,
        rows=rows,
        total=total,
        page=number,
        pages=max(1, -(-total // PROJECTS_PER_PAGE)),
        config=config,
        bases=bases,
        usage=_usage(base_url(request), index),
        guard=guard_view(app, index, session.user),
        publishers=await _publishers(app, index, session.user),
    )


async def _publishers(app: AppServices, index: IndexRecord, user: str | None) -> list[Any] | None:
    """The index's trusted publishers, for those who manage it (None: not shown)."""
    if index.type != "stage" or not acl.may_modify_index(user, index.user).allowed:
        return None
    return await app.publishers.list(Identity(user), index.user, index.name)


async def project_page(request: Request) -> Response:
    app = services(request)
    index = index_of(request)
    project = request.path_params["project"]
    version = request.path_params.get("version")
    hidden = app.reads.hidden_bases(reader_of(request), index)
    view = await project_view(app, index, project, version, hidden)
    canonical = normalize_project_name(project)
    if project != canonical and project != view.display_name and version is None:
        return RedirectResponse(f"/{index.fullname}/{canonical}", status_code=301)
    advisories = app.pypi_json.advisories
    return render(
        request,
        "project.html",
        _session(request),
        index=index,
        view=view,
        usage=_usage(base_url(request), index),
        is_version_page=version is not None,
        vulnerabilities=await advisories.affecting(view.name, view.selected.version)
        if advisories is not None
        else [],
    )


async def search_page(request: Request) -> Response:
    app = services(request)
    query = request.query_params.get("q", "").strip()
    index: IndexRecord | None = None
    wanted = request.query_params.get("index", "").strip()
    reader = reader_of(request)
    if wanted:
        index = app.indexes.by_name(wanted)
        if index is None or not app.reads.may_read(reader, index):
            raise NotFound(f"no index {wanted}")  # an unreadable one looks missing
    unreadable = frozenset(
        ix.fullname for ix in app.indexes.all() if not app.reads.may_read(reader, ix)
    )
    started = time.perf_counter()
    results = await app.search.search(query, page_number(request), 20, index, unreadable)
    elapsed = time.perf_counter() - started
    return render(
        request,
        "search.html",
        _session(request),
        query=query,
        index=index,
        results=results,
        elapsed_ms=elapsed * 1000,
    )


routes = [
    BrowserRoute("/", home, GET=PUBLIC),
    BrowserRoute("/{user}", user_page, GET=PUBLIC),
    BrowserRoute("/{user}/", user_page, GET=PUBLIC),
    BrowserRoute("/{user}/{index}", index_page, GET=READ),
    BrowserRoute("/{user}/{index}/", index_page, GET=READ),
    BrowserRoute("/{user}/{index}/{project}", project_page, GET=READ),
    BrowserRoute("/{user}/{index}/{project}/", project_page, GET=READ),
    BrowserRoute("/{user}/{index}/{project}/{version}", project_page, GET=READ),
    BrowserRoute("/{user}/{index}/{project}/{version}/", project_page, GET=READ),
]
search_routes = [WebRoute("/+search", search_page, GET=READ)]
