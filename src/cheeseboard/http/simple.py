"""The simple repository API (PEP 503/691) for every index: project lists and project pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cheeseboard.core.names import is_valid_project_name, normalize_project_name
from cheeseboard.core.negotiation import Representation, negotiate
from cheeseboard.core.release_policy import PolicyError, parse_time
from cheeseboard.http.access import READ, GuardedRoute
from cheeseboard.http.responses import page_response
from cheeseboard.http.state import hidden_bases, index_of, services
from cheeseboard.services.errors import BadRequest, NotAcceptable, NotFound


def _representation(request: Request) -> Representation:
    choice = negotiate(request.headers.get("accept"), request.query_params.get("format"))
    if choice.representation is None:
        raise NotAcceptable(choice.reason)
    return choice.representation


def _with_query(request: Request, path: str) -> str:
    query = request.url.query
    return f"{path}?{query}" if query else path


def _project_name(request: Request) -> str:
    """The project name from the path; 404 for anything that is not a PEP 508 name.

    Such a name can't exist anywhere, and it must never reach upstream: a NUL, space or slash
    would be dropped or re-encoded on the way, fetching (and caching) some other project's page.
    """
    name: str = request.path_params["project"]
    if not is_valid_project_name(name):
        raise NotFound(f"no project {name[:100]!r}: not a valid project name")
    return name


async def project_list(request: Request) -> Response:
    index = index_of(request)
    representation = _representation(request)
    app = services(request)
    cached = await app.pages.project_list(index, hidden_bases(request, index))
    return page_response(request, cached, representation, app.settings.page_max_age)


async def project_page(request: Request) -> Response:
    index = index_of(request)
    name = _project_name(request)
    normalized = normalize_project_name(name)
    if name != normalized:
        # PEP 503 allows the redirect; PyPI uses 301. Clients must not depend on it.
        target = f"/{index.fullname}/+simple/{normalized}/"
        return RedirectResponse(_with_query(request, target), status_code=301)
    app = services(request)
    # Look the project up before negotiating: an unknown project is 404 whatever the Accept
    # (docs/standards.md §1.2, and test 2 of §4), so clients move on to their next index.
    cached = await app.pages.project_page(index, normalized, hidden_bases(request, index))
    representation = _representation(request)
    max_age = (
        app.settings.mirror_page_max_age if index.type == "mirror" else app.settings.page_max_age
    )
    return page_response(request, cached, representation, max_age)


def _moment(request: Request) -> float:
    """The time of an "as of" URL (``+at/<RFC 3339 time>/``); 400 for anything else."""
    text: str = request.path_params["moment"]
    try:
        return parse_time(text, "+at")
    except PolicyError:
        raise BadRequest(
            f"+at/{text[:40]}/: not an RFC 3339 time (e.g. 2026-01-31T00:00:00Z)"
        ) from None


async def project_page_as_of(request: Request) -> Response:
    """``/<user>/<index>/+at/<time>/+simple/<project>/``: the page as it looked then (files
    uploaded later, or of unknown age, left out; the index's cooldown as it stood then), for
    reproducible builds and rollbacks (docs/supply-chain.md)."""
    index = index_of(request)
    moment = _moment(request)
    name = normalize_project_name(_project_name(request))
    app = services(request)
    cached = await app.pages.project_page(index, name, hidden_bases(request, index), as_of=moment)
    return page_response(request, cached, _representation(request), app.settings.page_max_age)


async def project_list_as_of(request: Request) -> Response:
    """The project list under an "as of" prefix: today's names (a project's page is then empty
    when nothing of it existed at the time)."""
    _moment(request)
    return await project_list(request)


async def add_slash(request: Request) -> Response:
    """Missing trailing slash: redirect, keeping the query string (PEP 503)."""
    index_of(request)
    path = request.url.path + "/"
    if "project" in request.path_params:
        name = normalize_project_name(_project_name(request))
        path = f"/{request.path_params['user']}/{request.path_params['index']}/+simple/{name}/"
    return RedirectResponse(_with_query(request, path), status_code=301)


async def refresh(request: Request) -> Response:
    """devpi's ``POST …/+simple/<project>/refresh``: refetch from upstream, then show the page."""
    index = index_of(request)
    name = normalize_project_name(_project_name(request))
    await services(request).pages.refresh(index, name)
    return RedirectResponse(f"/{index.fullname}/+simple/{name}/", status_code=302)


routes = [
    GuardedRoute("/{user}/{index}/+simple/{project}/refresh", refresh, POST=READ),
    GuardedRoute("/{user}/{index}/+simple/", project_list, GET=READ),
    GuardedRoute("/{user}/{index}/+simple", add_slash, GET=READ),
    GuardedRoute("/{user}/{index}/+simple/{project}/", project_page, GET=READ),
    GuardedRoute("/{user}/{index}/+simple/{project}", add_slash, GET=READ),
    GuardedRoute("/{user}/{index}/+at/{moment}/+simple/", project_list_as_of, GET=READ),
    GuardedRoute("/{user}/{index}/+at/{moment}/+simple/{project}/", project_page_as_of, GET=READ),
]
