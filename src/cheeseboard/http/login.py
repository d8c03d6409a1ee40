"""``POST /+login``: trade a password for a token (devpi's ``proxyauth`` answer)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import SIGN_IN, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body
from cheeseboard.http.state import services
from cheeseboard.services.errors import BadRequest


async def login(request: Request) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        raise BadRequest('login needs a JSON body {"user": ..., "password": ...}')
    auth = services(request).auth
    token = await auth.login(body["user"], str(body.get("password", "")))
    result = {"password": token, "expiration": auth.tokens.lifetime}
    return envelope(result=result, type_="proxyauth", message="login successful")


routes = [GuardedRoute("/+login", login, POST=SIGN_IN)]
