"""Blocks (issue 21, services/blocks.py): ``/+blocks`` server-wide (root), and
``/<user>/<index>/+blocks`` per index (readers list them; the owner or root change them).

``POST`` a JSON object (``project`` with an optional ``specifier`` or ``version``, ``filename``
or ``sha256``, and a ``reason``); ``DELETE …/+blocks/<id>`` removes one.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import MANAGE_INDEX, READ, ROOT_ONLY, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body
from cheeseboard.http.state import index_of, services
from cheeseboard.services.blocks import block_json
from cheeseboard.services.errors import NotFound
from cheeseboard.services.throttle import client_address
from cheeseboard.store.records import IndexRecord


def _scope(request: Request) -> IndexRecord | None:
    return index_of(request) if "index" in request.path_params else None


async def blocks(request: Request) -> Response:
    app = services(request)
    index = _scope(request)
    if request.method in ("GET", "HEAD"):
        listed = [block_json(block) for block in app.blocks.listed(index)]
        return envelope(result=listed, type_="blocks")
    identity = await app.auth.identify(request.headers)
    app.blocks.permit(identity, index)  # before reading the body
    added = await app.blocks.add(identity, index, await json_body(request), client_address.get())
    where = index.fullname if index is not None else "the whole server"
    return envelope(
        201, result=block_json(added), type_="block", message=f"block {added.id} on {where}"
    )


async def block(request: Request) -> Response:
    app = services(request)
    index = _scope(request)
    text: str = request.path_params["id"]
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise NotFound(f"no block {text[:20]!r}")
    identity = await app.auth.identify(request.headers)
    removed = await app.blocks.remove(identity, index, int(text), client_address.get())
    return envelope(
        result=block_json(removed), type_="block", message=f"block {removed.id} removed"
    )


routes = [
    GuardedRoute("/+blocks", blocks, GET=ROOT_ONLY, POST=ROOT_ONLY),
    GuardedRoute("/+blocks/{id}", block, DELETE=ROOT_ONLY),
    GuardedRoute("/{user}/{index}/+blocks", blocks, GET=READ, POST=MANAGE_INDEX),
    GuardedRoute("/{user}/{index}/+blocks/{id}", block, DELETE=MANAGE_INDEX),
]
