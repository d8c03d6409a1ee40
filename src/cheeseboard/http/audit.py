"""``GET /+audit``: the audit log as JSON, for root (issue 21).

Query parameters: ``after`` (an id: only newer entries, for paging or following the log),
``limit`` (at most store/audit_rows.py ``MAX_READ``), ``actor`` and ``action`` (exact matches).
Entries come newest first: ``{"type": "audit", "result": [{id, at, actor, action, target,
detail, client}, ...]}``, ``at`` in RFC 3339 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import ROOT_ONLY, GuardedRoute
from cheeseboard.http.accounts import envelope
from cheeseboard.http.state import services
from cheeseboard.services import audit
from cheeseboard.services.auth import ANONYMOUS
from cheeseboard.services.errors import BadRequest
from cheeseboard.store.audit_rows import MAX_READ, AuditRow

DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What a reader of the log asked for (the API's and the web page's query parameters)."""

    after: int = 0
    limit: int = DEFAULT_LIMIT
    actor: str | None = None
    action: str | None = None


def _number(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def audit_query(request: Request) -> AuditQuery:
    """The query parameters, checked (a bad number is a 400, not a silent default)."""
    params = request.query_params
    return AuditQuery(
        after=_number(request, "after", 0, 0, 2**62),
        limit=_number(request, "limit", DEFAULT_LIMIT, 1, MAX_READ),
        actor=params.get("actor") or None,
        action=params.get("action") or None,
    )


async def entries(request: Request) -> list[AuditRow]:
    """The entries the request asks for, as the route's rule identified its caller."""
    query = audit_query(request)
    identity = getattr(request.state, "identity", ANONYMOUS)
    return await audit.read_log(
        services(request).db,
        identity,
        after=query.after,
        limit=query.limit,
        user=query.actor,
        action=query.action,
    )


async def audit_log(request: Request) -> Response:
    rows = await entries(request)
    return envelope(result=[row.to_json() for row in rows], type_="audit")


routes = [GuardedRoute("/+audit", audit_log, GET=ROOT_ONLY)]
