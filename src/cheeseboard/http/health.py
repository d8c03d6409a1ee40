"""Liveness and readiness: ``/-/health`` answers 200 only when the store can be read;
``/-/metrics``: the whole server's metrics for Prometheus (services/metrics.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cheeseboard.core.metrics_text import CONTENT_TYPE
from cheeseboard.http.access import PUBLIC, GuardedRoute
from cheeseboard.http.state import services
from cheeseboard.services.metrics import MetricsService


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
    service: MetricsService = request.app.state.metrics
    return Response(
        await service.scrape(),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


routes = [
    GuardedRoute("/-/health", health, GET=PUBLIC),
    GuardedRoute("/-/metrics", metrics_endpoint, GET=PUBLIC),
]
