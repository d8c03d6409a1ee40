"""The audit log as a web page (``/+audit`` in a browser), for root; others get the refusal of
any root-only route (a sign-in prompt, or 403). The API answers the same URL with JSON
(http/audit.py), with the same query parameters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import ROOT_ONLY
from cheeseboard.http.audit import audit_query, entries
from cheeseboard.http.state import services
from cheeseboard.http.ui import session as sessions
from cheeseboard.http.ui.browser import BrowserRoute
from cheeseboard.http.ui.templating import render
from cheeseboard.services.audit import compact
from cheeseboard.store.audit_rows import rfc3339


async def audit_page(request: Request) -> Response:
    rows = await entries(request)
    shown = [(row, rfc3339(row.at), compact(row.detail)) for row in rows]
    return render(
        request,
        "audit.html",
        sessions.current(request, services(request).auth),
        rows=shown,
        query=audit_query(request),
    )


routes = [BrowserRoute("/+audit", audit_page, GET=ROOT_ONLY)]
