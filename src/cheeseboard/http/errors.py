"""Domain errors to HTTP answers, in one place: JSON for API clients, plain text otherwise."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cheeseboard.services.errors import CheeseboardError, UpstreamFailed
from cheeseboard.services.throttle import TooManyAttempts
from cheeseboard.web.browser import is_browser


def _wants_json(request: Request) -> bool:
    return "json" in request.headers.get("accept", "")


def _answer(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
    if is_browser(request.headers):
        from cheeseboard.web.pages import error_page  # the web UI imports this module's peers

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
