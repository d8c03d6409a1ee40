"""Projects and versions of an index as devpi's JSON (``projectconfig``, ``versiondata``), their
removal (``?force`` on non-volatile indexes), and yanking a release (PEP 592)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http import simple
from cheeseboard.http.access import READ, REMOVE, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body, wants_json
from cheeseboard.http.state import base_url, hidden_bases, index_of, services
from cheeseboard.services.errors import BadRequest, NotFound


def _project(request: Request) -> str:
    name: str = request.path_params["project"]
    if name.startswith("+"):
        raise NotFound(f"no route {request.url.path}")  # "+..." segments are ours, not projects
    return name


async def project(request: Request) -> Response:
    app = services(request)
    index = index_of(request)
    name = _project(request)
    if request.method in ("GET", "HEAD"):
        if not wants_json(request):
            return await simple.project_page(request)  # installers given the index URL itself
        config = await app.releases.project_config(
            index,
            name,
            base_url(request),
            "ignore_bases" in request.query_params,
            hidden_bases(request, index),  # bases the caller may not read: as if not there
        )
        return envelope(result=config, type_="projectconfig")
    identity = await app.auth.identify(request.headers)
    await app.releases.delete_project(identity, index, name, "force" in request.query_params)
    return envelope(message=f"project {name} deleted from stage {index.fullname}")


async def version(request: Request) -> Response:
    app = services(request)
    index = index_of(request)
    name, number = _project(request), request.path_params["version"]
    if request.method in ("GET", "HEAD"):
        data = await app.releases.version_data(index, name, number, base_url(request))
        return envelope(result=data, type_="versiondata")
    identity = await app.auth.identify(request.headers)
    if request.method == "PATCH":
        app.releases.permit(identity, index, f"yank {name}")  # before reading the body
        body = await json_body(request)
        yanked = body.get("yanked") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(yanked, bool | str):
            raise BadRequest('PATCH a version with {"yanked": true | false | "reason"}')
        reason = None if yanked is False else ("" if yanked is True else yanked)
        await app.releases.yank(identity, index, name, number, reason)
        what = "un-yanked" if reason is None else "yanked"
        return envelope(message=f"{name} {number} {what} on {index.fullname}")
    force = "force" in request.query_params
    await app.releases.delete_version(identity, index, name, number, force)
    return envelope(message=f"{name} {number} deleted from {index.fullname}")


async def release_file(request: Request) -> Response:
    app = services(request)
    index = index_of(request)
    record = await app.files.lookup(index, request.path_params["filename"])
    prefix = request.path_params["h3"] + request.path_params["h13"]
    if not (record.sha256 or "").startswith(prefix):
        raise NotFound(f"no file {record.filename!r} with hash prefix {prefix}")
    identity = await app.auth.identify(request.headers)
    await app.releases.delete_file(identity, index, record, "force" in request.query_params)
    return envelope(message=f"package {record.filename!r} deleted")


_VERSION = {"GET": READ, "DELETE": REMOVE, "PATCH": REMOVE}
routes = [
    GuardedRoute("/{user}/{index}/+f/{h3}/{h13}/{filename}", release_file, DELETE=REMOVE),
    GuardedRoute("/{user}/{index}/{project}", project, GET=READ, DELETE=REMOVE),
    GuardedRoute("/{user}/{index}/{project}/", project, GET=READ, DELETE=REMOVE),
    GuardedRoute("/{user}/{index}/{project}/{version}", version, **_VERSION),
    GuardedRoute("/{user}/{index}/{project}/{version}/", version, **_VERSION),
]
