"""One Jinja2 environment for the web UI: templates compiled once, every value autoescaped.

Made on the first page a browser asks for, not at import: a worker that only serves installers
never loads Jinja2 (issue 19, start-up).
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from cheeseboard import __version__
from cheeseboard.http.ui.session import CSRF_FIELD, Session
from cheeseboard.http.ui.static import asset_url

if TYPE_CHECKING:
    from jinja2 import Environment

# The web UI's own pages run only our script from our origin; README images may come from any
# https host (as on PyPI). Nothing may frame the pages (clickjacking of the yank/delete buttons).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
FLASH_COOKIE = "cheeseboard_flash"
NOTHING = "\N{EN DASH}"  # shown for a missing size or time
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def filesize(size: int | None) -> str:
    if size is None:
        return NOTHING
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def _to_datetime(value: str | float | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def datetime_filter(value: str | float | None) -> str:
    moment = _to_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else NOTHING


def isotime(value: str | float | None) -> str:
    moment = _to_datetime(value)
    return moment.isoformat(timespec="seconds") if moment else ""


def ago(value: str | float | None) -> str:
    moment = _to_datetime(value)
    if moment is None:
        return NOTHING
    seconds = max(0, int(time.time() - moment.timestamp()))
    for size, unit in (
        (86400 * 365, "year"),
        (86400 * 30, "month"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


@functools.cache
def environment() -> Environment:
    """The web UI's Jinja2 environment, made once per process."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    made = Environment(
        loader=PackageLoader("cheeseboard.http.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        enable_async=False,
    )
    made.filters["filesize"] = filesize
    made.filters["datetime"] = datetime_filter
    made.filters["isotime"] = isotime
    made.filters["ago"] = ago
    made.globals["asset"] = asset_url
    made.globals["version"] = __version__
    made.globals["csrf_field"] = CSRF_FIELD
    return made


def render(
    request: Request,
    template: str,
    session: Session,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page: the template with the request, session and flash message in its context.

    The flash message (set by a form's redirect) is shown once, then its cookie is removed."""
    flash = request.cookies.get(FLASH_COOKIE)
    body = (
        environment()
        .get_template(template)
        .render(
            request=request,
            session=session,
            flash=flash,
            path=request.url.path,
            **context,
        )
    )
    response = HTMLResponse(
        body, status_code=http_status, headers={**SECURITY_HEADERS, **(headers or {})}
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response
