"""Uploaded documentation at ``/<user>/<index>/<project>/<version>/+doc/<path>``.

Docs are HTML anyone with upload rights wrote, so every page goes out with a CSP sandbox that
withholds ``allow-same-origin``: its scripts run in an opaque origin and can neither read the web
UI's cookies nor act on its forms. ``<version>`` may be ``+latest`` or ``+stable``. Responses are
validated by the doc zip's sha256 (re-uploads replace the zip, and with it the ETag).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from cheeseboard.core.names import is_valid_project_name
from cheeseboard.http.access import READ, GuardedRoute
from cheeseboard.http.responses import etag_matches
from cheeseboard.http.state import index_of, services
from cheeseboard.http.ui import docs
from cheeseboard.services.errors import BadRequest, NotFound

CONTENT_SECURITY_POLICY = "sandbox allow-scripts allow-popups allow-forms"
CACHE_VERSIONED = "public, max-age=60"
CACHE_MOVING = "no-cache"  # +latest / +stable follow new uploads: always revalidate
# Slashes, backslashes and NUL arrive decoded in the path; their escapes are never legitimate.
_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c|00)", re.IGNORECASE)


def _project(request: Request) -> str:
    name: str = request.path_params["project"]
    if name.startswith("+") or not is_valid_project_name(name):
        raise NotFound(f"no route {request.url.path}")  # "+..." segments are ours
    return name


def _headers(etag: str, version: str) -> dict[str, str]:
    return {
        "ETag": etag,
        "Cache-Control": CACHE_MOVING if version.startswith("+") else CACHE_VERSIONED,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
    }


async def doc_page(request: Request) -> Response:
    """One file of a release's documentation zip (``index.html`` for directories)."""
    app = services(request)
    index = index_of(request)
    project = _project(request)
    version: str = request.path_params["version"]
    raw_path = request.scope.get("raw_path") or b""
    if _ENCODED_SEPARATOR.search(raw_path):
        raise BadRequest("encoded '/', '\\' or NUL in a documentation path")
    name = docs.check_doc_path(request.path_params["path"])
    record = await app.docs.find_zip(index, project, version)
    what = f"{record.filename} on {index.fullname}"
    opened = await app.files.open_complete(index, record)  # from the bucket, on S3
    headers = _headers(f'"doc-{opened.sha256}"', version)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and etag_matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    table = docs.cached_doc_table(opened.sha256)
    if table is None:
        table = await asyncio.to_thread(docs.doc_table, opened.path, opened.sha256)
    found = docs.find_member(table, name, what)
    if isinstance(found, docs.DocRedirect):
        return RedirectResponse(found.location, status_code=307)
    docs.check_member(found)
    headers["Content-Type"] = docs.content_type(found.name)
    headers["Content-Length"] = str(found.file_size)
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers)
    if found.file_size <= docs.INLINE_LIMIT:
        body = await asyncio.to_thread(docs.read_member, opened.path, found)
        return Response(body, headers=headers)
    reader = await asyncio.to_thread(docs.MemberReader, opened.path, found)
    return StreamingResponse(_stream(reader), headers=headers)


async def _stream(reader: docs.MemberReader) -> AsyncIterator[bytes]:
    """A large member, inflated chunk by chunk off the event loop."""
    try:
        while chunk := await asyncio.to_thread(reader.read_chunk):
            yield chunk
    finally:
        reader.close()  # also when the client went away mid-stream


async def doc_root(request: Request) -> Response:
    """``+doc`` without its slash: relative links in index.html need the directory URL."""
    index_of(request)
    _project(request)
    return RedirectResponse("+doc/", status_code=308)


routes = [
    GuardedRoute("/{user}/{index}/{project}/{version}/+doc", doc_root, GET=READ),
    GuardedRoute("/{user}/{index}/{project}/{version}/+doc/{path:path}", doc_page, GET=READ),
]
