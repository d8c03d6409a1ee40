"""devpi protocol conventions: ``X-Devpi-*`` headers on every response, ``/+api``, ``/+status``.

devpi-client reads ``/+api`` to find the login, index, simple and upload URLs and the features it
may use (docs/devpi-protocol.md §1 and §2); it warns when ``X-Devpi-Api-Version`` is missing.
"""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cheeseboard import __version__
from cheeseboard.http.access import PUBLIC, READ, GuardedRoute
from cheeseboard.http.accounts import envelope
from cheeseboard.http.state import AppServices, base_url, services
from cheeseboard.services.auth import Forbidden, Unauthorized
from cheeseboard.services.errors import NotFound

FEATURES = ["server-keyvalue-parsing", "push-no-docs", "push-only-docs", "push-register-project"]


def devpi_headers(app: AppServices) -> list[tuple[bytes, bytes]]:
    """devpi's identification headers, as of the current serial (http/hot.py sends them too)."""
    uuid = app.server_uuid.encode()
    return [
        (b"x-devpi-api-version", b"2"),
        (b"x-devpi-server-version", __version__.encode()),
        (b"x-devpi-uuid", uuid),
        (b"x-devpi-master-uuid", uuid),
        (b"x-devpi-primary-uuid", uuid),
        (b"x-devpi-serial", str(app.changes.serial).encode()),
    ]


class DevpiHeaders:
    """ASGI middleware adding devpi's identification headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = getattr(scope["app"].state, "services", None)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and state is not None:
                message["headers"] = [*message.get("headers", ()), *devpi_headers(state)]
            await send(message)

        await self.app(scope, receive, with_headers)


async def api(request: Request) -> Response:
    """``apiconfig`` for the server, a user or an index (docs/devpi-protocol.md §2)."""
    app = services(request)
    root = base_url(request)
    try:
        identity = await app.auth.identify(request.headers, "read")
        authstatus = ["ok", identity.user, []] if identity.user else ["noauth", "", []]
    except Unauthorized:
        authstatus = ["nouser", "", []]
    result: dict[str, object] = {
        "login": root + "+login",
        "authstatus": authstatus,
        "features": FEATURES,
    }
    user = request.path_params.get("user")
    if user is not None and app.auth.user(user) is None:
        raise NotFound(f"no user {user!r}")
    if "index" in request.path_params:
        index = app.indexes.get(user or "", request.path_params["index"])
        if index is None:
            raise NotFound(f"no index {user}/{request.path_params['index']}")
        result["index"] = f"{root}{index.fullname}"
        result["simpleindex"] = f"{root}{index.fullname}/+simple/"
        if index.type == "stage":
            result["pypisubmit"] = f"{root}{index.fullname}/"
    return envelope(result=result, type_="apiconfig")


# Facts about the host (where the data lives, which process serves, what it listens on) that
# only help someone probing the machine: shown to root alone (issue 17).
_HOST_DETAILS = ("serverdir", "host", "port", "pid")


async def _is_root(request: Request) -> bool:
    """Whether the request carries root's valid credentials (wrong ones count as anonymous:
    the status page is public, it just shows less)."""
    try:
        identity = await services(request).auth.identify(request.headers)
    except (Unauthorized, Forbidden):
        return False
    return identity.user == "root"


async def status(request: Request) -> Response:
    """devpi's ``/+status``; the host details only for root."""
    app = services(request)
    serial = app.changes.serial
    result = {
        "serverdir": str(app.settings.datadir),
        "uuid": app.server_uuid,
        "versioninfo": {"cheeseboard": __version__},  # devpi-client iterates .items()
        "host": app.settings.host,
        "port": app.settings.port,
        "outside-url": app.settings.outside_url,
        "serial": serial,
        "last-commit-timestamp": None,
        "event-serial": serial,
        "event-serial-timestamp": None,
        "event-serial-in-sync-at": None,
        "role": "MASTER",
        "polling_replicas": {},
        "metrics": [],
        "pid": os.getpid(),
    }
    if not await _is_root(request):
        for key in _HOST_DETAILS:
            del result[key]
    return envelope(result=result, type_="status")


routes = [
    GuardedRoute("/+api", api, GET=PUBLIC),
    GuardedRoute("/+status", status, GET=PUBLIC),
    GuardedRoute("/{user}/+api", api, GET=PUBLIC),
    GuardedRoute("/{user}/{index}/+api", api, GET=READ),
]
