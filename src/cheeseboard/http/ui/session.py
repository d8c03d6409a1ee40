"""Browser sessions and CSRF protection for the web UI's forms.

The session cookie holds a login token (core/tokens.py): signed, expiring, dead once the password
changes, valid on every worker and node. Signing out revokes that token server-side (a digest
kept until it would expire, services/tokens.py), so a copied cookie, or the same token sent as
Basic or X-Devpi-Auth credentials, stops working too. The cookie is HttpOnly and SameSite=Lax,
and Secure when the server is reached over https.

Every form that changes something carries a CSRF token that only the server can compute:
a keyed digest of the session token (signed-in forms) or of a random value also sent as a cookie
(the login form: "double submit"). A POST is also refused when its Origin header names another
site. The cookie is read by the web UI's routes only, never by the APIs, so a cross-site page
cannot reach the API with the user's session either.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.core.constant_time import same_secret
from cheeseboard.services import session_groups
from cheeseboard.services.auth import AuthService, Forbidden, Identity
from cheeseboard.services.session_groups import GROUPS_COOKIE

SESSION_COOKIE = "cheeseboard_session"
LOGIN_COOKIE = "cheeseboard_login"  # the login form's double-submit value
CSRF_FIELD = "csrf_token"


class CsrfRejected(Forbidden):
    """A form arrived without the token this session gave out, or from another site."""


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in to this browser (``user`` None: nobody) and the form token to use."""

    user: str | None
    csrf: str
    groups: frozenset[str] = frozenset()  # the user's groups (``:group:NAME`` principals)

    @property
    def identity(self) -> Identity:
        return Identity(self.user, None, self.groups)


def _secure(request: Request, outside_url: str | None) -> bool:
    scheme = urlsplit(outside_url).scheme if outside_url else request.url.scheme
    return scheme == "https"


def current(request: Request, auth: AuthService) -> Session:
    """The session this request carries; a stale or forged cookie counts as signed out."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        owner = auth.session_user(token)
        if owner is not None:
            # Local groups, and those the identity provider named at an OIDC sign-in.
            given = session_groups.opened(auth.tokens, token, request.cookies.get(GROUPS_COOKIE))
            groups = auth.groups_of(owner) | given
            return Session(owner, auth.tokens.derive("csrf", token), groups)
    anonymous_value = request.cookies.get(LOGIN_COOKIE) or ""
    return Session(None, auth.tokens.derive("login", anonymous_value) if anonymous_value else "")


def login_form_session(request: Request, auth: AuthService) -> tuple[Session, str | None]:
    """The session for showing the login form, and a new double-submit value to set if the
    browser has none yet."""
    value = request.cookies.get(LOGIN_COOKIE)
    fresh = None
    if not value:
        value = fresh = secrets.token_urlsafe(24)
    return Session(None, auth.tokens.derive("login", value)), fresh


def check_origin(request: Request) -> None:
    """Refuse a POST whose Origin (or, without one, Referer) is another site."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return  # no header: old browsers and privacy settings; the CSRF token still decides
    parts = urlsplit(origin)
    if parts.netloc != request.url.netloc:
        raise CsrfRejected(f"form sent from another site ({parts.netloc or origin})")


def check_csrf(request: Request, session: Session, submitted: str | None) -> None:
    check_origin(request)
    if not session.csrf or not submitted or not same_secret(submitted, session.csrf):
        raise CsrfRejected("the form has expired or did not come from this site; reload the page")


def set_session(
    response: Response, request: Request, token: str, lifetime: int, outside_url: str | None
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=lifetime,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request, outside_url),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/")


def set_login_cookie(
    response: Response, request: Request, value: str, outside_url: str | None
) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        max_age=3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request, outside_url),
    )


def session_token(request: Request) -> str | None:
    """The login token in this request's session cookie, if any (to revoke it on sign-out)."""
    return request.cookies.get(SESSION_COOKIE) or None


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(GROUPS_COOKIE, path="/")
