"""``/<user>/+tokens``: create (POST), list (GET) and revoke (DELETE ``/<id>``) scoped tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import MANAGE_USER, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body
from cheeseboard.http.state import services
from cheeseboard.services.errors import BadRequest


async def tokens(request: Request) -> Response:
    app = services(request)
    user = request.path_params["user"]
    identity = await app.auth.identify(request.headers)
    if request.method == "POST":
        body = await json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        created = await app.tokens.create(identity, user, body)
        return envelope(201, created, "token", "token created; it is shown only once")
    return envelope(result=app.tokens.list(identity, user), type_="list:token")


async def token(request: Request) -> Response:
    app = services(request)
    user, token_id = request.path_params["user"], request.path_params["token_id"]
    identity = await app.auth.identify(request.headers)
    await app.tokens.revoke(identity, user, token_id)
    return envelope(message=f"token {token_id} revoked")


routes = [
    GuardedRoute("/{user}/+tokens", tokens, GET=MANAGE_USER, POST=MANAGE_USER),
    GuardedRoute("/{user}/+tokens/{token_id}", token, DELETE=MANAGE_USER),
]
