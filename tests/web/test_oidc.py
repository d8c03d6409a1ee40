"""Single sign-on in real headless Chromium against a real OpenID Connect provider process
(``oidc-provider-mock``): the login page's button, the provider's own login page, and back
signed in under the name the claims give and with the groups they name; with auto-creation
off, a clear refusal and no user.
``cheeseboard login --sso`` ends with the client holding a working token. A forged, a
wrong-audience and an expired ID token and a replayed callback are refused in the browser too,
through the test's own provider (the mock signs only valid tokens); every other refusal is in
tests/integration/test_oidc_signin.py."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from tests.support.api import call
from tests.support.client_cli import SCRIPT, Cli, clean_env
from tests.support.oidc import mock_provider, own_provider, write_config
from tests.support.server import ROOT_PASSWORD, ServerFactory
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.browser
ROOT = ("root", ROOT_PASSWORD)
ERIN = {"sub": "erin-sub", "preferred_username": "erin", "groups": ["devs"]}


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[str]:
    with mock_provider(tmp_path, ERIN) as url:
        yield url


def _sign_in_at_provider(page: Any, server_url: str) -> None:
    page.goto(f"{server_url.rstrip('/')}/+web/login")
    button = page.locator("#oidc-sign-in")
    assert button.inner_text().strip() == "Sign in with Test IdP"
    button.click()
    page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))  # the provider's own page
    page.get_by_role("button", name="erin-sub").click()  # its predefined user


def test_sign_in_through_the_provider_creates_the_user(
    page: Any,
    issuer: str,
    server_factory: ServerFactory,
    html_upstream: UpstreamServer,
    tmp_path: Path,
    artifacts: Path,
) -> None:
    config = write_config(tmp_path / "oidc.yaml", issuer, auto_create=True)
    server = server_factory.start(html_upstream.simple_url, "--config", str(config))
    _sign_in_at_provider(page, server.url)
    page.wait_for_url(server.url)
    assert page.locator(".account .who").inner_text().strip() == "erin"
    assert "Signed in as erin." in page.content()
    page.screenshot(path=str(artifacts / "oidc-signed-in.png"))
    status, user = call(server.url, "GET", "/erin")
    assert status == 200, user
    status, log = call(server.url, "GET", "/+audit?action=user-create", auth=ROOT)
    assert [(e["actor"], e["target"], e["detail"]) for e in log["result"]] == [
        ("erin", "erin", {"via": "oidc"})
    ]
    # The provider's groups count in this session: erin reads an index only "devs" may read.
    private = {"bases": "", "acl_read": [":group:devs"]}
    assert call(server.url, "PUT", "/root/devs-only", private, auth=ROOT)[0] == 200
    assert page.goto(f"{server.url}root/devs-only").status == 200
    assert page.locator("h1").first.inner_text().startswith("root/devs-only")
    groups = [c for c in page.context.cookies() if c["name"] == "cheeseboard_groups"]
    assert groups and groups[0]["httpOnly"]
    page.context.clear_cookies(name="cheeseboard_groups")  # the same session without them
    assert page.goto(f"{server.url}root/devs-only").status in (403, 404)
    page.context.add_cookies(groups)
    page.goto(server.url)
    # The session is a normal one: signing out works as after a password sign-in.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server.url)
    assert page.locator(".account .who").count() == 0


def test_without_auto_creation_the_browser_sees_why(
    page: Any,
    issuer: str,
    server_factory: ServerFactory,
    html_upstream: UpstreamServer,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "oidc.yaml", issuer, auto_create=False)
    server = server_factory.start(html_upstream.simple_url, "--config", str(config))
    _sign_in_at_provider(page, server.url)
    page.wait_for_url(re.compile(r".*/\+web/oidc/callback.*"))
    assert page.locator("h1").inner_text() == "Sign-in refused"
    reason = page.locator("#oidc-reason").inner_text()
    assert "there is no user 'erin' on this server" in reason
    assert page.locator(".account .who").count() == 0
    assert not [c for c in page.context.cookies() if c["name"] == "cheeseboard_session"]
    assert call(server.url, "GET", "/erin")[0] == 404
    status, log = call(server.url, "GET", "/+audit?action=login-failed", auth=ROOT)
    assert status == 200
    assert [e["detail"]["via"] for e in log["result"]] == ["oidc"]


def test_cli_login_through_the_browser_stores_a_working_token(
    page: Any,
    issuer: str,
    server_factory: ServerFactory,
    html_upstream: UpstreamServer,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "oidc.yaml", issuer, auto_create=True)
    server = server_factory.start(html_upstream.simple_url, "--config", str(config))
    cli = Cli(tmp_path / "client")
    cli.ok("use", server.url)
    process = subprocess.Popen(
        [str(SCRIPT), "login", "--sso", "--no-browser", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=clean_env(tmp_path / "client"),
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        url = line.split("sign in through your browser: ", 1)[1].strip()
        page.goto(url)
        page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))
        page.get_by_role("button", name="erin-sub").click()
        page.wait_for_url(re.compile(r"http://127\.0\.0\.1:\d+/callback.*"))
        assert "the command line has its token" in page.locator("#done").inner_text()
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "logged in as erin" in out
    # The browser got no web session: the token went to the command line only.
    assert not [c for c in page.context.cookies() if c["name"] == "cheeseboard_session"]
    cli.ok("user", "-m", "erin", "email=erin@example.com")  # needs erin's own credentials
    status, user = call(server.url, "GET", "/erin", auth=ROOT)
    assert status == 200 and user["result"]["email"] == "erin@example.com", user
    status, log = call(server.url, "GET", "/+audit?action=login", auth=ROOT)
    assert status == 200
    assert [(e["actor"], e["detail"]["cli"]) for e in log["result"]] == [("erin", True)]


def _refused_in_browser(page: Any, server_url: str) -> str:
    """Click the sign-in button (the test's provider answers at once) and return the reason the
    refusal page shows; no session may be set."""
    page.goto(f"{server_url.rstrip('/')}/+web/login")
    page.locator("#oidc-sign-in").click()
    page.wait_for_url(re.compile(r".*/\+web/oidc/callback.*"))
    assert page.locator("h1").inner_text() == "Sign-in refused"
    assert not [c for c in page.context.cookies() if c["name"] == "cheeseboard_session"]
    assert page.locator(".account .who").count() == 0
    return str(page.locator("#oidc-reason").inner_text())


def test_forged_wrong_audience_expired_and_replayed_are_refused_in_the_browser(
    page: Any, server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """The browser goes through the whole redirect flow; the provider (the test's own, since
    the mock signs only valid tokens) answers with a forged, a wrong-audience and an expired
    ID token, and finally a valid one whose callback the browser then loads again."""
    with own_provider() as provider:
        config = write_config(tmp_path / "oidc.yaml", provider.issuer, auto_create=True)
        server = server_factory.start(html_upstream.simple_url, "--config", str(config))
        stranger = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
        cases = {
            "signature is not valid": lambda nonce: provider.sign(provider.claims(nonce), stranger),
            "another audience": lambda nonce: provider.sign(provider.claims(nonce, aud="other")),
            "expired": lambda nonce: provider.sign(
                provider.claims(nonce, iat=int(time.time()) - 900, exp=int(time.time()) - 600)
            ),
        }
        for words, forge in cases.items():
            provider.forge = forge
            reason = _refused_in_browser(page, server.url)
            assert words in reason, (words, reason)
        assert call(server.url, "GET", "/dave")[0] == 404  # nobody was created
        # A valid sign-in, then its callback once more with the same flow cookie (a URL and
        # cookie copied out of the browser): the state is used up.
        provider.forge = lambda nonce: provider.sign(provider.claims(nonce))
        seen: list[tuple[str, str | None]] = []
        page.on("response", lambda r: seen.append((r.url, r.header_value("set-cookie"))))
        page.goto(f"{server.url.rstrip('/')}/+web/login")
        page.locator("#oidc-sign-in").click()
        page.wait_for_url(server.url.rstrip("/") + "/")
        assert page.locator(".account .who").inner_text().strip() == "dave"
        callback = [url for url, _ in seen if "/+web/oidc/callback" in url][-1]
        flow = [c for url, c in seen if "/+web/oidc/login" in url and c][-1]
        name, _, rest = flow.partition("=")
        page.context.clear_cookies()
        page.context.add_cookies([{"name": name, "value": rest.split(";")[0], "url": server.url}])
        page.goto(callback)
        assert page.locator("h1").inner_text() == "Sign-in refused"
        assert "replayed" in page.locator("#oidc-reason").inner_text()
        assert page.locator(".account .who").count() == 0
