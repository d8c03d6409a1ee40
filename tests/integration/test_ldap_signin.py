"""LDAP sign-in (issue 24) end to end: a real OpenLDAP (tests/support/slapd.py) and a real
server configured with an ``ldap:`` section in its ``--config`` file (bind-and-search, group
search, ``cache_seconds: 2``, ``--login-attempts 4``).

Directory users sign in with no local account (the first sign-in makes one, ``auth_source``
ldap); their directory groups grant ``:group:NAME``; wrong passwords, a disabled account and a
filter injection get 401 and count toward the throttle; a group change in the directory takes
effect after ``cache_seconds``; a directory that is down gives 503 to its users only, while
local root signs in as before. Uploads go through real twine.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.api import call, status_of, twine_upload
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.slapd import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    ENABLED_USERS,
    GROUP_SEARCH,
    PASSWORDS,
    SUFFIX,
    Slapd,
    seeded_slapd,
)
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", PASSWORDS["alice"])
BOB = ("bob", PASSWORDS["bob"])
CACHE = 2.0


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with seeded_slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


@pytest.fixture(scope="module")
def server(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    base = tmp_path_factory.mktemp("ldap-server")
    secret = base / "bind-password"
    secret.write_text(ADMIN_PASSWORD + "\n")
    config = base / "config.yaml"
    ldap = {
        "url": slapd.url,
        "bind_dn": ADMIN_DN,
        "bind_password_file": str(secret),
        "user_search": {"base": f"ou=people,{SUFFIX}", "filter": ENABLED_USERS, "scope": "one"},
        "group_search": GROUP_SEARCH,
        "timeout": 2,
        "cache_seconds": CACHE,
    }
    config.write_text(json.dumps({"ldap": ldap}))  # JSON is YAML
    factory = ServerFactory(base)
    with UpstreamServer(mode="html") as upstream:
        try:
            started = factory.start(
                upstream.simple_url, "--config", str(config), "--login-attempts", "4"
            )
            for index, acl in (("devsonly", ":group:devs"), ("opsonly", ":group:ops")):
                body = {"bases": "", "acl_upload": [acl], "acl_read": [acl]}
                status, answer = call(started.url, "PUT", f"/root/{index}", body, auth=ROOT)
                assert status == 200, answer
            yield started
        finally:
            factory.stop_all()


def _login(server: CheeseboardServer, user: str, password: str) -> int:
    request = urllib.request.Request(
        server.url + "+login",
        data=json.dumps({"user": user, "password": password}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    return status_of(request)


def _audit(server: CheeseboardServer, action: str) -> list[dict[str, object]]:
    status, body = call(server.url, "GET", f"/+audit?action={action}&limit=1000", auth=ROOT)
    assert status == 200, body
    entries: list[dict[str, object]] = body["result"]
    return entries


def test_a_directory_user_signs_in_and_its_group_grants_upload(
    server: CheeseboardServer, tmp_path: Path
) -> None:
    """alice has no local account: her first sign-in makes one (audited, with the login); her
    directory group devs lets her upload to an acl_upload=:group:devs index with twine; bob
    (ops) is refused there and reads it as a private index (404)."""
    assert call(server.url, "GET", "/alice", auth=ROOT)[0] == 404
    assert _login(server, *ALICE) == 200
    assert call(server.url, "GET", "/alice", auth=ROOT)[0] == 200
    created = [e for e in _audit(server, "user-create") if e["target"] == "alice"]
    assert created and created[0]["detail"] == {"via": "ldap"}
    assert any(e["actor"] == "alice" for e in _audit(server, "login"))

    wheel = build_wheel(tmp_path, "cbldapdemo", "1.0")
    uploaded = twine_upload(f"{server.url}root/devsonly/", *ALICE, wheel.path)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    refused = twine_upload(f"{server.url}root/devsonly/", *BOB, wheel.path)
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    assert call(server.url, "GET", "/root/devsonly", auth=BOB)[0] == 404
    assert call(server.url, "GET", "/root/opsonly", auth=BOB)[0] == 200


def test_wrong_password_disabled_account_and_injection_are_refused(
    server: CheeseboardServer,
) -> None:
    """401 each, recorded as failed sign-ins; the injected name finds no entry to bind as."""
    assert _login(server, "alice", "not-her-password") == 401
    assert _login(server, "carol", PASSWORDS["carol"]) == 401  # disabled: filtered out
    assert _login(server, "*)(uid=*", PASSWORDS["alice"]) == 401
    assert _login(server, "*", PASSWORDS["alice"]) == 401
    failed = {str(e["target"]) for e in _audit(server, "login-failed")}
    assert {"alice", "carol", "*)(uid=*"} <= failed


def test_wrong_passwords_count_toward_the_login_throttle(server: CheeseboardServer) -> None:
    """--login-attempts 4: guesses at a directory user's password are throttled like any."""
    statuses = [_login(server, "bob", f"guess-{n}") for n in range(6)]
    assert statuses[:4] == [401] * 4, statuses
    assert statuses[4:] == [429, 429], statuses


def test_a_group_change_in_the_directory_takes_effect_after_cache_seconds(
    server: CheeseboardServer, slapd: Slapd
) -> None:
    """Adding alice to ops: her cached check keeps the old groups until cache_seconds pass."""
    assert call(server.url, "GET", "/root/opsonly", auth=ALICE)[0] == 404
    slapd.modify(
        f"dn: cn=ops,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\n"
        f"member: uid=alice,ou=people,{SUFFIX}\n"
    )
    assert call(server.url, "GET", "/root/opsonly", auth=ALICE)[0] == 404  # cached
    time.sleep(CACHE + 0.5)
    assert call(server.url, "GET", "/root/opsonly", auth=ALICE)[0] == 200


def test_a_directory_that_is_down_gives_503_to_its_users_only(
    server: CheeseboardServer, slapd: Slapd
) -> None:
    """slapd stopped: alice (once her cached check expires) gets 503; local root signs in."""
    time.sleep(CACHE + 0.5)
    slapd.stop()
    try:
        status, body = call(server.url, "GET", "/root/devsonly", auth=ALICE)
        assert status == 503, body
        assert "LDAP" in body["message"], body
        assert _login(server, *ROOT) == 200
        assert call(server.url, "GET", "/root/devsonly", auth=ROOT)[0] == 200
    finally:
        slapd.start()
    assert _login(server, *ALICE) == 200


def test_direct_bind_on_two_workers_with_concurrent_first_sign_ins(
    slapd: Slapd, tmp_path: Path
) -> None:
    """``user_template`` (no service account) with ``user_filter``: bob's first sign-ins arrive
    at once on two workers and all succeed (one account made); carol (disabled) is refused."""
    config = tmp_path / "config.yaml"
    ldap = {
        "url": slapd.url,
        "user_template": f"uid={{username}},ou=people,{SUFFIX}",
        "user_filter": "(!(description=disabled))",
        "group_search": {"base": f"ou=groups,{SUFFIX}", "filter": "(member={userdn})"},
    }
    config.write_text(json.dumps({"ldap": ldap}))
    factory = ServerFactory(tmp_path)
    with UpstreamServer(mode="html") as upstream:
        try:
            server = factory.start(upstream.simple_url, "--config", str(config), "--workers", "2")
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: _login(server, *BOB), range(8)))
            assert statuses == [200] * 8, statuses
            created = [e for e in _audit(server, "user-create") if e["target"] == "bob"]
            assert len(created) == 1, created
            assert _login(server, "carol", PASSWORDS["carol"]) == 401
            assert _login(server, "bob", "wrong") == 401
        finally:
            factory.stop_all()
