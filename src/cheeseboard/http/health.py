"""Liveness and readiness: ``/-/health`` answers 200 only when the store can be read."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cheeseboard.core import metrics
from cheeseboard.http.access import PUBLIC, GuardedRoute
from cheeseboard.http.state import services


async def health(request: Request) -> Response:
    report = await services(request).status.health()
    body = {
        "status": "ok" if report.ok else "unavailable",
        "version": report.version,
        "serial": report.serial,
        "offline": report.offline,
        "checks": report.checks,
    }
    return JSONResponse(
        body, status_code=200 if report.ok else 503, headers={"Cache-Control": "no-store"}
    )


async def metrics_endpoint(request: Request) -> Response:
    return PlainTextResponse(
        metrics.render(),
        media_type="text/plain; version=0.0.4",
        headers={"Cache-Control": "no-store"},
    )


routes = [
    GuardedRoute("/-/health", health, GET=PUBLIC),
    GuardedRoute("/-/metrics", metrics_endpoint, GET=PUBLIC),
]
