"""Every route x method x identity gets the answer its declared rule promises (http/access.py).

The cases come from the application's own route list, so a new route is tested the moment it
exists: a route without a rule stops the app from starting, and a path parameter this test does
not know how to fill fails here. Identities: anonymous, a wrong password, another user, a token
scoped to another index, the owner and root. A refused identity gets 401 (anonymous: exactly
401, so that clients prompt) or 403 and changes nothing (the server's serial stays); an admitted
one gets past the permission check (no 401/403) and never a 5xx. The same route list drives
a second test: no hostile value in any header a route reads makes it answer 5xx.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from starlette.routing import Route

from cheeseboard.http import access
from cheeseboard.http.access import GuardedRoute
from cheeseboard.http.app import create_app
from cheeseboard.settings import Settings
from tests.support.api import basic, upload_dist
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory

PASSWORDS = {"root": ROOT_PASSWORD, "alice": "alice-secret-1", "bob": "bob-secret-1"}
BROWSER = {"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla/5.0 (test)"}
API = {"Accept": "application/json"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send(
    server: CheeseboardServer,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> Answer:
    """One request, redirects not followed (a redirect is an answer too)."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


@dataclass
class Fixture:
    """The state every case runs against: alice owns alice/dev (with pkg 1.0) and alice/other,
    bob is another user; ``ensure`` puts back whatever an admitted request removed."""

    server: CheeseboardServer
    wheel: Dist
    scoped_token: str = ""
    scoped_token_id: str = ""
    login_tokens: dict[str, str] = field(default_factory=dict)

    def api(self, method: str, path: str, body: object = None, user: str = "root") -> Answer:
        headers = {**API, "Authorization": basic(user, PASSWORDS[user])}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return send(self.server, method, path, headers, data)

    def serial(self) -> int:
        answer = self.api("GET", "/+status")
        assert answer.status == 200, answer
        return int(json.loads(answer.body)["result"]["serial"])

    def ensure(self) -> None:
        for user in ("alice", "bob"):
            answer = self.api("PUT", f"/{user}", {"password": PASSWORDS[user]})
            assert answer.status in (201, 409), answer
        for index in ("alice/dev", "alice/other"):
            answer = self.api("PUT", f"/{index}", {"bases": [], "volatile": True})
            assert answer.status in (200, 409), answer
        status, text = upload_dist(
            self.server.url, "alice/dev", self.wheel, ("alice", PASSWORDS["alice"])
        )
        assert status == 200, text
        answer = self.api("PATCH", "/alice/dev/pkg/1.0", {"yanked": False}, user="alice")
        assert answer.status == 200, answer
        answer = self.api("POST", "/alice/+tokens", {"indexes": ["alice/other"]}, user="alice")
        assert answer.status == 201, answer
        created = json.loads(answer.body)["result"]
        self.scoped_token, self.scoped_token_id = created["token"], created["id"]
        for user in PASSWORDS:
            answer = send(
                self.server,
                "POST",
                "/+login",
                {**API, "Content-Type": "application/json"},
                json.dumps({"user": user, "password": PASSWORDS[user]}).encode(),
            )
            assert answer.status == 200, answer
            self.login_tokens[user] = json.loads(answer.body)["result"]["password"]

    def values(self) -> dict[str, str]:
        """What each path parameter of the app's routes is filled with."""
        sha = self.wheel.sha256
        return {
            "user": "alice",
            "index": "dev",
            "project": "pkg",
            "version": "1.0",
            "filename": self.wheel.filename,
            "h3": sha[:3],
            "h13": sha[3:16],
            "where": "example.org",
            "token_id": self.scoped_token_id,
            "name": "style.css",
            "action": "yank",
            "path": "index.html",
            "moment": "2026-01-01T00:00:00Z",  # +at/<time>/ URLs
            "id": "999999",  # a block id (none has it: admitted callers get 404)
        }

    def api_credentials(self, identity: str) -> dict[str, str]:
        """The Authorization header each identity sends to the APIs."""
        users = {access.OTHER_USER: "bob", access.OWNER: "alice", access.ROOT: "root"}
        if identity == access.ANONYMOUS:
            return {}
        if identity == access.WRONG_PASSWORD:
            return {"Authorization": basic("alice", "not-the-password")}
        if identity == access.SCOPED_ELSEWHERE:
            return {"Authorization": basic("__token__", self.scoped_token)}
        user = users[identity]
        return {"Authorization": basic(user, PASSWORDS[user])}

    def session_cookie(self, identity: str) -> str | None:
        """The session cookie each identity brings to the web UI."""
        users = {access.OTHER_USER: "bob", access.OWNER: "alice", access.ROOT: "root"}
        if identity == access.ANONYMOUS:
            return None
        if identity == access.WRONG_PASSWORD:
            return "forged.session.value"
        if identity == access.SCOPED_ELSEWHERE:
            return self.scoped_token
        return self.login_tokens[users[identity]]

    def web_form(self, identity: str) -> tuple[dict[str, str], str]:
        """Cookies and CSRF token with which ``identity``'s browser submits a form."""
        cookies = {}
        session = self.session_cookie(identity)
        if session is not None:
            cookies["cheeseboard_session"] = session
        page = send(self.server, "GET", "/", {**BROWSER, **_cookie_header(cookies)})
        found = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
        if found is None:  # signed out: the sign-in form hands out a double-submit token
            page = send(self.server, "GET", "/+web/login", {**BROWSER, **_cookie_header(cookies)})
            set_cookie = page.headers.get("set-cookie", "")
            login = re.search(r"cheeseboard_login=([^;]+)", set_cookie)
            assert login is not None, page
            cookies["cheeseboard_login"] = login.group(1)
            found = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
        assert found is not None, page
        return cookies, found.group(1).decode()


def _cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    if not cookies:
        return {}
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


@dataclass(frozen=True)
class Case:
    route: GuardedRoute
    method: str

    @property
    def web(self) -> bool:
        """Routes of the web UI identify callers by their session cookie, the APIs by
        credentials in headers."""
        return str(self.route.endpoint.__module__).startswith("cheeseboard.http.ui.")

    def __str__(self) -> str:
        return f"{self.method} {self.route.path}"


def _cases() -> list[Case]:
    app = create_app(Settings(datadir=Path("/nonexistent")))
    cases = []
    for route in app.routes:
        assert isinstance(route, GuardedRoute), f"{route} declares no access rule"
        for method in route.access:
            cases.append(Case(route, method))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    base = tmp_path_factory.mktemp("permissions")
    factory = ServerFactory(base)
    # Wrong passwords are sent on purpose, many times: the sign-in limit is not under test here.
    server = factory.start("http://127.0.0.1:9/simple/", "--login-attempts", "1000000")
    wheel = build_wheel(base, "pkg", "1.0")
    state = Fixture(server, wheel)
    state.ensure()
    try:
        yield state
    finally:
        factory.stop_all()


def _request(fixture: Fixture, case: Case, identity: str) -> Answer:
    path = case.route.path_format.format(**fixture.values())
    if case.web:
        if case.method == "GET":
            cookies = {}
            session = fixture.session_cookie(identity)
            if session is not None:
                cookies["cheeseboard_session"] = session
            return send(fixture.server, "GET", path, {**BROWSER, **_cookie_header(cookies)})
        cookies, csrf = fixture.web_form(identity)
        form = {"csrf_token": csrf}
        if case.route.access[case.method] is access.SIGN_IN:
            form.update(username="alice", password=PASSWORDS["alice"])
        headers = {
            **BROWSER,
            **_cookie_header(cookies),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return send(fixture.server, case.method, path, headers, urlencode(form).encode())
    headers = {**API, **fixture.api_credentials(identity)}
    body = None
    if case.method not in ("GET", "DELETE"):
        # Admitted: nothing to do (a 4xx about the body, not 401/403). Refused: a body that is
        # not even JSON, so a route that reads it before checking the caller answers 400.
        admitted = identity in case.route.access[case.method].admits
        body = b"" if admitted else b'{"not json'
        headers["Content-Type"] = "application/json" if case.method != "POST" else "text/plain"
    return send(fixture.server, case.method, path, headers, body)


def test_every_route_declares_a_rule_for_each_method() -> None:
    """The app's route list is fully covered, and ``unguarded`` names a route without a rule."""
    assert len(CASES) > 40
    assert access.unguarded([Route("/x", lambda r: None)]) == ["/x"]
    known = set(access.RULES)
    assert all(case.route.access[case.method] in known for case in CASES)


def test_docs_state_the_rules_the_code_declares() -> None:
    """docs/security.md's table says, for each rule, exactly which identities it admits."""
    text = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 + len(access.IDENTITIES) and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2:]
    assert set(rows) == {rule.name for rule in access.RULES}
    for rule in access.RULES:
        cells = zip(access.IDENTITIES, rows[rule.name], strict=True)
        documented = {identity for identity, cell in cells if cell == "yes"}
        assert documented == rule.admits, rule.name


@pytest.mark.parametrize("case", CASES, ids=str)
def test_route_answers_each_identity_as_its_rule_says(fixture: Fixture, case: Case) -> None:
    """Refused identities get 401/403 and change nothing; admitted ones get past the check."""
    rule = case.route.access[case.method]
    refused = [i for i in access.IDENTITIES if i not in rule.admits]
    admitted = [i for i in access.IDENTITIES if i in rule.admits]
    for identity in refused:
        before = fixture.serial()
        answer = _request(fixture, case, identity)
        expected = {401} if identity == access.ANONYMOUS else {401, 403}
        assert answer.status in expected, (
            f"{case} as {identity} ({rule.name}: {rule.who}) answered {answer.status}: "
            f"{answer.body[:300]!r}"
        )
        assert fixture.serial() == before, f"{case} as {identity} changed data though refused"
    for identity in admitted:
        answer = _request(fixture, case, identity)
        allowed_401 = rule is access.SIGN_IN  # the body's credentials decide there
        refusals = {403} if allowed_401 else {401, 403}
        assert answer.status not in refusals and answer.status < 500, (
            f"{case} as {identity} ({rule.name}: {rule.who}) answered {answer.status}: "
            f"{answer.body[:300]!r}"
        )
        if case.method not in ("GET", "HEAD"):
            fixture.ensure()


# Every header a route or middleware reads, with values a parser may choke on: bytes outside
# ASCII (a header is bytes, read as Latin-1) and syntax junk. Found this way: non-ASCII in a
# credential, session cookie or CSRF field was a 500 (core/constant_time.py).
HOSTILE_VALUES = ["\u00e9\u00ff\u0080 \u00e9", 'a=;q=x, ,;;"\\ =*;q=-1e999', ""]
READ_HEADERS = [
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "If-None-Match",
    "If-Modified-Since",
    "If-Range",
    "Range",
    "Cookie",
    "Origin",
    "Referer",
    "User-Agent",
    "Content-Type",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Outside-Url",
    "X-Devpi-Auth",
    "Authorization",
]


# Every query parameter a route reads (and the flags some writes take), with values that are
# not UTF-8, NUL, lone surrogates, out of range, or too long.
_JUNK = "%FF%FE%C3%A9%00%ED%A0%80"
HOSTILE_QUERIES = [
    "&".join(
        f"{name}={_JUNK}"
        for name in (
            "next",
            "q",
            "page",
            "index",
            "format",
            "cli",
            "cli_state",
            "state",
            "code",
            "user",
            "token",
            "actor",
            "action",
            "force",
            "no_projects",
            "ignore_bases",
        )
    )
    + "&after=99999999999999999999999&limit=-5&error_on_noop",
    "q=" + "a" * 10_000 + "&page=" + "9" * 5_000 + "&after=" + "9" * 5_000 + "&next=//x.example",
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_route_survives_hostile_header_values(fixture: Fixture, case: Case) -> None:
    """No header value or query string makes any route answer 5xx: reads as root with one
    hostile header (or query) at a time, writes refused (anonymous) and admitted (root) with
    all the headers at once and each query."""
    path = case.route.path_format.format(**fixture.values())
    root = fixture.api_credentials(access.ROOT)
    failures = []
    if case.method in ("GET", "HEAD"):
        base = {**(BROWSER if case.web else API), **root}
        for name in READ_HEADERS:
            for value in HOSTILE_VALUES:
                answer = send(fixture.server, case.method, path, {**base, name: value})
                if answer.status >= 500:
                    failures.append(f"{name}: {value!r} -> {answer.status} {answer.body[:200]!r}")
        for query in HOSTILE_QUERIES:
            answer = send(fixture.server, case.method, f"{path}?{query}", base)
            if answer.status >= 500:
                failures.append(f"?{query[:60]} -> {answer.status} {answer.body[:200]!r}")
    else:
        for value, query in zip(HOSTILE_VALUES[:2], HOSTILE_QUERIES, strict=True):
            hostile = {name: value for name in READ_HEADERS}
            for who in ({}, root):
                headers = {**hostile, **who}
                answer = send(fixture.server, case.method, f"{path}?{query}", headers, b'{"x')
                if answer.status >= 500:
                    failures.append(f"all, {who or 'anonymous'}: {value!r} -> {answer.status}")
        fixture.ensure()
    assert not failures, f"{case}: " + "; ".join(failures)


# What a path parameter may hold on the wire: bytes that are not UTF-8 once decoded, NUL, a
# lone surrogate, traversal, Unicode look-alikes, a name far beyond any limit.
HOSTILE_SEGMENTS = [
    "%FF%FE",
    "%C3%A9t%C3%A9",
    "%00",
    "%ED%A0%80",
    "..",
    "%2E%2E%2F%2E%2E",
    "%EF%BC%8E%EF%BC%8E",
    "x" * 3000,
]


def _parameters(case: Case) -> list[str]:
    return re.findall(r"{(\w+)(?::\w+)?}", case.route.path)


@pytest.mark.parametrize("case", [c for c in CASES if _parameters(c)], ids=str)
def test_route_survives_hostile_path_parameters(fixture: Fixture, case: Case) -> None:
    """No value of any path parameter makes any route answer 5xx: each parameter in turn
    takes each hostile value, as root (the furthest a request gets) and, for writes, as an
    anonymous caller too."""
    params = _parameters(case)
    values = fixture.values()
    root = fixture.api_credentials(access.ROOT)
    base = {**(BROWSER if case.web else API)}
    failures = []
    for param in params:
        for segment in HOSTILE_SEGMENTS:
            path = case.route.path_format.format(**{**values, param: segment})
            for who in (root,) if case.method in ("GET", "HEAD") else ({}, root):
                body = None if case.method in ("GET", "HEAD", "DELETE") else b'{"x'
                answer = send(fixture.server, case.method, path, {**base, **who}, body)
                if answer.status >= 500:
                    failures.append(
                        f"{param}={segment[:20]}: {answer.status} {answer.body[:200]!r}"
                    )
    if case.method not in ("GET", "HEAD"):
        fixture.ensure()
    assert not failures, f"{case}: " + "; ".join(failures)


# JSON bodies a write route may be handed instead of what it expects: other types at the top,
# the right shape with wrong types inside, text a decoder chokes on, numbers out of range, depth.
HOSTILE_BODIES = [
    b"[]",
    b"null",
    b"12",
    b'"text"',
    b'{"password": 1, "bases": {"a": 1}, "acl_upload": 7, "volatile": "maybe", "type": []}',
    b'{"indexes": "alice/dev", "scopes": 3, "expires": "never", "yanked": "no"}',
    b'{"a\\u0000b": "\\ud800", "title": "\\u0000", "email": ["x"], "groups": {"x": 1}}',
    b'{"expires": 1e400, "size": -1, "limit": 99999999999999999999999999}',
    b"[" * 5000 + b"]" * 5000,
    b'["title=\\ud800", "bases=\\u0000", 5, null, {"x": []}]',
    b'{"host": "\\ud800", "platform": "\\udfff", "testenvs": {"py\\ud800": {"test": [{}]}}}',
]


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.method in ("PUT", "PATCH", "POST") and not c.web], ids=str
)
def test_write_route_survives_hostile_json_bodies(fixture: Fixture, case: Case) -> None:
    """No JSON body makes any write route answer 5xx, as root (the furthest a body gets), nor
    leaves anything stored that a later read fails on: the index, project and version, as
    JSON, as the simple page and as the browser's pages, are read after each body."""
    path = case.route.path_format.format(**fixture.values())
    root = fixture.api_credentials(access.ROOT)
    headers = {**API, **root, "Content-Type": "application/json"}
    reads = [
        (p, accept)
        for p in ("/alice/dev", "/alice/dev/pkg", "/alice/dev/pkg/1.0", "/alice", "/")
        for accept in (API, BROWSER)
    ]
    reads.append(("/alice/dev/+simple/pkg/", {"Accept": "application/vnd.pypi.simple.v1+json"}))
    failures = []
    for body in HOSTILE_BODIES:
        answer = send(fixture.server, case.method, path, headers, body)
        if answer.status >= 500:
            failures.append(f"{body[:60]!r}: {answer.status} {answer.body[:200]!r}")
        for read_path, accept in reads:
            read = send(fixture.server, "GET", read_path, {**accept, **root})
            if read.status >= 500:
                failures.append(f"{body[:60]!r}, then GET {read_path}: {read.status}")
    fixture.ensure()
    assert not failures, f"{case}: " + "; ".join(failures)
