"""The legacy upload API: ``POST /<user>/<index>/`` multipart (docs/standards.md §1.12).

Success is a plain 200 (twine accepts nothing else); uploads are never redirected.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive

from cheeseboard.core import metrics
from cheeseboard.core.uploads import UploadError, parse_upload_form
from cheeseboard.http.access import PUSH, UPLOAD, GuardedRoute
from cheeseboard.http.accounts import envelope, json_body
from cheeseboard.http.state import index_of, services
from cheeseboard.services.auth import Unauthorized
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.uploads import TooLarge, refused

_CHUNK = 1024 * 1024
# The non-file fields (name, version, digests, README, classifiers, …) are held in memory, so
# each is bounded and so is their sum: 1000 fields of just under a MiB each made a 400 MB body
# take 505 MB of a worker's memory (issue 17). A long README is a few hundred KB.
MAX_FIELD_BYTES = 1024 * 1024
MAX_FIELDS_BYTES = 8 * 1024 * 1024
_MAX_FIELDS = 1000
_FORM_OVERHEAD = MAX_FIELDS_BYTES + 1024 * 1024  # the fields and the multipart framing
_MAX_SHOWN = 100  # characters of a field name quoted in a refusal


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


class _UploadFormParser(MultiPartParser):
    """Starlette's multipart parser, refusing a non-file field past MAX_FIELD_BYTES or all of
    them past MAX_FIELDS_BYTES with a 413 that names the field, as the bytes arrive."""

    def __init__(self, headers: Headers, stream: AsyncGenerator[bytes, None]) -> None:
        super().__init__(
            headers, stream, max_files=2, max_fields=_MAX_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
        self._field_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part  # set by the parser for each part, file or not
        if part.file is None:
            name = repr(part.field_name[:_MAX_SHOWN])
            if len(part.data) + end - start > MAX_FIELD_BYTES:
                raise TooLarge(f"form field {name} is larger than {MAX_FIELD_BYTES} bytes")
            self._field_bytes += end - start
            if self._field_bytes > MAX_FIELDS_BYTES:
                raise TooLarge(
                    f"the form's fields are larger than {MAX_FIELDS_BYTES} bytes in total "
                    f"(at field {name}); only the file may be large"
                )
        super().on_part_data(data, start, end)


def _is_multipart(request: Request) -> bool:
    content_type, _ = parse_options_header(request.headers.get("content-type"))
    return content_type == b"multipart/form-data"


async def _upload_form(request: Request) -> FormData:
    """The form of an upload, its non-file fields bounded (the file is spooled to disk).

    Anything but multipart (a urlencoded registration) carries no file: Starlette parses it,
    and the handler bounds its whole body by MAX_FIELDS_BYTES.
    """
    if not _is_multipart(request):
        return await request.form(
            max_files=0, max_fields=_MAX_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
    try:
        return await _UploadFormParser(request.headers, request.stream()).parse()
    except MultiPartException as exc:
        raise BadRequest(f"invalid upload form: {exc.message}") from exc


async def _chunks(content: UploadFile, sizes: list[int] | None = None) -> AsyncIterator[bytes]:
    while chunk := await content.read(_CHUNK):
        if sizes is not None:
            sizes.append(len(chunk))
        yield chunk


async def push(request: Request) -> Response:
    """devpi's push: ``PUSH`` (or ``POST`` with JSON) of ``{name, version, targetindex}``."""
    app = services(request)
    index = index_of(request)
    # Credentials first (wrong ones: 401), and no body is read for an anonymous caller.
    if (await app.auth.identify(request.headers, "read")).anonymous:
        raise Unauthorized(f"pushing from {index.fullname} needs authentication")
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
    # Only a multipart body carries a file; any other is fields alone.
    limit = MAX_FIELDS_BYTES
    if _is_multipart(request):
        limit = app.settings.max_upload_size + _FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    # ASCII digits only (str.isdigit() takes "²"), and short enough for int() (4300 digits).
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise TooLarge(f"upload of {declared} bytes is larger than the limit of {limit} bytes")
    request = Request(request.scope, _limited(request.receive, limit))
    form = await _upload_form(request)
    try:
        fields: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(key, []).append(value)
        try:
            parsed = parse_upload_form(fields, request.query_params.get(":action"))
        except UploadError as exc:
            raise refused(exc) from exc
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
            sizes: list[int] = []
            result = await app.uploads.upload(
                identity,
                index,
                parsed,
                content.filename,
                _chunks(content, sizes),
                digest_required=not from_devpi,
            )
            metrics.count("uploads_total")
            metrics.count("upload_bytes_total", sum(sizes))
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
