"""The stack floor: a bare ASGI app that does no work, for the benchmark's extra section.

Served by Granian exactly like cheeseboard (same interface, workers, event loop), it
answers every GET with 200 and a fixed body built at import time: under ``/file`` a
969-byte ``application/octet-stream`` body (the size of the bench's small wheel),
anywhere else a 518-byte ``application/vnd.pypi.simple.v1+json`` body (about the size
of cheeseboard's small page on the wire).  No routing beyond that, no headers read, no
compression: whatever req/s it reaches is the ceiling any ASGI app can reach on this
server stack and machine.  It also answers Granian's lifespan startup and shutdown.

With ``FLOOR_LARGE_FILE`` naming a file, ``/large`` answers with that file through Granian's
``pathsend``, as cheeseboard sends every stored file above 64 KiB: the stack's own throughput
and latency tail for the bench's 16 MiB wheel.

``granian --interface asgi benchmarks.floor_app:app`` from the repository root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FILE_PATH = "/file"
PAGE_PATH = "/page"
LARGE_PATH = "/large"
LARGE_FILE = os.environ.get("FLOOR_LARGE_FILE")
FILE_SIZE = 969
PAGE_SIZE = 518


def _page_body(size: int) -> bytes:
    """A PEP 691 project page of exactly ``size`` bytes (padded in a ``meta`` field)."""
    doc: dict[str, Any] = {
        "meta": {"api-version": "1.1", "_pad": ""},
        "name": "bench-small",
        "files": [
            {
                "filename": "bench_small-1.1.0-py3-none-any.whl",
                "url": "../../+f/0a1/bench_small-1.1.0-py3-none-any.whl",
                "hashes": {"sha256": "0" * 64},
                "requires-python": ">=3.8",
                "yanked": False,
            }
        ],
        "versions": ["1.1.0"],
    }
    raw = json.dumps(doc, separators=(",", ":")).encode()
    doc["meta"]["_pad"] = "x" * max(0, size - len(raw))
    return json.dumps(doc, separators=(",", ":")).encode()


FILE_BODY = bytes(i % 251 for i in range(FILE_SIZE))
PAGE_BODY = _page_body(PAGE_SIZE)


def _start(content_type: bytes, body: bytes) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ],
    }


_FILE_START = _start(b"application/octet-stream", FILE_BODY)
_PAGE_START = _start(b"application/vnd.pypi.simple.v1+json", PAGE_BODY)
_FILE_BODY_MSG: dict[str, Any] = {"type": "http.response.body", "body": FILE_BODY}
_PAGE_BODY_MSG: dict[str, Any] = {"type": "http.response.body", "body": PAGE_BODY}
_NOT_ALLOWED_START: dict[str, Any] = {
    "type": "http.response.start",
    "status": 405,
    "headers": [(b"content-length", b"0"), (b"allow", b"GET")],
}
_EMPTY_BODY_MSG: dict[str, Any] = {"type": "http.response.body", "body": b""}
_LARGE_START = (
    {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(os.path.getsize(LARGE_FILE)).encode()),
        ],
    }
    if LARGE_FILE
    else None
)
_LARGE_MSG: dict[str, Any] = {"type": "http.response.pathsend", "path": LARGE_FILE}


async def _lifespan(receive: Receive, send: Send) -> None:
    """Answer startup and shutdown; nothing to set up or tear down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """200 and a fixed body for every GET (the file under ``/file``, else the page)."""
    kind = scope["type"]
    if kind == "http":
        if scope["method"] not in ("GET", "HEAD"):
            await send(_NOT_ALLOWED_START)
            await send(_EMPTY_BODY_MSG)
        elif _LARGE_START is not None and scope["path"].startswith(LARGE_PATH):
            await send(_LARGE_START)
            await send(_LARGE_MSG)
        elif scope["path"].startswith(FILE_PATH):
            await send(_FILE_START)
            await send(_FILE_BODY_MSG)
        else:
            await send(_PAGE_START)
            await send(_PAGE_BODY_MSG)
    elif kind == "lifespan":
        await _lifespan(receive, send)
