"""Tox results at devpi's URLs: ``devpi test`` POSTs one to the release file's ``+f`` URL and
gets its ``toxresultpath``; each is then served (as JSON) at that path, next to the file."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import TOXRESULT, GuardedRoute
from cheeseboard.http.accounts import envelope, limited_body
from cheeseboard.http.state import index_of, services
from cheeseboard.services import toxresults


async def _body(request: Request) -> bytes:
    """The body, refused (413) once it is known to be larger than a result may be."""
    return await limited_body(request, toxresults.MAX_SIZE, "tox result")


def _hash_prefix(request: Request) -> str:
    return str(request.path_params["h3"]) + str(request.path_params["h13"])


async def post_result(request: Request) -> Response:
    """Attach the posted JSON to the release file the URL names (docs/devpi-protocol.md §2)."""
    app = services(request)
    index = index_of(request)
    record = await app.toxresults.release_file(
        index, request.path_params["filename"], _hash_prefix(request)
    )
    identity = await app.auth.identify(request.headers, "upload", index.fullname)
    result = await app.toxresults.store(identity, index, record, await _body(request))
    path = toxresults.result_path(index, record, result)
    return envelope(result=f"{path}#sha256={result.sha256}", type_="toxresultpath")


async def result(request: Request) -> Response:
    """One stored result, as posted (files.py hands over the ``+f`` names that are results)."""
    index = index_of(request)
    found = await services(request).toxresults.find(
        index, request.path_params["filename"], _hash_prefix(request)
    )
    return Response(
        found.data.encode("utf-8"),
        media_type="application/json",
        headers={"Cache-Control": "max-age=3600", "ETag": f'"{found.sha256}"'},
    )


routes = [
    GuardedRoute("/{user}/{index}/+f/{h3}/{h13}/{filename}", post_result, POST=TOXRESULT),
]
