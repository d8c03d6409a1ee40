"""Local groups (services/groups.py), root only: ``GET /+groups`` lists them,
``GET|PUT|DELETE /+groups/<name>`` shows, creates (or sets the ``description`` of) and deletes
one, ``PATCH /+groups/<name>`` with ``{"add": [users], "remove": [users]}`` changes its members.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import ROOT_ONLY, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body
from cheeseboard.http.state import services
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.groups import group_json

MAX_GROUP_BODY = 128 * 1024
"""A PATCH of MAX_CHANGES user names of 64 characters fits; nothing a group needs is larger."""


async def groups(request: Request) -> Response:
    app = services(request)
    identity = await app.auth.identify(request.headers)
    listed = await app.groups.list(identity)
    return envelope(result={row.name: group_json(row) for row in listed}, type_="groups")


async def group(request: Request) -> Response:
    app = services(request)
    name: str = request.path_params["name"]
    identity = await app.auth.identify(request.headers)
    if request.method in ("GET", "HEAD"):
        return envelope(result=group_json(await app.groups.get(identity, name)), type_="group")
    if request.method == "DELETE":
        await app.groups.delete(identity, name)
        return envelope(message=f"group {name} deleted")
    body = await json_body(request, MAX_GROUP_BODY)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if request.method == "PUT":
        row = await app.groups.create(identity, name, body)
        return envelope(201, result=group_json(row), type_="group", message=f"group {name} saved")
    row = await app.groups.change_members(identity, name, body)
    return envelope(result=group_json(row), type_="group", message=f"members of {name} changed")


routes = [
    GuardedRoute("/+groups", groups, GET=ROOT_ONLY),
    GuardedRoute(
        "/+groups/{name}", group, GET=ROOT_ONLY, PUT=ROOT_ONLY, PATCH=ROOT_ONLY, DELETE=ROOT_ONLY
    ),
]
