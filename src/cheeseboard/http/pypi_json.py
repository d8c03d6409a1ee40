"""PyPI's JSON API per index, at ``/<user>/<index>/+pypi/<name>/json`` (``+`` keeps it clear of
devpi's ``/<user>/<index>/<project>/<version>`` routes)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cheeseboard.core.names import is_valid_project_name, normalize_project_name
from cheeseboard.http import responses
from cheeseboard.http.access import READ, GuardedRoute
from cheeseboard.http.state import base_url, hidden_bases, index_of, services
from cheeseboard.services.errors import NotFound


async def project_json(request: Request) -> Response:
    index = index_of(request)
    name = request.path_params["project"]
    version = request.path_params.get("version")
    if not is_valid_project_name(name):  # never redirect junk (``%2e%2e%2f…``) to a "name"
        raise NotFound(f"no project {name[:100]!r}: not a valid project name")
    normalized = normalize_project_name(name)
    if name != normalized:
        tail = f"{version}/json" if version else "json"
        return RedirectResponse(f"/{index.fullname}/+pypi/{normalized}/{tail}", status_code=301)
    app = services(request)
    cached, rendered = await app.pypi_json.document(
        index, normalized, version, base_url(request), hidden_bases(request, index)
    )
    max_age = (
        app.settings.mirror_page_max_age if index.type == "mirror" else app.settings.page_max_age
    )
    headers = {
        "ETag": rendered.etag,
        "Last-Modified": cached.last_modified,
        "Cache-Control": f"max-age={max_age}, public",
        "X-PyPI-Last-Serial": str(cached.page.last_serial),
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and responses.etag_matches(if_none_match, rendered.etag):
        return Response(status_code=304, headers=headers)
    body = rendered.body if request.method != "HEAD" else b""
    headers["Content-Length"] = str(len(rendered.body))
    return Response(body, headers=headers, media_type="application/json")


routes = [
    GuardedRoute("/{user}/{index}/+pypi/{project}/json", project_json, GET=READ),
    GuardedRoute("/{user}/{index}/+pypi/{project}/json/", project_json, GET=READ),
    GuardedRoute("/{user}/{index}/+pypi/{project}/{version}/json", project_json, GET=READ),
    GuardedRoute("/{user}/{index}/+pypi/{project}/{version}/json/", project_json, GET=READ),
]
