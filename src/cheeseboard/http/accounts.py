"""The devpi-shaped management API: ``/`` (users), ``/<user>``, ``/<user>/<index>``.

Answers use devpi's envelope ``{"result", "type", "message"}`` and status codes
(docs/devpi-protocol.md §2), so devpi-client can drive it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from cheeseboard.core import acl
from cheeseboard.core.json_text import has_lone_surrogate
from cheeseboard.http import simple
from cheeseboard.http.access import (
    CREATE_INDEX,
    CREATE_USER,
    MANAGE_INDEX,
    MANAGE_USER,
    PUBLIC,
    READ,
    GuardedRoute,
)
from cheeseboard.http.state import index_of, reader_of, services
from cheeseboard.services.auth import ANONYMOUS, Identity, Unauthorized
from cheeseboard.services.errors import BadRequest, CheeseboardError
from cheeseboard.services.visibility import ReadAccess, Reader
from cheeseboard.store.records import IndexRecord


def envelope(
    status: int = 200, result: Any = None, type_: str | None = None, message: str | None = None
) -> JSONResponse:
    body: dict[str, Any] = {}
    if result is not None:
        body["result"] = result
        if type_:
            body["type"] = type_
    if message:
        body["message"] = message
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def wants_json(request: Request) -> bool:
    """devpi's JSON views answer only ``Accept: application/json``; others get simple pages."""
    return "application/json" in request.headers.get("accept", "")


# The JSON bodies of the API (user and index configs, login, tokens, push, yank) are a few hundred
# bytes; devpi's index config with custom_data stays far below this. Without a limit a client
# could make the server hold (and store in an index config) any amount of text.
MAX_JSON_BODY = 1024 * 1024


class BodyTooLarge(CheeseboardError):
    """Raised when a JSON request body is larger than MAX_JSON_BODY."""


async def limited_body(request: Request, limit: int, what: str = "request body") -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes:
    from Content-Length before reading, or while reading a chunked body (``what`` names it in
    the message)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise BodyTooLarge(f"{what} of {declared} bytes is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _not_a_json_number(value: str) -> float:
    """Python's json reads NaN, Infinity and 1e999 (as inf); JSON has none of them, and a stored
    one makes every later answer that holds it fail to serialize."""
    number = float(value)
    if not math.isfinite(number):
        raise BadRequest(f"request body is not valid JSON: {value[:20]} is not a JSON number")
    return number


async def json_body(request: Request, limit: int = MAX_JSON_BODY) -> Any:
    """The parsed JSON body ({} for none); 413 past ``limit`` bytes, 400 if it is not JSON or
    holds text that is not Unicode."""
    raw = await limited_body(request, limit)
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw, parse_constant=_not_a_json_number, parse_float=_not_a_json_number)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {str(exc)[:200]}") from exc
    except ValueError:
        # int()'s refusal of a number of more than 4300 digits, which json lets through.
        raise BadRequest("request body is not valid JSON: a number has too many digits") from None
    except RecursionError:
        raise BadRequest("request body is not valid JSON: nested too deeply") from None
    if has_lone_surrogate(raw, parsed):
        raise BadRequest("request body is not valid JSON: a string holds a lone UTF-16 surrogate")
    return parsed


async def _object_body(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


async def _reader(request: Request) -> Identity:
    """Who reads a user listing: bad or stale credentials read as anonymous, as in devpi (they
    only decide whether emails show)."""
    try:
        return await services(request).auth.identify(request.headers, action="read")
    except Unauthorized:
        return ANONYMOUS


def _visible_config(
    request: Request, record: IndexRecord, config: dict[str, Any], reader: Reader
) -> dict[str, Any]:
    """An index's config as ``reader`` sees it: bases they may not read are not there. Those
    who may change it (the owner, root) see it whole, so what they send back loses nothing."""
    scoped = isinstance(reader, Identity) and reader.token_indexes is not None
    user = ReadAccess.reads_as(reader, record)
    if not isinstance(config.get("bases"), list):
        return config
    if user in (acl.ROOT, record.user) and not scoped:  # a scoped token manages nothing
        return config
    hidden = services(request).reads.hidden_bases(reader, record)
    if hidden:
        config = {**config, "bases": [b for b in config["bases"] if str(b) not in hidden]}
    return config


def _readable_only(request: Request, view: dict[str, Any], viewer: Identity) -> dict[str, Any]:
    """A ``userconfig`` with only the indexes ``viewer`` may read (the others are not there)."""
    app = services(request)
    indexes = view.get("indexes")
    if isinstance(indexes, dict):
        owner = str(view.get("username", ""))
        shown: dict[str, Any] = {}
        for name, config in indexes.items():
            record = app.indexes.get(owner, name)
            if record is not None and app.reads.may_read(viewer, record):
                shown[name] = _visible_config(request, record, config, viewer)
        view["indexes"] = shown
    return view


async def list_users(request: Request) -> Response:
    viewer = await _reader(request)
    users = services(request).accounts.all_users(viewer)
    result = {name: _readable_only(request, view, viewer) for name, view in users.items()}
    return envelope(result=result, type_="list:userconfig")


async def user(request: Request) -> Response:
    app = services(request)
    name = request.path_params["user"]
    if request.method in ("GET", "HEAD"):
        found = app.accounts.get_user(name)
        viewer = await _reader(request)
        view = _readable_only(request, app.accounts.user_view(found, viewer), viewer)
        return envelope(result=view, type_="userconfig")
    identity = await app.auth.identify(request.headers)
    if request.method == "PUT":
        created = await app.accounts.create_user(identity, name, await _object_body(request))
        view = app.accounts.user_view(created, identity)
        return envelope(201, view, "userconfig", "user created")
    if request.method == "PATCH":
        body = await _object_body(request)
        password_changed = await app.accounts.modify_user(identity, name, body)
        record = app.auth.user(name)
        if password_changed and identity.user == name and record is not None:
            # devpi answers a password change with a fresh token (earlier ones are now dead).
            token = app.auth.issue_token(record)
            result = {"password": token, "expiration": app.auth.tokens.lifetime}
            return envelope(result=result, type_="userpassword", message="user updated")
        return envelope(message="user updated")
    await app.accounts.delete_user(identity, name, force="force" in request.query_params)
    return envelope(message=f"user {name!r} deleted")


async def index(request: Request) -> Response:
    app = services(request)
    user_name, name = request.path_params["user"], request.path_params["index"]
    if request.method in ("GET", "HEAD"):
        if not wants_json(request):
            # pip -i http://host/user/index works as with devpi: the index URL is a simple index.
            if not request.url.path.endswith("/"):
                index_of(request)  # 404 first: no redirect to "/x/../" for a made-up index
                return RedirectResponse(request.url.path + "/", status_code=301)
            return await simple.project_list(request)
        found = app.accounts.get_index(user_name, name)
        with_projects = "no_projects" not in request.query_params
        view = await app.accounts.index_view(found, with_projects)
        view = _visible_config(request, found, view, reader_of(request))
        return envelope(result=view, type_="indexconfig")
    identity = await app.auth.identify(request.headers)
    if request.method == "PUT":
        created = await app.accounts.create_index(
            identity, user_name, name, await _object_body(request)
        )
        return envelope(result=await app.accounts.index_view(created, False), type_="indexconfig")
    if request.method == "PATCH":
        patch = await json_body(request)
        if isinstance(patch, dict) and isinstance(patch.get("result"), dict):
            patch = patch["result"]  # devpi clients may send back the whole GET envelope
        if not isinstance(patch, dict | list) or (
            isinstance(patch, list) and not all(isinstance(item, str) for item in patch)
        ):
            raise BadRequest("PATCH body must be an object or a list of 'key=value' strings")
        changed = await app.accounts.patch_index(
            identity,
            user_name,
            name,
            patch,
            error_on_noop="error_on_noop" in request.query_params,
        )
        return envelope(result=await app.accounts.index_view(changed, False), type_="indexconfig")
    force = "force" in request.query_params
    await app.accounts.delete_index(identity, user_name, name, force=force)
    return envelope(201, message=f"index {user_name}/{name} deleted")


_USER = {"GET": PUBLIC, "PUT": CREATE_USER, "PATCH": MANAGE_USER, "DELETE": MANAGE_USER}
_INDEX = {"GET": READ, "PUT": CREATE_INDEX, "PATCH": MANAGE_INDEX, "DELETE": MANAGE_INDEX}
routes = [
    GuardedRoute("/", list_users, GET=PUBLIC),
    *(GuardedRoute(path, user, **_USER) for path in ("/{user}", "/{user}/")),
    *(GuardedRoute(path, index, **_INDEX) for path in ("/{user}/{index}", "/{user}/{index}/")),
]
