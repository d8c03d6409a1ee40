"""Who may call each route: every route of the app names, per method, the rule that admits a
caller, and the app refuses to start with a route that names none.

The rules are the permission model of docs/security.md in one table. The checks themselves stay
where the data is (services call the pure decisions in ``core/acl.py``, which also see request
bodies, e.g. a push's target index); this declaration is what they must agree with, and
``tests/integration/test_route_permissions.py`` walks the app's own route list and proves it for
every identity: anonymous, a wrong password, another user, a token scoped to another index, the
owner and root. A new route without a rule fails at startup; a rule its code does not keep fails
that test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Route


@dataclass(frozen=True, slots=True)
class Rule:
    """Who a route admits, in words (``who``) and as the set of test identities it admits.

    ``admits`` names the identities of the permission test that get past the permission check;
    the others are refused with 401 (no or wrong credentials) or 403.
    """

    name: str
    who: str
    admits: frozenset[str]


# The identities the permission model is stated for (and tested with).
ANONYMOUS = "anonymous"
WRONG_PASSWORD = "wrong-password"  # noqa: S105 - a name, not a password
OTHER_USER = "other-user"
SCOPED_ELSEWHERE = "token-for-another-index"
OWNER = "owner"
ROOT = "root"
IDENTITIES = (ANONYMOUS, WRONG_PASSWORD, OTHER_USER, SCOPED_ELSEWHERE, OWNER, ROOT)
_EVERYONE = frozenset(IDENTITIES)

PUBLIC = Rule("public", "anyone; credentials are not looked at", _EVERYONE)
SIGN_IN = Rule(
    "sign-in", "anyone; the credentials in the request body decide (throttled)", _EVERYONE
)
READ = Rule(
    "read",
    "anyone may read index content (per-index read permissions: issue 20)",
    _EVERYONE,
)
SIGNED_IN = Rule(
    "signed-in",
    "any user signed in to the web UI (a session, never a scoped token)",
    frozenset({OTHER_USER, OWNER, ROOT}),
)
UPLOAD = Rule(
    "upload",
    "the principals in the index's acl_upload (the owner by default; root is not implied), "
    "or a token scoped to upload to that index",
    frozenset({OWNER}),
)
PUSH = Rule(
    "push",
    "who may upload to or manage the source index (and upload to the target index); "
    "external targets also pass --push-allow",
    frozenset({OWNER, ROOT}),
)
REMOVE = Rule(
    "remove",
    "the index's uploaders (acl_upload), its owner and root: remove or yank releases",
    frozenset({OWNER, ROOT}),
)
MANAGE_INDEX = Rule("manage-index", "the index's owner and root", frozenset({OWNER, ROOT}))
CREATE_INDEX = Rule(
    "create-index",
    "root and the principals in --restrict-modify; with --open-registration a user under "
    "their own name (stage indexes only)",
    frozenset({ROOT}),
)
MANAGE_USER = Rule("manage-user", "the user themselves and root", frozenset({OWNER, ROOT}))
CREATE_USER = Rule(
    "create-user",
    "root and the principals in --restrict-modify; anyone with --open-registration",
    frozenset({ROOT}),
)
ROOT_ONLY = Rule("root", "root only", frozenset({ROOT}))

RULES = (
    PUBLIC,
    SIGN_IN,
    READ,
    SIGNED_IN,
    UPLOAD,
    PUSH,
    REMOVE,
    MANAGE_INDEX,
    CREATE_INDEX,
    MANAGE_USER,
    CREATE_USER,
    ROOT_ONLY,
)


class GuardedRoute(Route):
    """A Starlette route whose methods are the keys of ``access``, each with its Rule.

    ``GuardedRoute("/{user}", user, GET=READ, PATCH=MANAGE_USER)``: HEAD comes with GET (and
    answers as GET does), so it is never named.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        **access: Rule,
    ) -> None:
        if not access:
            raise ValueError(f"route {path} names no method and no rule")
        if "HEAD" in access:
            raise ValueError(f"route {path}: HEAD follows GET, do not name it")
        super().__init__(path, endpoint, methods=list(access))
        self.access: Mapping[str, Rule] = dict(access)

    def rule(self, method: str) -> Rule:
        """The rule for ``method`` (HEAD is GET's)."""
        return self.access["GET" if method == "HEAD" else method]


def unguarded(routes: Iterable[BaseRoute]) -> list[str]:
    """The routes among ``routes`` that declare no rule (an app with any refuses to start)."""
    return [
        getattr(route, "path", repr(route))
        for route in routes
        if not isinstance(route, GuardedRoute)
    ]
