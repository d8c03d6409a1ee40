"""Counting HTTP requests for the metrics: count, latency and bytes by route class and status.

The route class (``page``, ``file``, ``upload``, ``api``, ``ui``, ``other``) comes from the route
Starlette matched (``scope["endpoint"]``), never from the raw path, so the label's values are
few whatever clients ask for. The hot path (http/hot.py) counts what it answers itself.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cheeseboard.core import metrics
from cheeseboard.http import docs, files, health, simple, toxresults, upload
from cheeseboard.http.ui import actions as web_actions
from cheeseboard.http.ui import audit as web_audit
from cheeseboard.http.ui import pages as web_pages
from cheeseboard.http.ui import static as web_static

_GROUPS: dict[str, list[BaseRoute]] = {
    "page": list(simple.routes),
    "file": list(files.routes),
    "upload": [*upload.routes, *toxresults.routes],
    "ui": [
        *web_static.routes,
        *web_actions.routes,
        *web_pages.routes,
        *web_pages.search_routes,
        *web_audit.routes,
        *docs.routes,
    ],
    "other": list(health.routes),
}


def _endpoint(route: BaseRoute) -> Any:
    return getattr(route, "endpoint", None) or getattr(route, "app", None)


def route_classes(groups: dict[str, list[BaseRoute]] = _GROUPS) -> dict[int, str]:
    """The route class of each grouped route's endpoint, by the endpoint's ``id``."""
    classes: dict[int, str] = {}
    for name, routes in groups.items():
        for route in routes:
            endpoint = _endpoint(route)
            if endpoint is not None:
                classes[id(endpoint)] = name
    return classes


class RequestMetrics:
    """ASGI middleware that counts every HTTP request ``app`` answers.

    A matched route outside the groups above is ``api``; no route (404, 405) is ``other``.
    Bytes are the body bytes sent, or the Content-Length of a file the server sends itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._classes = route_classes()

    def route_class(self, scope: Scope) -> str:
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return "other"
        return self._classes.get(id(endpoint), "api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        size = 0
        length = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, size, length
            kind = message["type"]
            if kind == "http.response.body":
                size += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-length":
                        length = int(value)
            elif kind == "http.response.pathsend":
                size += length
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            metrics.observe_request(
                self.route_class(scope), status or 500, time.perf_counter() - started, size
            )
