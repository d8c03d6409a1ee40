"""A stage project's PEP 792 status (issue 21): ``GET`` it as a reader of the index, ``POST``
``{"status": ..., "reason": ...}`` to set it as the index owner or root."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import MANAGE_INDEX, READ, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body
from cheeseboard.http.state import index_of, services
from cheeseboard.services.project_status import parse_request
from cheeseboard.services.throttle import client_address


async def project_status(request: Request) -> Response:
    app = services(request)
    index = index_of(request)
    project: str = request.path_params["project"]
    if request.method in ("GET", "HEAD"):
        current = await app.project_status.get(index, project)
        return envelope(result=current.as_json(), type_="projectstatus")
    identity = await app.auth.identify(request.headers)
    app.project_status.permit(identity, index)  # before reading the body
    status, reason = parse_request(await json_body(request))
    changed = await app.project_status.set(
        identity, index, project, status, reason, client_address.get()
    )
    return envelope(
        result=changed.as_json(),
        type_="projectstatus",
        message=f"{changed.project} on {index.fullname} is {changed.status}",
    )


routes = [
    GuardedRoute("/{user}/{index}/{project}/+status", project_status, GET=READ, POST=MANAGE_INDEX),
]
