"""The index page's supply-chain guard (issue 21) over plain HTTP: the cooldown, cut-off,
exemptions and blocks it shows, and the owner's forms to add and remove exemptions and blocks
(session and CSRF token as every form; the services' permission checks)."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest

from tests.integration.test_web_pages import Browser
from tests.support.api import call
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")
STAGE = "alice/guarded"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("web-guard"))
    try:
        server = factory.start("http://127.0.0.1:9/simple/")
        for user, password in (ALICE, BOB):
            status, body = call(server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)
            assert status == 201, body
        config = {"bases": [], "min_release_age": "7d", "release_cutoff": "2026-01-31T00:00:00Z"}
        status, body = call(server.url, "PUT", f"/{STAGE}", config, auth=ROOT)
        assert status == 200, body
        yield server
    finally:
        factory.stop_all()


def _config(server: CheeseboardServer) -> dict[str, object]:
    status, body = call(server.url, "GET", f"/{STAGE}?no_projects=")
    assert status == 200, body
    result: dict[str, object] = body["result"]
    return result


def _blocks(server: CheeseboardServer) -> list[dict[str, object]]:
    status, body = call(server.url, "GET", f"/{STAGE}/+blocks")
    assert status == 200, body
    listed: list[dict[str, object]] = body["result"]
    return listed


def _signed_in(server: CheeseboardServer, user: tuple[str, str]) -> tuple[Browser, str]:
    browser = Browser(server.url)
    assert browser.login(*user) == 303
    _, _, page = browser.get(f"/{STAGE}")
    return browser, browser.csrf(page)


def test_the_owner_adds_and_removes_exemptions_from_the_page(server: CheeseboardServer) -> None:
    browser, token = _signed_in(server, ALICE)
    _, _, page = browser.get(f"/{STAGE}")
    assert 'id="guard-cooldown">7d' in page and "2026-01-31T00:00:00Z" in page
    assert "Add an exemption" in page and "No exemptions" in page
    form = {"csrf_token": token, "entry": "Hot-Fix==1.0", "reason": "CVE fix", "expires": "2d"}
    status, headers, _ = browser.request("POST", f"/{STAGE}/+exempt", form)
    assert status == 303 and headers["location"] == f"/{STAGE}"
    listed = _config(server)["release_age_exempt"]
    assert isinstance(listed, list) and len(listed) == 1
    stored: dict[str, str] = listed[0]
    assert stored["entry"] == "hot-fix==1.0" and stored["author"] == "alice"
    assert stored["reason"] == "CVE fix" and "expires" in stored
    _, _, page = browser.get(f"/{STAGE}")
    assert "hot-fix==1.0 is exempt from the cooldown of alice/guarded." in page
    assert "<code>hot-fix==1.0</code>" in page and "CVE fix" in page and "Remove" in page

    status, _, body = browser.request(
        "POST", f"/{STAGE}/+exempt", {**form, "entry": "x", "reason": "a; b"}
    )
    assert status == 400 and "may not contain" in html.unescape(body)
    status, _, _ = browser.request("POST", f"/{STAGE}/+exempt", {**form, "reason": ""})
    assert status == 400

    remove = {"csrf_token": token, "entry": "hot-fix==1.0"}
    status, _, _ = browser.request("POST", f"/{STAGE}/+unexempt", remove)
    assert status == 303
    assert _config(server).get("release_age_exempt") == []
    _, _, page = browser.get(f"/{STAGE}")
    assert "Exemption hot-fix==1.0 removed." in page and "No exemptions" in page


def test_the_owner_adds_and_removes_blocks_from_the_page(server: CheeseboardServer) -> None:
    browser, token = _signed_in(server, ALICE)
    form = {"csrf_token": token, "project": "evil", "specifier": "<2", "reason": "typosquat"}
    status, headers, _ = browser.request("POST", f"/{STAGE}/+block", form)
    assert status == 303 and headers["location"] == f"/{STAGE}"
    sha = "cd" * 32
    form = {"csrf_token": token, "sha256": sha, "reason": "bad file", "project": ""}
    assert browser.request("POST", f"/{STAGE}/+block", form)[0] == 303
    first, second = _blocks(server)
    assert (first["project"], first["specifier"], first["author"]) == ("evil", "<2", "alice")
    assert second["sha256"] == sha and second["project"] is None
    _, _, page = browser.get(f"/{STAGE}")
    assert f"Block {second['id']} added to alice/guarded." in page
    assert "<code>evil&lt;2</code>" in page and "typosquat" in page and sha[:12] in page

    status, _, _ = browser.request("POST", f"/{STAGE}/+block", {"csrf_token": token})
    assert status == 400  # names nothing, has no reason
    status, _, _ = browser.request(
        "POST", f"/{STAGE}/+unblock", {"csrf_token": token, "id": str(first["id"])}
    )
    assert status == 303
    assert [b["id"] for b in _blocks(server)] == [second["id"]]
    status, _, _ = browser.request(
        "POST", f"/{STAGE}/+unblock", {"csrf_token": token, "id": str(first["id"])}
    )
    assert status == 404
    # Root manages the owner's index too.
    root, root_token = _signed_in(server, ROOT)
    status, _, _ = root.request(
        "POST", f"/{STAGE}/+unblock", {"csrf_token": root_token, "id": str(second["id"])}
    )
    assert status == 303 and _blocks(server) == []


def test_the_forms_are_refused_to_others_and_without_the_csrf_token(
    server: CheeseboardServer,
) -> None:
    status, body = call(
        server.url, "POST", f"/{STAGE}/+blocks", {"project": "kept", "reason": "r"}, auth=ALICE
    )
    assert status == 201, body
    kept = body["result"]["id"]
    exempt = {"entry": "pkg", "reason": "r"}

    anonymous = Browser(server.url)
    _, _, page = anonymous.get(f"/{STAGE}")
    assert "Supply-chain guard" in page and "kept" in page and "Add a block" not in page
    status, _, _ = anonymous.request("POST", f"/{STAGE}/+exempt", {"csrf_token": "x", **exempt})
    assert status == 401

    bob, token = _signed_in(server, BOB)
    _, _, page = bob.get(f"/{STAGE}")
    assert "Add an exemption" not in page and "Add a block" not in page
    for path, form in (
        ("+exempt", exempt),
        ("+unexempt", {"entry": "pkg"}),
        ("+block", {"project": "x", "reason": "r"}),
        ("+unblock", {"id": str(kept)}),
    ):
        status, _, _ = bob.request("POST", f"/{STAGE}/{path}", {"csrf_token": token, **form})
        assert status == 403, path

    alice, token = _signed_in(server, ALICE)
    status, _, body = alice.request("POST", f"/{STAGE}/+exempt", exempt)
    assert status == 403 and "expired" in body
    status, _, _ = alice.request("POST", f"/{STAGE}/+unblock", {"csrf_token": "no", "id": "1"})
    assert status == 403
    status, _, _ = alice.request(
        "POST",
        f"/{STAGE}/+block",
        {"csrf_token": token, "project": "y", "reason": "r"},
        {"Origin": "https://evil.example"},
    )
    assert status == 403
    assert "release_age_exempt" not in _config(server) or not _config(server)["release_age_exempt"]
    assert [b["id"] for b in _blocks(server)] == [kept]
