"""Liveness and readiness: ``/-/health`` answers 200 only when the store can be read."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cheeseboard import __version__
from cheeseboard.core import metrics
from cheeseboard.http.access import PUBLIC, GuardedRoute
from cheeseboard.http.state import services


async def health(request: Request) -> Response:
    app = services(request)
    checks: dict[str, str] = {}
    try:
        await app.db.read(lambda conn: conn.execute(text("SELECT 1")))
        checks["database"] = "ok"
    except Exception as exc:  # readiness must report any failure, not raise it
        checks["database"] = f"error: {type(exc).__name__}"
    blobs_dir = app.settings.layout.blobs
    checks["blobs"] = "ok" if blobs_dir.is_dir() else "error: missing blob directory"
    ok = all(value == "ok" for value in checks.values())
    body = {
        "status": "ok" if ok else "unavailable",
        "version": __version__,
        "serial": app.changes.serial,
        "offline": app.settings.offline,
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


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
