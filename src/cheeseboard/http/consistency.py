"""Read-your-writes across worker processes: every request starts from the latest committed state.

Each worker keeps users, indexes and pages in memory. Before any request is handled, the worker
applies the changes other workers committed since it last looked; when nothing changed that is a
single memory read (services.changes), so it costs nothing on the hot path.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class CatchUp:
    """ASGI middleware applying other workers' committed changes before each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            services = getattr(scope["app"].state, "services", None)
            if services is not None and services.changes.behind():
                await services.changes.catch_up()
        await self.app(scope, receive, send)
