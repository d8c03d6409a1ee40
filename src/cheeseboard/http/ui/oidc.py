"""``/+web/oidc/login`` and ``/+web/oidc/callback``: the web UI's single sign-on (services/sso.py).

The login route sends the browser to the provider with a flow cookie (HttpOnly, SameSite=Lax:
sent back on the provider's top-level redirect, not on a cross-site subrequest); the callback
ends in the same session cookie a password sign-in sets, or in a page saying why not. Both
answer 404 when no ``oidc:`` section is configured.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cheeseboard.http.access import PUBLIC, GuardedRoute
from cheeseboard.http.state import base_url, services
from cheeseboard.http.ui import session as sessions
from cheeseboard.http.ui.templating import FLASH_COOKIE, render
from cheeseboard.services import session_groups
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.oidc import OidcRefused, ProviderUnavailable
from cheeseboard.services.sso import FLOW_LIFETIME, CliReturn, SsoService

FLOW_COOKIE = "cheeseboard_oidc"
FLOW_PATH = "/+web/oidc/"


def sso(request: Request) -> SsoService:
    """This worker's sign-in service, built on first use from its services."""
    state = request.app.state
    built = getattr(state, "sso", None)
    if not isinstance(built, SsoService):
        app = services(request)
        oidc = app.settings.oidc
        built = SsoService(oidc, app.settings.ca_bundle, app.db, app.changes, app.auth)
        state.sso = built
    return built


def _redirect_uri(request: Request) -> str:
    return f"{base_url(request)}+web/oidc/callback"


def _cli(request: Request) -> CliReturn | None:
    """``?cli=PORT&cli_state=S``: a ``cheeseboard login --sso`` waiting on the browser's
    loopback (never another host: the token goes to 127.0.0.1 only)."""
    port, state = request.query_params.get("cli"), request.query_params.get("cli_state", "")
    if port is None:
        return None
    if not port.isdigit() or not 1024 <= int(port) <= 65535:
        raise BadRequest("cli must be a port number from 1024 to 65535")
    if not 16 <= len(state) <= 128 or not state.replace("-", "").replace("_", "").isalnum():
        raise BadRequest("cli_state must be 16 to 128 URL-safe characters")
    return CliReturn(int(port), state)


def _local(target: str | None) -> str:
    """Only a path on this server may be where a sign-in ends (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:1000]


async def oidc_login(request: Request) -> Response:
    service = sso(request)
    if service.client is None:
        raise NotFound("single sign-on is not configured on this server")
    try:
        url, cookie = await service.begin(
            _redirect_uri(request), _local(request.query_params.get("next")), _cli(request)
        )
    except OidcRefused as exc:
        return _refused(request, exc)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        cookie,
        max_age=FLOW_LIFETIME,
        path=FLOW_PATH,
        httponly=True,
        samesite="lax",
        secure=_redirect_uri(request).startswith("https:"),
    )
    return response


async def oidc_callback(request: Request) -> Response:
    service = sso(request)
    if service.client is None:
        raise NotFound("single sign-on is not configured on this server")
    query = {key: value[:4096] for key, value in request.query_params.items()}
    try:
        done = await service.finish(request.cookies.get(FLOW_COOKIE), query, _redirect_uri(request))
    except OidcRefused as exc:
        return _refused(request, exc)
    if done.cli is not None:  # the command line gets the token; the browser no session
        answer = {"state": done.cli.state, "user": done.user, "token": done.token}
        back = f"http://127.0.0.1:{done.cli.port}/callback?{urlencode(answer)}"
        response = RedirectResponse(back, status_code=303)
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return response
    response = RedirectResponse(done.next, status_code=303)
    response.set_cookie(
        FLASH_COOKIE, f"Signed in as {done.user}.", max_age=60, path="/", httponly=True
    )
    app = services(request)
    sessions.set_session(
        response, request, done.token, app.auth.tokens.lifetime, app.settings.outside_url
    )
    if done.groups:  # the provider's groups, for this session only (services/session_groups.py)
        value, _ = session_groups.seal(app.auth.tokens, done.token, done.groups)
        response.set_cookie(
            session_groups.GROUPS_COOKIE,
            value,
            max_age=app.auth.tokens.lifetime,
            path="/",
            httponly=True,
            samesite="lax",
            secure=_redirect_uri(request).startswith("https:"),
        )
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


def _refused(request: Request, exc: OidcRefused) -> Response:
    status = 502 if isinstance(exc, ProviderUnavailable) else 403
    session = sessions.current(request, services(request).auth)
    response = render(request, "oidc_refused.html", session, http_status=status, reason=str(exc))
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


routes = [
    GuardedRoute("/+web/oidc/login", oidc_login, GET=PUBLIC),
    GuardedRoute("/+web/oidc/callback", oidc_callback, GET=PUBLIC),
]
