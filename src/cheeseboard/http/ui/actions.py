"""The web UI's forms: sign in and out, yank and un-yank, remove a version, set a project's
status (PEP 792), refresh a mirror project, add and remove an index's exemptions and blocks.
Each needs a signed-in session and the form's CSRF token (http/ui/session.py); the permission
checks are the services' own, as for the API."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cheeseboard.core.indexconfig import EXEMPT_KEY
from cheeseboard.core.names import normalize_project_name
from cheeseboard.http.access import (
    MANAGE_INDEX,
    PUBLIC,
    REMOVE,
    SIGN_IN,
    SIGNED_IN,
    GuardedRoute,
    Rule,
)
from cheeseboard.http.state import index_of, services
from cheeseboard.http.ui import session as sessions
from cheeseboard.http.ui.templating import FLASH_COOKIE, render
from cheeseboard.services.auth import Identity, Unauthorized
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.project_status import parse_request
from cheeseboard.services.throttle import client_address
from cheeseboard.store.records import IndexRecord

MAX_FORM_BYTES = 64 * 1024


async def _form(request: Request) -> FormData:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise BadRequest("form too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("expected a form (application/x-www-form-urlencoded)")
    return await request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM_BYTES)


def _local(target: str | None, fallback: str) -> str:
    """Only a path on this server may be a redirect target (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    parts = urlsplit(target)
    return fallback if parts.scheme or parts.netloc else target


def _done(target: str, message: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        FLASH_COOKIE, message[:200], max_age=60, path="/", httponly=True, samesite="lax"
    )
    return response


async def login_form(request: Request) -> Response:
    auth = services(request).auth
    current = sessions.current(request, auth)
    target = _local(request.query_params.get("next"), "/")
    if current.user:
        return RedirectResponse(target, status_code=303)
    session, fresh = sessions.login_form_session(request, auth)
    response = render(request, "login.html", session, next=target, user_name="", error=None)
    if fresh:
        sessions.set_login_cookie(response, request, fresh, services(request).settings.outside_url)
    return response


async def _checked_form(request: Request) -> tuple[sessions.Session, FormData]:
    """The form and the session it came with; CsrfRejected unless it came from our page."""
    form = await _form(request)
    session = sessions.current(request, services(request).auth)
    sessions.check_csrf(request, session, str(form.get(sessions.CSRF_FIELD) or ""))
    return session, form


async def login(request: Request) -> Response:
    app = services(request)
    session, form = await _checked_form(request)
    target = _local(str(form.get("next") or ""), "/")
    user = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    try:
        token = await app.auth.login(user, password)
    except Unauthorized:
        return render(
            request,
            "login.html",
            session,
            http_status=401,
            next=target,
            user_name=user,
            error="Wrong user name or password.",
        )
    response = _done(target, f"Signed in as {user}.")
    sessions.set_session(
        response, request, token, app.auth.tokens.lifetime, app.settings.outside_url
    )
    return response


async def logout(request: Request) -> Response:
    """Sign out: the session's token is revoked server-side, not only forgotten by the browser."""
    session, _ = await _checked_form(request)
    token = sessions.session_token(request)
    if session.user is not None and token is not None:
        await services(request).tokens.revoke_login(token)
    response = _done("/", "Signed out.")
    sessions.clear_session(response)
    return response


async def _signed_in(request: Request) -> tuple[sessions.Session, FormData]:
    form = await _form(request)
    session = sessions.current(request, services(request).auth)
    if session.user is None:
        raise Unauthorized("sign in first: your session has expired or you are not signed in")
    sessions.check_csrf(request, session, str(form.get(sessions.CSRF_FIELD) or ""))
    return session, form


async def version_action(request: Request) -> Response:
    """``POST …/<project>/<version>/+yank`` (and ``+unyank``, ``+delete``)."""
    app = services(request)
    action = request.path_params["action"]
    index = index_of(request)
    session, form = await _signed_in(request)
    project = request.path_params["project"]
    version = request.path_params["version"]
    name = normalize_project_name(project)
    if action == "yank":
        reason = str(form.get("reason") or "").strip()[:500]
        await app.releases.yank(session.identity, index, project, version, reason)
        return _done(f"/{index.fullname}/{name}/{version}", f"{project} {version} yanked.")
    if action == "unyank":
        await app.releases.yank(session.identity, index, project, version, None)
        return _done(f"/{index.fullname}/{name}/{version}", f"{project} {version} un-yanked.")
    if action == "delete":
        force = form.get("force") == "on"
        await app.releases.delete_version(session.identity, index, project, version, force)
        return _done(f"/{index.fullname}", f"{project} {version} removed from {index.fullname}.")
    raise BadRequest(f"unknown action {action!r}")


async def project_status(request: Request) -> Response:
    """``POST …/<project>/+setstatus``: set the project's PEP 792 status (owner or root)."""
    app = services(request)
    index = index_of(request)
    session, form = await _signed_in(request)
    reason = str(form.get("reason") or "").strip()
    status, why = parse_request({"status": form.get("status"), "reason": reason})
    project = request.path_params["project"]
    changed = await app.project_status.set(
        session.identity, index, project, status, why, client_address.get()
    )
    target = f"/{index.fullname}/{changed.project}"
    return _done(target, f"{changed.project} is now {changed.status} on {index.fullname}.")


async def refresh(request: Request) -> Response:
    """``POST …/<project>/+refresh``: fetch a mirrored project from upstream now."""
    index = index_of(request)
    await _signed_in(request)
    name = normalize_project_name(request.path_params["project"])
    refreshed = await services(request).pages.refresh(index, name)
    what = ", ".join(refreshed) or "no mirror"
    return _done(f"/{index.fullname}/{name}", f"Refreshed {name} from {what}.")


def _field(form: FormData, name: str, what: str = "") -> str:
    """A form field as one line; ``what`` names a field that goes into one ``; key=value``
    option of an exemption, where a ``;`` would end it early."""
    value = " ".join(str(form.get(name) or "").split())
    if what and ";" in value:
        raise BadRequest(f"the {what} may not contain ';'")
    return value


async def exemption(request: Request) -> Response:
    """``POST …/+exempt`` and ``…/+unexempt``: add or remove a break-glass exemption from the
    index's cooldown, through the same index PATCH as the API (owner or root)."""
    app = services(request)
    index = index_of(request)
    session, form = await _signed_in(request)
    entry = _field(form, "entry", "entry")
    if not entry:
        raise BadRequest("name the project (or project==version) to exempt")
    if request.url.path.endswith("/+unexempt"):
        item = f"{EXEMPT_KEY}-={entry}"
        await app.accounts.patch_index(session.identity, index.user, index.name, [item])
        return _done(f"/{index.fullname}", f"Exemption {entry} removed.")
    reason = _field(form, "reason", "reason")
    if not reason:
        raise BadRequest("an exemption needs a reason")
    item = f"{EXEMPT_KEY}+={entry}; reason={reason}"
    expires = _field(form, "expires", "expiry")
    if expires:
        item += f"; expires={expires}"
    changed = await app.accounts.patch_index(session.identity, index.user, index.name, [item])
    added = (changed.config.get(EXEMPT_KEY) or [{}])[-1]  # appended last, its name normalized
    shown = added.get("entry", entry) if isinstance(added, dict) else entry
    return _done(f"/{index.fullname}", f"{shown} is exempt from the cooldown of {index.fullname}.")


async def block(request: Request) -> Response:
    """``POST …/+block``: block a project, version range, filename or sha256 on the index."""
    app = services(request)
    index = index_of(request)
    session, form = await _signed_in(request)
    fields = ("project", "specifier", "filename", "sha256", "reason")
    body = {name: value for name in fields if (value := _field(form, name))}
    added = await app.blocks.add(session.identity, index, body, client_address.get())
    return _done(f"/{index.fullname}", f"Block {added.id} added to {index.fullname}.")


async def unblock(request: Request) -> Response:
    """``POST …/+unblock`` with the block's ``id``."""
    app = services(request)
    index = index_of(request)
    session, form = await _signed_in(request)
    text = _field(form, "id")
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise BadRequest("which block? (its id)")
    removed = await app.blocks.remove(session.identity, index, int(text), client_address.get())
    return _done(f"/{index.fullname}", f"Block {removed.id} removed from {index.fullname}.")


class FormRoute(GuardedRoute):
    """A form target of the web UI: the caller is whoever the session cookie names (scoped
    tokens are never sessions), checked before the form is read."""

    async def identity(self, request: Request, rule: Rule, index: IndexRecord | None) -> Identity:
        return sessions.current(request, services(request).auth).identity


routes = [
    GuardedRoute("/+web/login", login_form, GET=PUBLIC),
    FormRoute("/+web/login", login, POST=SIGN_IN),
    FormRoute("/+web/logout", logout, POST=SIGN_IN),
    FormRoute("/{user}/{index}/+exempt", exemption, POST=MANAGE_INDEX),
    FormRoute("/{user}/{index}/+unexempt", exemption, POST=MANAGE_INDEX),
    FormRoute("/{user}/{index}/+block", block, POST=MANAGE_INDEX),
    FormRoute("/{user}/{index}/+unblock", unblock, POST=MANAGE_INDEX),
    FormRoute("/{user}/{index}/{project}/+refresh", refresh, POST=SIGNED_IN),
    FormRoute("/{user}/{index}/{project}/+setstatus", project_status, POST=MANAGE_INDEX),
    FormRoute("/{user}/{index}/{project}/{version}/+{action}", version_action, POST=REMOVE),
]
