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
from starlette.routing import Match
from starlette.types import Scope

from cheeseboard.http.access import GuardedRoute


def is_browser(headers: Headers) -> bool:
    accept = headers.get("accept", "").lower()
    if "text/html" not in accept or "application/vnd.pypi" in accept:
        return False
    if "application/json" in accept:
        return False
    return "application/xhtml+xml" in accept or headers.get("user-agent", "").startswith("Mozilla/")


class BrowserRoute(GuardedRoute):
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
