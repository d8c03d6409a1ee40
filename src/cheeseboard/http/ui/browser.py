"""Telling browsers from installers, so one URL serves both (devpi's URL layout).

``/<user>/<index>/<project>`` is a simple page for pip given the index URL itself and a project
page for a person. Installers announce themselves: pip and uv ask for the PEP 691 media types,
devpi-client for JSON, old pip for bare ``text/html`` with a ``pip/…`` User-Agent. A browser asks
for ``text/html`` together with ``application/xhtml+xml`` (every mainstream browser does) or at
least calls itself ``Mozilla/…``. Anything else keeps the API answer, so no installer can be
handed a web page by accident.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import Scope

from cheeseboard.http.access import GuardedRoute, Rule
from cheeseboard.http.state import services
from cheeseboard.http.ui import session as sessions
from cheeseboard.services.auth import ANONYMOUS, Forbidden, Identity, Unauthorized
from cheeseboard.store.records import IndexRecord


def is_browser(headers: Headers) -> bool:
    accept = headers.get("accept", "").lower()
    if "text/html" not in accept or "application/vnd.pypi" in accept:
        return False
    if "application/json" in accept:
        return False
    return "application/xhtml+xml" in accept or headers.get("user-agent", "").startswith("Mozilla/")


async def web_reader(request: Request, index: IndexRecord | None = None) -> Identity:
    """Who reads a web page: the user the session cookie names, else whoever the request's
    credentials name (bad or stale ones, and tokens not scoped to read ``index``, read as
    anonymous, as the read rule treats them)."""
    app = services(request)
    session = sessions.current(request, app.auth)
    if session.user is not None:
        return session.identity
    fullname = index.fullname if index is not None else None
    params = request.path_params
    if fullname is None and "index" in params:
        fullname = f"{params.get('user', '')}/{params['index']}"  # missing: as a private one
    try:
        return await app.auth.identify(request.headers, "read", fullname)
    except (Unauthorized, Forbidden):
        return ANONYMOUS


class WebRoute(GuardedRoute):
    """A web UI page answering every client: the reader is the session's user (http/ui)."""

    async def identity(self, request: Request, rule: Rule, index: IndexRecord | None) -> Identity:
        return await web_reader(request, index)


class BrowserRoute(WebRoute):
    """A route that matches only a browser's request, and never a ``+…`` segment (those are the
    API's own: ``+simple``, ``+f``, ``+api``), so the API route behind it answers everyone else."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.NONE:
            return match, child  # the path does not fit: no need to look at the headers
        params = child.get("path_params", {})
        if any(str(value).startswith(("+", "-")) for value in params.values()):
            return Match.NONE, {}
        if not is_browser(Headers(scope=scope)):
            return Match.NONE, {}
        return match, child
