"""Responses with the HTTP hygiene of docs/standards.md §1.14: validators, 304s, gzip, ranges.

Files go out through the ASGI ``pathsend`` extension when the server offers it, so the server sends
the bytes and Python only writes the headers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cheeseboard.core.negotiation import CONTENT_TYPES, Representation
from cheeseboard.core.ranges import ByteRange, Unsatisfiable, parse_range
from cheeseboard.services.downloads import DownloadFailed
from cheeseboard.services.pages import CachedPage, Rendered

log = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=365000000, immutable"
_CHUNK = 256 * 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """gzip is acceptable if listed with q > 0, or if unlisted and ``*`` has q > 0 (RFC 9110)."""
    qualities: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, *params = (field.strip() for field in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding:
            qualities[coding.lower()] = quality
    gzip_q = qualities.get("gzip", qualities.get("x-gzip", qualities.get("*", 0.0)))
    return gzip_q > 0


def etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or etag in candidates or f"W/{etag}" in candidates


def _not_modified_since(request: Request, last_modified: str) -> bool:
    since = request.headers.get("if-modified-since")
    if not since:
        return False
    try:
        return parsedate_to_datetime(since) >= parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False


def page_headers(
    cached: CachedPage,
    rendered: Rendered,
    max_age: int,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers a page's 200 and 304 answers share (validators, caching, ``Vary``)."""
    headers = {
        "ETag": rendered.etag,
        "Last-Modified": cached.last_modified,
        "Cache-Control": f"max-age={max_age}, public",
        "Vary": "Accept, Accept-Encoding",
        "X-PyPI-Last-Serial": str(cached.page.last_serial),
    }
    if cached.stale_reason:
        headers["X-Cheeseboard-Stale"] = "upstream unavailable; serving cached page"
    if extra_headers:
        headers.update(extra_headers)
    return headers


def body_headers(
    rendered: Rendered, representation: Representation, gzipped: bool
) -> dict[str, str]:
    """The headers only a 200 with the page's body has."""
    headers = {"Content-Length": str(len(rendered.body))}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = CONTENT_TYPES[representation]
    return headers


def page_response(
    request: Request,
    cached: CachedPage,
    representation: Representation,
    max_age: int,
    extra_headers: Mapping[str, str] | None = None,
) -> Response:
    """A simple page with strong ETag, Last-Modified, Cache-Control, gzip and 304 handling.

    http/hot.py answers the same requests for cached pages from the same two header functions.
    """
    gzipped = accepts_gzip(request.headers.get("accept-encoding", "")) and cached.can_gzip(
        representation
    )
    rendered = cached.render(representation, gzipped)
    headers = page_headers(cached, rendered, max_age, extra_headers)
    if_none_match = request.headers.get("if-none-match")
    if (if_none_match and etag_matches(if_none_match, rendered.etag)) or (
        if_none_match is None and _not_modified_since(request, cached.last_modified)
    ):
        return Response(status_code=304, headers=headers)
    return Response(
        rendered.body if request.method != "HEAD" else b"",
        headers={**headers, **body_headers(rendered, representation, gzipped)},
    )


def file_headers(sha256: str, size: int, mtime: float) -> dict[str, str]:
    return {
        "ETag": f'"{sha256}"',
        "Last-Modified": formatdate(mtime, usegmt=True),
        "Cache-Control": IMMUTABLE,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }


class BlobResponse(Response):
    """A stored file: HEAD, Range (with If-Range), conditional GET; never Content-Encoding."""

    def __init__(self, request: Request, path: Path, sha256: str, size: int) -> None:
        super().__init__(status_code=200)
        self._path = path
        self._method = request.method
        self._range: ByteRange | None = None
        stat = os.stat(path)
        headers = file_headers(sha256, size, stat.st_mtime)
        etag = headers["ETag"]
        if_none_match = request.headers.get("if-none-match")
        if if_none_match and etag_matches(if_none_match, etag):
            self.status_code = 304
            self._set_headers(headers)
            return
        if_range = request.headers.get("if-range")
        if if_range is None or if_range.strip() in (etag, headers["Last-Modified"]):
            try:
                self._range = parse_range(request.headers.get("range"), size)
            except Unsatisfiable:
                self.status_code = 416
                self._set_headers({**headers, "Content-Range": f"bytes */{size}"}, length=0)
                return
        if self._range is not None:
            self.status_code = 206
            headers["Content-Range"] = self._range.content_range()
            self._set_headers(headers, length=self._range.size)
        else:
            self._set_headers(headers, length=size)

    def _set_headers(self, headers: Mapping[str, str], length: int | None = None) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if length is not None:
            raw.append((b"content-length", str(length).encode()))
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self._method == "HEAD" or self.status_code in (304, 416):
            await send({"type": "http.response.body", "body": b""})
            return
        if self._range is None and "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": str(self._path)})
            return
        start = self._range.start if self._range else 0
        remaining = self._range.size if self._range else os.stat(self._path).st_size
        with open(self._path, "rb") as handle:
            handle.seek(start)
            while remaining > 0:
                chunk = handle.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
        if remaining > 0:
            raise OSError(f"{self._path} is shorter than expected")


class FollowResponse(Response):
    """A file still arriving from upstream, sent as it is written (see services.downloads)."""

    def __init__(
        self, request: Request, chunks: AsyncIterator[bytes], size: int | None, sha256: str | None
    ) -> None:
        super().__init__(status_code=200)
        self._chunks = chunks
        self._method = request.method
        headers = {
            "Cache-Control": IMMUTABLE,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            # The stored blob's mtime (its Last-Modified from then on) is the end of this transfer.
            "Last-Modified": formatdate(time.time(), usegmt=True),
        }
        if sha256:
            headers["ETag"] = f'"{sha256}"'
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if size is not None:
            raw.append((b"content-length", str(size).encode()))
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self._method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except DownloadFailed as exc:
            # Headers are out; the only honest signal left is an incomplete body. Returning
            # without the final message makes the server drop the connection.
            log.warning("cut a download short: %s", exc.reason)
            return
        await send({"type": "http.response.body", "body": b""})
