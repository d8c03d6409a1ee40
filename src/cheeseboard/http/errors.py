"""Domain errors to HTTP answers, in one place: JSON for API clients, plain text otherwise."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cheeseboard.core.negotiation import prefers_json
from cheeseboard.http.accounts import BodyTooLarge
from cheeseboard.http.ui.browser import is_browser
from cheeseboard.http.ui.docs import DocTooLarge, DocZipUnreadable
from cheeseboard.services.accounts import Conflict
from cheeseboard.services.auth import Forbidden, Unauthorized, UnknownUser
from cheeseboard.services.errors import (
    BadRequest,
    BlobStoreError,
    CheeseboardError,
    NotAcceptable,
    NotFound,
    UpstreamFailed,
    Withheld,
)
from cheeseboard.services.id_tokens import TokenRequestFailed
from cheeseboard.services.ldap import DirectoryUnavailable
from cheeseboard.services.oidc import OidcRefused, ProviderUnavailable
from cheeseboard.services.push import PushConflict, PushFailed
from cheeseboard.services.throttle import TooManyAttempts
from cheeseboard.services.uploads import TooLarge, UploadConflict, UploadRefused
from cheeseboard.services.upstream_names import UpstreamNameShadowed, UpstreamNameUnchecked

log = logging.getLogger(__name__)

# The one table of domain errors to status codes, walked in order with isinstance: a subclass
# comes before its base (UploadConflict before UploadRefused). Anything else is a logged 500.
STATUSES: tuple[tuple[type[CheeseboardError], int], ...] = (
    (BadRequest, 400),
    (UploadConflict, 409),
    (UploadRefused, 400),
    (Unauthorized, 401),
    (Forbidden, 403),  # CsrfRejected too
    (Withheld, 403),
    (UpstreamNameShadowed, 403),
    (NotFound, 404),
    (NotAcceptable, 406),
    (Conflict, 409),
    (PushConflict, 409),
    (TooLarge, 413),
    (BodyTooLarge, 413),
    (DocTooLarge, 413),
    (DocZipUnreadable, 422),
    (TooManyAttempts, 429),
    (UpstreamFailed, 502),
    (PushFailed, 502),
    (UpstreamNameUnchecked, 503),
    (DirectoryUnavailable, 503),  # LDAP down: its users only (local ones sign in as before)
    # Their own routes answer these (PyPI's error shape; the sign-in pages): the statuses
    # they use, should one reach the generic handler.
    (TokenRequestFailed, 422),
    (ProviderUnavailable, 502),
    (OidcRefused, 403),
)

# A full disk (or quota) is the operator's to fix, not a bug: 507 with the reason, no traceback.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _wants_json(request: Request) -> bool:
    """devpi-client and ``+api`` users ask for JSON and read ``message`` (devpi's shape)."""
    return prefers_json(request.headers.get("accept"))


def _answer(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
    if is_browser(request.headers):
        from cheeseboard.http.ui.pages import error_page  # the web UI imports this module's peers

        return error_page(request, status, message, headers)
    if _wants_json(request):
        return JSONResponse({"message": message}, status_code=status, headers=headers)
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


def status_of(exc: CheeseboardError) -> int | None:
    """The status code ``exc`` answers with; None if the table has no entry for it."""
    for cls, status in STATUSES:
        if isinstance(exc, cls):
            return status
    return None


def _deleted_owner(request: Request, exc: UnknownUser) -> bool:
    """Credentials of a missing (deleted) user on a path naming that user: devpi answers 404 for
    the user, which GET /<user> tells anyone; the credentials still authenticate nothing. Not
    for PUT /<user>, which creates the user (refused as any wrong credentials are)."""
    params = request.path_params
    creates = request.method == "PUT" and set(params) == {"user"}
    return params.get("user") == exc.user and not creates


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CheeseboardError)
    if isinstance(exc, UnknownUser) and _deleted_owner(request, exc):
        return _answer(request, 404, f"no user {exc.user!r}", {"Cache-Control": "no-store"})
    status = status_of(exc)
    if status is None:  # a domain error nobody mapped is a bug: keep its traceback
        log.error(
            "%s %s failed: unmapped %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=exc,
        )
        status = 500
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, UpstreamFailed):
        headers["Retry-After"] = "30"
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401 and not is_browser(request.headers):
        # Lets pip, uv and twine fall back to their keyring or prompt (docs/standards.md §1.12).
        headers["WWW-Authenticate"] = 'Basic realm="cheeseboard"'
    return _answer(request, status, exc.message, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _answer(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    """An unhandled exception (Starlette re-raises it to be logged): a 500 in the negotiated
    shape, never a web page, whose rendering may be what failed."""
    message, headers = "Internal Server Error", {"Cache-Control": "no-store"}
    if _wants_json(request):
        return JSONResponse({"message": message}, status_code=500, headers=headers)
    return PlainTextResponse(message + "\n", status_code=500, headers=headers)


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
    """The blob store failed (BlobMissing, BlobStoreUnavailable: the bucket of ``--blob-url``
    failed or is unreachable): 503, nothing half-stored."""
    log.warning("%s %s: file storage failed: %s", request.method, request.url.path, exc)
    message = f"the server's file storage is unavailable; nothing was stored ({exc})"
    return _answer(request, 503, message, {"Cache-Control": "no-store", "Retry-After": "30"})


# What create_app (http/app.py) answers itself, by exception class: domain errors through
# STATUSES above, a failing blob store (store/blobs.py) with 503 and Retry-After.
EXCEPTION_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    CheeseboardError: domain_error,
    HTTPException: http_error,
    OSError: os_error,
    BlobStoreError: storage_error,
    Exception: server_error,  # Starlette's outermost handler, for what nothing else caught
}
