"""The web UI over plain HTTP: content negotiation (browsers get pages, installers keep the
simple API and devpi-client its JSON on the same URLs), sessions, CSRF and the security headers.
The Chromium tests in tests/web drive the same pages through a real browser."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from pathlib import Path

import pytest

from tests.support.api import call
from tests.support.clients import pip_install
from tests.support.packages import build_wheel
from tests.support.server import CheeseboardServer
from tests.support.upstream import UpstreamServer
from tests.web.helpers import ALICE, ROOT, STAGE, Filled, fill

BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",
}
PIP = {
    "Accept": "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1,"
    " text/html; q=0.01",
    "User-Agent": 'pip/25.0 {"installer":{"name":"pip"}}',
}
OLD_PIP = {"Accept": "text/html", "User-Agent": "pip/20.3.4"}
DEVPI = {"Accept": "application/json"}


def _headers(message: Message) -> dict[str, str]:
    """Lower-cased names; repeated headers (Set-Cookie) joined by newlines."""
    return {name.lower(): "\n".join(message.get_all(name) or []) for name in set(message.keys())}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Browser:
    """urllib with a cookie jar: what a browser sends, without a browser."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        all_headers = {**BROWSER, **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(
            self.base.rstrip("/") + path, data=data, method=method, headers=all_headers
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, _headers(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _headers(error.headers), error.read().decode()

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path)

    def csrf(self, html: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert found, "no CSRF token in the form"
        return found.group(1)

    def login(self, user: str, password: str, next_path: str = "/") -> int:
        _, _, html = self.get("/+web/login?next=" + urllib.parse.quote(next_path))
        status, _headers, _ = self.request(
            "POST",
            "/+web/login",
            {
                "csrf_token": self.csrf(html),
                "username": user,
                "password": password,
                "next": next_path,
            },
        )
        return status


def _get(url: str, headers: dict[str, str]) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return (
                response.status,
                response.headers.get("Content-Type", ""),
                response.read().decode(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Content-Type", ""), error.read().decode()


@pytest.fixture
def filled(mirror_server: CheeseboardServer, tmp_path: Path) -> Filled:
    return fill(mirror_server, tmp_path)


@pytest.fixture(scope="module")
def shared_filled(
    module_mirror_server: CheeseboardServer, tmp_path_factory: pytest.TempPathFactory
) -> Filled:
    """One filled server for the tests that change nothing on it and look at no mirror name
    (the others take a fresh ``filled``: they yank, remove, refresh or count seen names)."""
    return fill(module_mirror_server, tmp_path_factory.mktemp("filled"))


def test_one_url_serves_browsers_installers_and_devpi(shared_filled: Filled) -> None:
    filled = shared_filled
    project = f"{filled.url}{STAGE}/cheesy-widgets/"
    status, kind, body = _get(project, BROWSER)
    assert status == 200 and kind.startswith("text/html")
    assert '<article class="readme">' in body and "Slicing widgets" in body
    status, kind, body = _get(project, PIP)
    assert status == 200 and kind == "application/vnd.pypi.simple.v1+json"
    assert json.loads(body)["name"] == "cheesy-widgets"
    status, kind, body = _get(project, OLD_PIP)
    assert status == 200 and "cheesy_widgets-1.1-py3-none-any.whl" in body
    assert "<article" not in body
    status, kind, body = _get(project.rstrip("/"), DEVPI)
    assert status == 200 and set(json.loads(body)["result"]) == {"1.0", "1.1"}
    # The index URL: a page for people, the simple root for pip -i http://host/alice/dev/.
    status, kind, body = _get(f"{filled.url}{STAGE}/", BROWSER)
    assert status == 200 and "Use this index" in body and "cheesy-widgets" in body
    status, kind, body = _get(f"{filled.url}{STAGE}/", OLD_PIP)
    assert status == 200 and "Use this index" not in body and 'href="' in body
    status, kind, body = _get(filled.url, DEVPI)
    assert status == 200 and "alice" in json.loads(body)["result"]
    # + routes stay the API's even for browsers.
    status, kind, body = _get(f"{filled.url}{STAGE}/+simple/", BROWSER)
    assert status == 200 and "Use this index" not in body
    status, kind, body = _get(f"{filled.url}+api", BROWSER)
    assert status == 200 and kind.startswith("application/json")


def test_pip_installs_with_the_devpi_url_layout(shared_filled: Filled, tmp_path: Path) -> None:
    filled = shared_filled
    done = pip_install(f"{filled.url}{STAGE}/", tmp_path / "target", "cheesy-widgets")
    assert done.returncode == 0, done.stdout + done.stderr


def test_pages_for_users_versions_and_errors(filled: Filled) -> None:
    status, _, body = _get(f"{filled.url}alice", BROWSER)
    assert status == 200 and "alice/dev" in body
    status, _, body = _get(f"{filled.url}{STAGE}/cheesy-widgets/1.0", BROWSER)
    assert status == 200 and 'cheesy-widgets <span class="version">1.0</span>' in body
    assert "cheesy-widgets==1.0" in body  # an older version's install command pins it
    status, kind, body = _get(f"{filled.url}{STAGE}/cheesy-widgets/9.9", BROWSER)
    assert status == 404 and kind.startswith("text/html") and "no version" in body
    status, kind, body = _get(f"{filled.url}nobody", BROWSER)
    assert status == 404 and "no user" in body
    status, kind, body = _get(f"{filled.url}{STAGE}/no-such-project", BROWSER)
    assert status == 404 and kind.startswith("text/html")
    # The mirror's cached projects are listed once seen.
    status, _, body = _get(f"{filled.url}root/pypi/app", BROWSER)
    assert status == 200 and "app-1.0.tar.gz" in body
    status, _, body = _get(f"{filled.url}root/pypi", BROWSER)
    assert status == 200 and ">app</strong>" in body


def test_security_headers_and_escaping(shared_filled: Filled) -> None:
    filled = shared_filled
    browser = Browser(filled.url)
    status, headers, body = browser.get(f"/+search?q={urllib.parse.quote('<script>x</script>')}")
    assert status == 200
    assert "<script>x</script>" not in body and "&lt;script&gt;x&lt;/script&gt;" in body
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"


def test_sign_in_sets_a_safe_cookie_and_wrong_passwords_fail(shared_filled: Filled) -> None:
    filled = shared_filled
    browser = Browser(filled.url)
    assert browser.login("alice", "wrong") == 401
    assert not any(c.name == "cheeseboard_session" for c in browser.jar)
    status, headers, _ = browser.request("GET", "/+web/login")
    csrf = browser.csrf(_)
    status, headers, _ = browser.request(
        "POST",
        "/+web/login",
        {"csrf_token": csrf, "username": ALICE[0], "password": ALICE[1], "next": "//evil.example/"},
    )
    assert status == 303 and headers["location"] == "/"  # no open redirect
    cookie = headers["set-cookie"]
    assert "cheeseboard_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    session = next(c for c in browser.jar if c.name == "cheeseboard_session")
    # The session cookie is not a credential for the API (no CSRF through the API).
    status, _ = call(filled.url, "PATCH", f"/{STAGE}/cheesy-widgets/1.1", {"yanked": True})
    assert status == 401
    request = urllib.request.Request(
        f"{filled.url}{STAGE}/cheesy-widgets/1.1",
        data=b'{"yanked": true}',
        method="PATCH",
        headers={"Cookie": f"cheeseboard_session={session.value}", "Accept": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    refused.value.close()
    assert refused.value.code == 401


def test_forms_need_a_session_and_the_csrf_token(filled: Filled) -> None:
    yank = f"/{STAGE}/cheesy-widgets/1.1/+yank"
    anonymous = Browser(filled.url)
    status, _, body = anonymous.request("POST", yank, {"csrf_token": "x", "reason": "r"})
    assert status == 401 and "sign in" in body.lower()

    browser = Browser(filled.url)
    assert browser.login(*ALICE) == 303
    _, _, page = browser.get(f"/{STAGE}/cheesy-widgets/1.1")
    token = browser.csrf(page)
    status, _, body = browser.request("POST", yank, {"reason": "no token"})
    assert status == 403 and "expired" in body
    status, _, _ = browser.request("POST", yank, {"csrf_token": token + "x", "reason": "bad"})
    assert status == 403
    status, _, body = browser.request(
        "POST", yank, {"csrf_token": token, "reason": "x"}, {"Origin": "https://evil.example"}
    )
    assert status == 403 and "another site" in body
    # Another session's token is refused too (tokens are bound to the session).
    other = Browser(filled.url)
    assert other.login(*ROOT) == 303
    _, _, root_page = other.get("/")
    status, _, _ = browser.request("POST", yank, {"csrf_token": other.csrf(root_page)})
    assert status == 403
    _, data = call(filled.url, "GET", f"/{STAGE}/cheesy-widgets/1.1")
    assert "yanked" not in data["result"], "a refused form changed something"

    status, headers, _ = browser.request("POST", yank, {"csrf_token": token, "reason": "ok"})
    assert status == 303 and headers["location"] == f"/{STAGE}/cheesy-widgets/1.1"
    _, data = call(filled.url, "GET", f"/{STAGE}/cheesy-widgets/1.1")
    assert data["result"]["yanked"] == "ok"
    status, _, _ = browser.request("POST", yank.replace("+yank", "+unyank"), {"csrf_token": token})
    assert status == 303
    _, data = call(filled.url, "GET", f"/{STAGE}/cheesy-widgets/1.1")
    assert "yanked" not in data["result"]

    # Signing out ends the session: the same token no longer works.
    status, _, _ = browser.request("POST", "/+web/logout", {"csrf_token": token})
    assert status == 303
    status, _, _ = browser.request("POST", yank, {"csrf_token": token, "reason": "late"})
    assert status == 401


def test_permissions_are_the_apis_own(filled: Filled) -> None:
    status, _ = call(filled.url, "PUT", "/mallory", {"password": "mallory-pw"}, auth=ROOT)
    assert status == 201
    browser = Browser(filled.url)
    assert browser.login("mallory", "mallory-pw") == 303
    _, _, page = browser.get(f"/{STAGE}/cheesy-widgets/1.1")
    assert "Manage 1.1" not in page  # the form is offered only to who may use it
    token = browser.csrf(page)
    status, _, body = browser.request(
        "POST", f"/{STAGE}/cheesy-widgets/1.1/+delete", {"csrf_token": token}
    )
    assert status == 403
    assert "mallory is not in acl_upload" in body
    status, _ = call(filled.url, "GET", f"/{STAGE}/cheesy-widgets/1.1")
    assert status == 200


def test_refresh_a_mirrored_project_from_the_page(
    filled: Filled, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    status, _, body = _get(f"{filled.url}root/pypi/app", BROWSER)
    assert status == 200 and "app-1.0.tar.gz" in body and "Refresh from upstream" not in body
    html_upstream.add(build_wheel(tmp_path, "app", "2.0"))
    _, _, body = _get(f"{filled.url}root/pypi/app", BROWSER)
    assert "app-2.0" not in body  # cached for mirror_cache_expiry

    browser = Browser(filled.url)
    status, _, _ = browser.request("POST", "/root/pypi/app/+refresh", {"csrf_token": "x"})
    assert status == 401
    assert browser.login(*ALICE) == 303
    _, _, page = browser.get("/root/pypi/app")
    assert "Refresh from upstream" in page
    status, headers, _ = browser.request(
        "POST", "/root/pypi/app/+refresh", {"csrf_token": browser.csrf(page)}
    )
    assert status == 303 and headers["location"] == "/root/pypi/app"
    _, _, body = browser.get("/root/pypi/app")
    assert "Refreshed app from root/pypi." in body
    assert "app-2.0-py3-none-any.whl" in body


def test_search_finds_private_metadata_and_seen_mirror_names(filled: Filled) -> None:
    status, _, body = _get(f"{filled.url}+search?q=soft+cheese", BROWSER)
    assert status == 200 and "brie-tools" in body and "cheesy-widgets" not in body
    status, _, body = _get(f"{filled.url}+search?q=framework+cheeseboard", BROWSER)
    assert "cheesy-widgets" in body  # a classifier
    _, _, body = _get(f"{filled.url}+search?q=app", BROWSER)
    assert "0 results" in body  # upstream's names are not indexed up front
    assert _get(f"{filled.url}root/pypi/+simple/app/", PIP)[0] == 200
    _, _, body = _get(f"{filled.url}+search?q=app", BROWSER)
    assert "1 result " in body and 'href="/root/pypi/app"' in body
    _, _, body = _get(f"{filled.url}+search?q=app&index=alice/dev", BROWSER)
    assert 'href="/root/pypi/app"' in body  # alice/dev inherits root/pypi
    status, _, body = _get(f"{filled.url}+search?q=x&index=nobody/none", BROWSER)
    assert status == 404
    status, _, body = _get(f"{filled.url}+search?q={'x' * 300}", BROWSER)
    assert status == 400


def test_remove_a_version_from_the_page(filled: Filled) -> None:
    browser = Browser(filled.url)
    assert browser.login(*ALICE) == 303
    _, _, page = browser.get(f"/{STAGE}/brie-tools/2.0")
    assert "Remove 2.0" in page
    status, headers, _ = browser.request(
        "POST", f"/{STAGE}/brie-tools/2.0/+delete", {"csrf_token": browser.csrf(page)}
    )
    assert status == 303 and headers["location"] == f"/{STAGE}"
    _, _, body = browser.get(f"/{STAGE}")
    assert "brie-tools 2.0 removed from alice/dev." in body and ">brie-tools<" not in body
    assert _get(f"{filled.url}{STAGE}/+simple/brie-tools/", PIP)[0] == 404
    status, _, body = _get(f"{filled.url}+search?q=brie", BROWSER)
    assert "0 results" in body  # gone from search in the same transaction
