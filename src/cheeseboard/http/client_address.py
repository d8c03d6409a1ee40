"""Makes the client's address known to the services (failed sign-ins are counted per address)
without passing the request down every call."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from cheeseboard.services.throttle import client_address


class ClientAddress:
    """ASGI middleware setting ``client_address`` for the request's task."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        token = client_address.set(client[0] if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            client_address.reset(token)
