"""Trusted publishing over HTTP.

``/<user>/<index>/+publishers``: list (GET) and register (POST) an index's trusted publishers;
``DELETE /<user>/<index>/+publishers/<id>`` removes one (the index's owner and root).

The token exchange speaks PyPI's API (warehouse/oidc/views.py), at PyPI's paths, because uv and
``pypa/gh-action-pypi-publish`` derive them from the upload URL's origin
(``<origin>/_/oidc/audience``, ``<origin>/_/oidc/mint-token``), and at our own ``/+oidc/...``:
``GET audience`` answers ``{"audience": ...}``; ``POST mint-token`` takes ``{"token": <ID token>}``
and answers ``{"success": true, "token": ..., "expires": ...}`` or 422 with
``{"message": "Token request failed", "errors": [{"code": ..., "description": ...}]}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cheeseboard.http.access import MANAGE_INDEX, PUBLIC, GuardedRoute
from cheeseboard.http.accounts import BodyTooLarge, envelope, json_body
from cheeseboard.http.state import services
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.id_tokens import MAX_TOKEN_CHARS, TokenRequestFailed

MAX_MINT_BODY = MAX_TOKEN_CHARS + 1024
"""The mint request is the token and a little JSON around it."""


async def publishers(request: Request) -> Response:
    app = services(request)
    user, index = request.path_params["user"], request.path_params["index"]
    identity = await app.auth.identify(request.headers)
    if request.method == "POST":
        body = await json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        created = await app.publishers.add(identity, user, index, body)
        return envelope(201, created, "publisher", f"publisher {created['id']} added")
    listed = await app.publishers.list(identity, user, index)
    return envelope(result=listed, type_="list:publisher")


async def publisher(request: Request) -> Response:
    app = services(request)
    params = request.path_params
    identity = await app.auth.identify(request.headers)
    await app.publishers.remove(identity, params["user"], params["index"], params["id"])
    return envelope(message=f"publisher {params['id']} removed")


async def audience(request: Request) -> Response:
    return JSONResponse({"audience": services(request).publishers.audience})


def _failed(error: TokenRequestFailed) -> JSONResponse:
    body = {
        "message": "Token request failed",
        "errors": [{"code": error.code, "description": error.description}],
    }
    return JSONResponse(body, status_code=error.status, headers={"Cache-Control": "no-store"})


async def mint_token(request: Request) -> Response:
    try:
        try:
            body = await json_body(request, MAX_MINT_BODY)
        except (BadRequest, BodyTooLarge) as exc:
            raise TokenRequestFailed("invalid-payload", str(exc)) from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise TokenRequestFailed("invalid-payload", 'the body is {"token": "<ID token>"}')
        index = body.get("index")
        if index is not None and not isinstance(index, str):
            raise TokenRequestFailed("invalid-payload", "'index' is a user/index name")
        minted = await services(request).publishers.mint(token, index)
    except TokenRequestFailed as exc:
        return _failed(exc)
    return JSONResponse(minted, headers={"Cache-Control": "no-store"})


routes = [
    GuardedRoute("/_/oidc/audience", audience, GET=PUBLIC),
    GuardedRoute("/_/oidc/mint-token", mint_token, POST=PUBLIC),
    GuardedRoute("/_/oidc/github/mint-token", mint_token, POST=PUBLIC),  # PyPI's older path
    GuardedRoute("/+oidc/audience", audience, GET=PUBLIC),
    GuardedRoute("/+oidc/mint-token", mint_token, POST=PUBLIC),
    GuardedRoute("/{user}/{index}/+publishers", publishers, GET=MANAGE_INDEX, POST=MANAGE_INDEX),
    GuardedRoute("/{user}/{index}/+publishers/{id}", publisher, DELETE=MANAGE_INDEX),
]
