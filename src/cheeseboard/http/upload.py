"""The legacy upload API: ``POST /<user>/<index>/`` multipart (reference standards.md §1.12).

Success is a plain 200 (twine accepts nothing else); uploads are never redirected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive

from cheeseboard.core.uploads import UploadError, parse_upload_form
from cheeseboard.http.access import PUSH, UPLOAD, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body
from cheeseboard.http.state import index_of, services
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.uploads import TooLarge, UploadRefused

_CHUNK = 1024 * 1024
_FORM_OVERHEAD = 1024 * 1024  # room for the metadata fields around the file


def _limited(receive: Receive, limit: int) -> Receive:
    """Count body bytes as they arrive; a body past ``limit`` is refused mid-stream."""
    total = 0

    async def counted() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise TooLarge(f"upload larger than the limit of {limit} bytes")
        return message

    return counted


async def _chunks(content: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await content.read(_CHUNK):
        yield chunk


async def push(request: Request) -> Response:
    """devpi's push: ``PUSH`` (or ``POST`` with JSON) of ``{name, version, targetindex}``."""
    app = services(request)
    index = index_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("push needs a JSON object")
    target = body.get("targetindex")
    if isinstance(target, str):
        # A scoped upload token may push only between indexes its scope covers: both of them.
        identity = await app.auth.identify(request.headers, "upload", index.fullname)
        await app.auth.identify(request.headers, "upload", target)
    else:
        identity = await app.auth.identify(request.headers)  # external: no scope covers it
    log = await app.push.push(identity, index, body)
    return envelope(result=log, type_="actionlog")


async def upload(request: Request) -> Response:
    if "application/json" in request.headers.get("content-type", ""):
        return await push(request)
    app = services(request)
    index = index_of(request)
    identity = await app.auth.identify(request.headers, "upload", index.fullname)
    app.uploads.check_permission(identity, index)  # 401/403 before reading the body
    limit = app.settings.max_upload_size + _FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    # ASCII digits only (str.isdigit() takes "²"), and short enough for int() (4300 digits).
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise TooLarge(f"upload of {declared} bytes is larger than the limit of {limit} bytes")
    request = Request(request.scope, _limited(request.receive, limit))
    form = await request.form(max_files=2, max_fields=1000)
    try:
        fields: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(key, []).append(value)
        try:
            parsed = parse_upload_form(fields, request.query_params.get(":action"))
        except UploadError as exc:
            raise UploadRefused(exc.message, exc.status) from exc
        if parsed.action in ("submit", "register"):
            return PlainTextResponse("OK")  # registration is implicit; poetry may send it
        content = form.get("content")
        if not isinstance(content, UploadFile) or not content.filename:
            raise BadRequest("no file in the 'content' field")
        if parsed.action == "doc_upload":
            result = await app.uploads.upload_docs(identity, index, parsed, _chunks(content))
        elif parsed.action == "file_upload":
            # devpi's upload form carries no digest; every other client must send one.
            from_devpi = request.headers.get("user-agent", "").startswith("devpi-client/")
            result = await app.uploads.upload(
                identity,
                index,
                parsed,
                content.filename,
                _chunks(content),
                digest_required=not from_devpi,
            )
        else:
            raise BadRequest(f"unsupported :action {parsed.action!r}")
    finally:
        await form.close()
    if result.stored:
        return PlainTextResponse(f"OK: stored {result.filename} on {index.fullname}")
    return PlainTextResponse(f"OK: identical {result.filename} already on {index.fullname}")


routes = [
    # A POST with a JSON body is a push (devpi-client's way), checked as PUSH.
    GuardedRoute("/{user}/{index}/", upload, POST=UPLOAD),
    GuardedRoute("/{user}/{index}", upload, POST=UPLOAD),
    GuardedRoute("/{user}/{index}/", push, PUSH=PUSH),
    GuardedRoute("/{user}/{index}", push, PUSH=PUSH),
]
