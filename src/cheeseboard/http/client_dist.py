"""The server's own client wheel (issue 23): ``/+client/`` lists it with its sha256 and the
install command, ``/+client/<wheel>`` serves it, for machines that reach this server but not PyPI.

The wheel is built from the running package (ops/client_wheel.py) on the first request, in a
thread, once per process; its bytes are the same in every worker, so the sha256 shown by one
matches what another serves.
"""

from __future__ import annotations

import asyncio
import html
import threading

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from cheeseboard.http.access import PUBLIC, GuardedRoute
from cheeseboard.http.responses import etag_matches
from cheeseboard.ops.client_wheel import ClientWheel, ClientWheelError, build_client_wheel
from cheeseboard.services.errors import NotFound

_lock = threading.Lock()
_built: list[ClientWheel] = []  # at most one: this process's wheel, once built


def _wheel_once() -> ClientWheel:
    with _lock:
        if not _built:
            _built.append(build_client_wheel())
        return _built[0]


async def _wheel() -> ClientWheel:
    try:
        return await asyncio.to_thread(_wheel_once)
    except ClientWheelError as exc:
        raise NotFound(f"no client wheel: {exc}") from None


async def listing(request: Request) -> Response:
    """A PEP 503-style page (pip's ``--find-links`` reads it too) with the install command."""
    wheel = await _wheel()
    base = str(request.base_url)
    name, digest = html.escape(wheel.filename), wheel.sha256
    command = html.escape(
        f"pip install --index-url {base}root/pypi/+simple/ {base}+client/{wheel.filename}"
    )
    body = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        "<title>cheeseboard client</title></head>\n<body>\n<h1>cheeseboard client</h1>\n"
        f'<p><a href="{name}#sha256={digest}">{name}</a> sha256: <code>{digest}</code></p>\n'
        f"<p>Install it with its dependencies from this server's mirror:</p>\n"
        f"<pre>{command}</pre>\n</body></html>\n"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


async def wheel_file(request: Request) -> Response:
    """The wheel itself; any other name is a 404 (names are compared, never used as paths)."""
    wheel = await _wheel()
    if request.path_params["filename"] != wheel.filename:
        raise NotFound(f"no such file; the client wheel is {wheel.filename}")
    etag = f'"{wheel.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return Response(wheel.data, media_type="application/octet-stream", headers=headers)


routes = [
    GuardedRoute("/+client/", listing, GET=PUBLIC),
    GuardedRoute("/+client/{filename}", wheel_file, GET=PUBLIC),
]
