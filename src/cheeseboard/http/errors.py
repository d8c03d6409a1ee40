"""Domain errors to HTTP answers, in one place: JSON for API clients, plain text otherwise."""

from __future__ import annotations

import errno
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cheeseboard.http.ui.browser import is_browser
from cheeseboard.services.errors import CheeseboardError, UpstreamFailed
from cheeseboard.services.throttle import TooManyAttempts

log = logging.getLogger(__name__)

# A full disk (or quota) is the operator's to fix, not a bug: 507 with the reason, no traceback.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _wants_json(request: Request) -> bool:
    return "json" in request.headers.get("accept", "")


def _answer(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
    if is_browser(request.headers):
        from cheeseboard.http.ui.pages import error_page  # the web UI imports this module's peers

        return error_page(request, status, message, headers)
    if _wants_json(request):
        return JSONResponse({"message": message}, status_code=status, headers=headers)
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CheeseboardError)
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, UpstreamFailed):
        headers["Retry-After"] = "30"
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 401 and not is_browser(request.headers):
        # Lets pip, uv and twine fall back to their keyring or prompt (standards §1.12).
        headers["WWW-Authenticate"] = 'Basic realm="cheeseboard"'
    return _answer(request, exc.status, exc.message, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _answer(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def os_error(request: Request, exc: Exception) -> Response:
    """A full disk gives 507 Insufficient Storage; any other OSError stays a logged 500."""
    assert isinstance(exc, OSError)
    if exc.errno not in _NO_SPACE:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _answer(request, 500, "Internal Server Error", {"Cache-Control": "no-store"})
    log.warning("%s %s: storage is full: %s", request.method, request.url.path, exc)
    message = (
        "the server's storage is full (no space left on device); nothing was stored. "
        "Retry once the administrator has freed space."
    )
    return _answer(request, 507, message, {"Cache-Control": "no-store", "Retry-After": "60"})


async def storage_error(request: Request, exc: Exception) -> Response:
    """The bucket (``--blob-url``) failed or is unreachable: 503, nothing half-stored."""
    log.warning("%s %s: file storage failed: %s", request.method, request.url.path, exc)
    message = f"the server's file storage is unavailable; nothing was stored ({exc})"
    return _answer(request, 503, message, {"Cache-Control": "no-store", "Retry-After": "30"})
