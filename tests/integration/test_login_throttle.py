"""Failed sign-ins are limited per (user, client address) and per address (429 with Retry-After),
through every door: devpi's /+login, HTTP Basic on uploads and API calls, and the web UI's
sign-in form. Guessing a name never locks its owner out of their own address; behind a trusted
reverse proxy the address is the one it forwards. Credentials already verified keep working,
and no secret appears in the server's log."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.api import basic, call, status_of, twine_upload
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, ServerFactory, server_command
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-long-secret-1")


def _status_and_retry(
    url: str, user: str, password: str, client: str | None = None
) -> tuple[int, str | None]:
    """``POST /+login``; ``client``: the address a trusted proxy says the request came from."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if client is not None:
        headers["X-Forwarded-For"] = client
    request = urllib.request.Request(
        url + "+login",
        data=json.dumps({"user": user, "password": password}).encode(),
        method="POST",
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Retry-After")


def _basic_status(url: str, path: str, user: str, password: str, client: str) -> int:
    """A Basic-auth API call from ``client`` (through the trusted proxy)."""
    request = urllib.request.Request(
        url.rstrip("/") + path,
        headers={"Authorization": basic(user, password), "X-Forwarded-For": client},
    )
    return status_of(request)


ATTACKER = "203.0.113.9"
OWNER = "198.51.100.7"


def test_failed_logins_are_limited_per_user_and_address(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """Guesses block that name from the guessing address only, through every door; the owner
    signs in from their own address, and credentials verified before keep working."""
    server = server_factory.start(
        html_upstream.simple_url,
        "--login-attempts",
        "3",
        "--login-window",
        "120",
        "--trusted-proxies",
        "127.0.0.1",  # the tests' requests stand for a reverse proxy's
    )
    assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert call(server.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
    # alice's CI job has verified its credentials before the attack starts.
    status, api = call(server.url, "GET", "/alice/dev/+api", auth=ALICE)
    assert status == 200 and api["result"]["authstatus"][0] == "ok"

    for _ in range(3):
        assert _status_and_retry(server.url, "alice", "guess", ATTACKER)[0] == 401
    status, retry_after = _status_and_retry(server.url, "alice", "guess", ATTACKER)
    assert status == 429 and retry_after is not None and 100 <= int(retry_after) <= 120
    # Blocked from the attacker's address: even the right password, through every door.
    assert _status_and_retry(server.url, *ALICE, ATTACKER)[0] == 429
    assert _basic_status(server.url, "/alice/+tokens", "alice", "another-guess", ATTACKER) == 429
    # The owner, from their own address, is not locked out (nor is root, guessed or not).
    assert _status_and_retry(server.url, *ALICE, OWNER)[0] == 200
    assert _basic_status(server.url, "/alice/+tokens", *ALICE, OWNER) == 200
    for _ in range(3):
        assert _status_and_retry(server.url, "root", "wrong", ATTACKER)[0] == 401
    assert _status_and_retry(server.url, "root", "wrong", ATTACKER)[0] == 429
    assert _status_and_retry(server.url, *ROOT, OWNER)[0] == 200
    # Credentials verified before keep working: no lockout of running jobs.
    status, api = call(server.url, "GET", "/alice/dev/+api", auth=ALICE)
    assert status == 200 and api["result"]["authstatus"][0] == "ok"
    wheel = build_wheel(tmp_path, "p", "1.0")
    done = twine_upload(f"{server.url}alice/dev/", *ALICE, wheel.path)
    assert done.returncode == 0, done.stdout + done.stderr

    # The attacker's address has 6 failures; spraying more names stops at 5 x 3 = 15.
    for number in range(9):
        assert _status_and_retry(server.url, f"name{number}", "pw", ATTACKER)[0] == 401
    status, _ = _status_and_retry(server.url, "somebody-else", "pw", ATTACKER)
    assert status == 429
    assert _status_and_retry(server.url, "somebody-else", "pw", OWNER)[0] == 401

    log = server.log()
    assert "429" in log
    for secret in (ALICE[1], "guess", "another-guess", ROOT_PASSWORD):
        assert secret not in log, f"{secret!r} appears in the server log"


def test_forwarded_for_counts_only_from_a_trusted_proxy(
    server_factory: ServerFactory, html_upstream: UpstreamServer
) -> None:
    """Without --trusted-proxies a client cannot dodge the limit by naming another address."""
    server = server_factory.start(html_upstream.simple_url, "--login-attempts", "2")
    assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert _status_and_retry(server.url, "alice", "guess-1", "10.0.0.1")[0] == 401
    assert _status_and_retry(server.url, "alice", "guess-2", "10.0.0.2")[0] == 401
    assert _status_and_retry(server.url, "alice", "guess-3", "10.0.0.3")[0] == 429


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
