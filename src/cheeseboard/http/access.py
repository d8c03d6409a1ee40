"""Who may call each route: every route of the app names, per method, the rule that admits a
caller, checks it before its handler runs, and the app refuses to start with a route that names
none.

The rules are the permission model of docs/security.md in one table, decided by the pure
functions of ``core/acl.py``. A route checks its rule from the caller's credentials and the path
alone, before any body is read, so a refused caller costs no parsing and learns nothing from
validation errors. The services check again with everything the request says (a push's target
index, a new index's type), through the same decisions. ``tests/integration/
test_route_permissions.py`` walks the app's own route list and proves each rule for every
identity: anonymous, a wrong password, another user, a token scoped to another index, the owner
and root.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cheeseboard.core import acl
from cheeseboard.http.state import services
from cheeseboard.services import auth, toxresults
from cheeseboard.services.auth import Action, Forbidden, Identity, Unauthorized
from cheeseboard.services.errors import NotFound
from cheeseboard.services.visibility import ReadAccess, index_not_found
from cheeseboard.store.records import IndexRecord


@dataclass(frozen=True, slots=True)
class Target:
    """What a route's path names, for its rule: the user segment and the index (None when the
    path has no index, or names one that does not exist: the handler answers 404 then)."""

    user: str | None
    index: IndexRecord | None
    restrict_modify: tuple[str, ...]
    open_registration: bool
    reads: ReadAccess
    names_index: bool = False  # the path names an index (which may not exist)


Check = Callable[[acl.Who, Target], acl.Decision | None]
"""A rule's decision on the caller (with its groups) and the path."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Who a route admits: in words (``who``), as a decision on the caller and the path
    (``check``; None: anyone, credentials not looked at; a check answering None leaves the
    decision to the handler), and as the set of test identities it admits (``admits``).

    ``action`` is what the credentials are asked for (a scoped token may read and upload only).
    """

    name: str
    who: str
    admits: frozenset[str]
    check: Check | None = None
    action: Action = "manage"
    hides: bool = False
    """A refusal looks like "no such index": a signed-in caller gets the 404 of a missing
    index, an anonymous one the same 401 whether the index exists or not."""


# The identities the permission model is stated for (and tested with).
ANONYMOUS = "anonymous"
WRONG_PASSWORD = "wrong-password"  # noqa: S105 - a name, not a password
OTHER_USER = "other-user"
SCOPED_ELSEWHERE = "token-for-another-index"
OWNER = "owner"
ROOT = "root"
IDENTITIES = (ANONYMOUS, WRONG_PASSWORD, OTHER_USER, SCOPED_ELSEWHERE, OWNER, ROOT)
_EVERYONE = frozenset(IDENTITIES)


def _signed_in(who: acl.Who, target: Target) -> acl.Decision:
    return acl.Decision(acl.name_of(who) is not None, "sign in first")


def _on_stage(decide: Callable[[acl.Who, IndexRecord], acl.Decision]) -> Check:
    """A check on the path's index; None (the handler decides: 404, "not a stage") without one."""

    def check(who: acl.Who, target: Target) -> acl.Decision | None:
        if target.index is None or target.index.type != "stage":
            return None
        return decide(who, target.index)

    return check


def _acl_upload(index: IndexRecord) -> Any:
    return index.config.get("acl_upload", ())


def _may_push(who: acl.Who, index: IndexRecord) -> acl.Decision:
    manage = acl.may_modify_index(acl.name_of(who), index.user)
    return manage if manage.allowed else acl.may_upload(who, _acl_upload(index))


def _may_manage_index(who: acl.Who, target: Target) -> acl.Decision | None:
    if target.index is None:
        return None
    return acl.may_modify_index(acl.name_of(who), target.index.user)


def _may_create_index(who: acl.Who, target: Target) -> acl.Decision | None:
    if target.user is None:
        return None
    return acl.may_create_index(who, target.user, target.restrict_modify, target.open_registration)


def _may_manage_user(who: acl.Who, target: Target) -> acl.Decision | None:
    return None if target.user is None else acl.may_modify_user(acl.name_of(who), target.user)


def _may_create_user(who: acl.Who, target: Target) -> acl.Decision:
    return acl.may_create_user(who, target.restrict_modify, target.open_registration)


READ_REFUSED = "sign in to read this index"
"""What an anonymous caller hears for an index it may not read, and for a missing one once some
index is not public: the same words (services/visibility.py)."""


def _may_read(who: acl.Who, target: Target) -> acl.Decision | None:
    if target.index is not None:
        return target.reads.decide(who, target.index)
    if target.names_index and acl.name_of(who) is None and target.reads.anonymous_restricted():
        return acl.Decision(False, READ_REFUSED)  # a missing index, answered as a private one
    return None  # no index in the path (the handler shows only what the caller may read)


def _root(who: acl.Who, target: Target) -> acl.Decision:
    return acl.Decision(acl.name_of(who) == acl.ROOT, "root only")


PUBLIC = Rule("public", "anyone; credentials are not looked at", _EVERYONE)
SIGN_IN = Rule(
    "sign-in", "anyone; the credentials in the request body decide (throttled)", _EVERYONE
)
READ = Rule(
    "read",
    "the principals in the index's acl_read (:ANONYMOUS: by default), its owner and root; "
    "with --read-requires-auth signed-in callers only",
    _EVERYONE,
    _may_read,
    "read",
    hides=True,
)
SIGNED_IN = Rule(
    "signed-in",
    "any user signed in to the web UI (a session, never a scoped token)",
    frozenset({OTHER_USER, OWNER, ROOT}),
    _signed_in,
)
UPLOAD = Rule(
    "upload",
    "the principals in the index's acl_upload (the owner by default; root is not implied), "
    "or a token scoped to upload to that index",
    frozenset({OWNER}),
    _on_stage(lambda user, index: acl.may_upload(user, _acl_upload(index))),
    "upload",
)
TOXRESULT = Rule(
    "toxresult",
    "the principals in the index's acl_toxresult_upload (:ANONYMOUS: by default, as in devpi), "
    "or a token scoped to upload to that index: attach tox results to release files",
    frozenset({ANONYMOUS, OTHER_USER, OWNER, ROOT}),
    _on_stage(lambda user, index: acl.may_upload_toxresult(user, toxresults.acl_of(index))),
    "upload",
)
PUSH = Rule(
    "push",
    "who may upload to or manage the source index (and upload to the target index); "
    "external targets also pass --push-allow",
    frozenset({OWNER, ROOT}),
    _on_stage(_may_push),
    "upload",  # a scoped token must cover the source; the handler checks it for the target
)
REMOVE = Rule(
    "remove",
    "the index's uploaders (acl_upload), its owner and root: remove or yank releases",
    frozenset({OWNER, ROOT}),
    _on_stage(lambda user, index: acl.may_delete_files(user, index.user, _acl_upload(index))),
)
MANAGE_INDEX = Rule(
    "manage-index", "the index's owner and root", frozenset({OWNER, ROOT}), _may_manage_index
)
CREATE_INDEX = Rule(
    "create-index",
    "root and the principals in --restrict-modify; with --open-registration a user under "
    "their own name (stage indexes only)",
    frozenset({ROOT}),
    _may_create_index,
)
MANAGE_USER = Rule(
    "manage-user", "the user themselves and root", frozenset({OWNER, ROOT}), _may_manage_user
)
CREATE_USER = Rule(
    "create-user",
    "root and the principals in --restrict-modify; anyone with --open-registration",
    frozenset({ROOT}),
    _may_create_user,
)
ROOT_ONLY = Rule("root", "root only", frozenset({ROOT}), _root)

RULES = (
    PUBLIC,
    SIGN_IN,
    READ,
    SIGNED_IN,
    UPLOAD,
    TOXRESULT,
    PUSH,
    REMOVE,
    MANAGE_INDEX,
    CREATE_INDEX,
    MANAGE_USER,
    CREATE_USER,
    ROOT_ONLY,
)


class GuardedRoute(Route):
    """A Starlette route whose methods are the keys of ``access``, each with its Rule, checked
    before the handler runs.

    ``GuardedRoute("/{user}", user, GET=READ, PATCH=MANAGE_USER)``: HEAD comes with GET (and
    answers as GET does), so it is never named. Callers are identified by their credentials
    (HTTP Basic, ``X-Devpi-Auth``); the web UI's forms override ``identity`` to use the session.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        **access: Rule,
    ) -> None:
        if not access:
            raise ValueError(f"route {path} names no method and no rule")
        if "HEAD" in access:
            raise ValueError(f"route {path}: HEAD follows GET, do not name it")
        self.access: Mapping[str, Rule] = dict(access)

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            await self._enforce(request, self.rule(request.method))
            return await endpoint(request)

        super().__init__(path, guarded, methods=list(access))

    def rule(self, method: str) -> Rule:
        """The rule for ``method`` (HEAD is GET's)."""
        return self.access["GET" if method == "HEAD" else method]

    async def identity(self, request: Request, rule: Rule, index: IndexRecord | None) -> Identity:
        """Who is calling: from the request's credentials, asked for ``rule.action``."""
        params = request.path_params
        fullname = index.fullname if index is not None else None
        if fullname is None and "index" in params:
            # A missing index: a scoped token covers no such index, so its reads there are
            # anonymous, as on a private one (the two must not be told apart).
            fullname = f"{params.get('user', '')}/{params['index']}"
        return await services(request).auth.identify(request.headers, rule.action, fullname)

    async def _enforce(self, request: Request, rule: Rule) -> None:
        """Raise Unauthorized (no or wrong credentials) or Forbidden unless ``rule`` admits
        the caller for what the path names."""
        if rule.check is None:
            return
        app = services(request)
        params = request.path_params
        index = None
        if "index" in params:
            index = app.indexes.get(params.get("user", ""), params["index"])
        target = Target(
            params.get("user"),
            index,
            app.settings.restrict_modify,
            app.settings.open_registration,
            app.reads,
            "index" in params,
        )
        try:
            identity = await self.identity(request, rule, index)
        except Unauthorized:
            if not rule.hides:
                raise
            identity = auth.ANONYMOUS  # wrong credentials read what anonymous callers may
        request.state.identity = identity  # handlers show only what it may read (reader_of)
        decision = rule.check(identity, target)
        if decision is None or decision.allowed:
            return
        if rule.hides:
            if identity.anonymous:
                raise Unauthorized(READ_REFUSED)
            raise NotFound(index_not_found(params.get("user", ""), params.get("index", "")))
        if (
            index is not None
            and request.method in ("GET", "HEAD")
            and not app.reads.may_read(identity, index)
        ):
            # A refused look at an index the caller may not even read is answered as for a
            # missing one (the handler's 404), whatever the rule: a 401 or 403 would tell
            # a private index from a made-up name (test_read_leaks crawls every GET route).
            raise NotFound(index_not_found(params.get("user", ""), params.get("index", "")))
        if identity.anonymous:
            raise Unauthorized(decision.reason)
        raise Forbidden(decision.reason)


def unguarded(routes: Iterable[BaseRoute]) -> list[str]:
    """The routes among ``routes`` that declare no rule (an app with any refuses to start)."""
    return [
        getattr(route, "path", repr(route))
        for route in routes
        if not isinstance(route, GuardedRoute)
    ]
