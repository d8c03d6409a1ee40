"""Failed sign-ins are limited per user and per address (429 with Retry-After), through every
door: devpi's /+login, HTTP Basic on uploads and API calls, and the web UI's sign-in form.
Credentials already verified keep working, and no secret appears in the server's log."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.api import call, twine_upload
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, ServerFactory, server_command
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-long-secret-1")


def _status_and_retry(url: str, user: str, password: str) -> tuple[int, str | None]:
    request = urllib.request.Request(
        url + "+login",
        data=f'{{"user": "{user}", "password": "{password}"}}'.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Retry-After")


def test_failed_logins_are_limited_per_user_and_address(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    server = server_factory.start(
        html_upstream.simple_url, "--login-attempts", "3", "--login-window", "120"
    )
    assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert call(server.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
    # alice's CI job has verified its credentials before the attack starts.
    status, api = call(server.url, "GET", "/alice/dev/+api", auth=ALICE)
    assert status == 200 and api["result"]["authstatus"][0] == "ok"

    for _ in range(3):
        assert _status_and_retry(server.url, "alice", "guess")[0] == 401
    status, retry_after = _status_and_retry(server.url, "alice", "guess")
    assert status == 429 and retry_after is not None and 100 <= int(retry_after) <= 120
    # Blocked: even the right password is refused for now, through every door.
    assert _status_and_retry(server.url, *ALICE)[0] == 429
    wheel = build_wheel(tmp_path, "p", "1.0")
    done = twine_upload(f"{server.url}alice/dev/", "alice", "another-guess", wheel.path)
    assert done.returncode != 0 and "429" in done.stdout + done.stderr
    # ... but credentials verified before keep working: no lockout of running jobs.
    status, api = call(server.url, "GET", "/alice/dev/+api", auth=ALICE)
    assert status == 200 and api["result"]["authstatus"][0] == "ok"
    done = twine_upload(f"{server.url}alice/dev/", *ALICE, wheel.path)
    assert done.returncode == 0, done.stdout + done.stderr

    # The address (127.0.0.1) has failed 4 times too: other names are refused from it.
    status, _ = _status_and_retry(server.url, "root", "wrong")
    assert status == 429

    log = server.log()
    assert "429" in log
    for secret in (ALICE[1], "guess", "another-guess", ROOT_PASSWORD):
        assert secret not in log, f"{secret!r} appears in the server log"


def test_settings_are_checked(server_factory: ServerFactory, html_upstream: UpstreamServer) -> None:
    datadir = server_factory.init(html_upstream.simple_url, "bad")
    done = subprocess.run(
        server_command("serve", "--datadir", str(datadir), "--login-attempts", "0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "login-attempts" in done.stderr


def test_web_sign_in_form_is_limited_too(
    server_factory: ServerFactory, html_upstream: UpstreamServer
) -> None:
    """The browser's form goes through the same limit: a 429 page with Retry-After, no cookie."""
    from tests.integration.test_web_pages import Browser

    server = server_factory.start(
        html_upstream.simple_url, "--login-attempts", "2", "--login-window", "60"
    )
    assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    browser = Browser(server.url)
    assert browser.login("alice", "guess-1") == 401
    assert browser.login("alice", "guess-2") == 401
    _, _, form = browser.get("/+web/login")
    status, headers, page = browser.request(
        "POST",
        "/+web/login",
        {"csrf_token": browser.csrf(form), "username": ALICE[0], "password": ALICE[1]},
    )
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 60
    assert "text/html" in headers["content-type"] and "<html" in page.lower()
    assert "www-authenticate" not in headers  # no Basic-auth dialog in the browser
    assert not any(c.name == "cheeseboard_session" for c in browser.jar)
    log = server.log()
    assert "guess-1" not in log and ALICE[1] not in log
