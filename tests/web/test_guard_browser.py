"""The index page's supply-chain guard (issue 21) in real headless Chromium: the owner signs in,
adds an exemption and a block with the forms, and removes them (each removal asks first)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import call
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory

pytestmark = pytest.mark.browser

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
STAGE = "alice/guarded"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("web-guard-browser"))
    try:
        server = factory.start("http://127.0.0.1:9/simple/")
        status, body = call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)
        assert status == 201, body
        status, body = call(
            server.url, "PUT", f"/{STAGE}", {"bases": [], "min_release_age": "7d"}, auth=ROOT
        )
        assert status == 200, body
        yield server
    finally:
        factory.stop_all()


def _api(server: CheeseboardServer, path: str) -> Any:
    status, body = call(server.url, "GET", path)
    assert status == 200, body
    return body["result"]


def test_owner_manages_exemptions_and_blocks(
    server: CheeseboardServer, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    answers = {"accept": False}
    asked: list[str] = []

    def on_dialog(dialog: Any) -> None:
        asked.append(dialog.message)
        if answers["accept"]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto(f"{server.url}{STAGE}")
        assert page.locator("#guard-cooldown").inner_text().startswith("7d")
        assert page.locator("#exempt-entry").count() == 0  # not signed in: no forms
        page.goto(f"{server.url}+web/login?next=/{STAGE}")
        page.locator("#username").fill(ALICE[0])
        page.locator("#password").fill(ALICE[1])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(rf"/{STAGE}$"))

        page.locator("#exempt-entry").fill("Hot-Fix==1.0")
        page.locator("#exempt-reason").fill("CVE fix, reviewed")
        page.locator("#exempt-expires").fill("2d")
        page.get_by_role("button", name="Add exemption").click()
        page.wait_for_selector("#exemptions")
        assert "hot-fix==1.0 is exempt" in page.locator(".flash").inner_text()
        row = page.locator("#exemptions tbody tr").first
        assert "CVE fix, reviewed" in row.inner_text() and "alice" in row.inner_text()

        page.locator("#block-project").fill("evil")
        page.locator("#block-specifier").fill("<2")
        page.locator("#block-reason").fill("typosquat")
        page.get_by_role("button", name="Add block").click()
        page.wait_for_selector("#blocks")
        assert "evil<2" in page.locator("#blocks tbody tr").first.inner_text()
        [block] = _api(server, f"/{STAGE}/+blocks")
        assert block["author"] == "alice" and block["reason"] == "typosquat"
        page.screenshot(path=str(artifacts / "index-guard.png"), full_page=True)

        # Removing asks first: dismissed, nothing changes; accepted, the entry is gone.
        remove = page.get_by_role("button", name="Remove the exemption hot-fix==1.0")
        remove.click()
        assert asked == ["Remove the exemption hot-fix==1.0?"]
        assert len(_api(server, f"/{STAGE}?no_projects=")["release_age_exempt"]) == 1
        answers["accept"] = True
        remove.click()
        page.wait_for_selector("text=Exemption hot-fix==1.0 removed.")
        assert _api(server, f"/{STAGE}?no_projects=")["release_age_exempt"] == []
        page.get_by_role("button", name=f"Remove block {block['id']}").click()
        page.wait_for_selector(f"text=Block {block['id']} removed from {STAGE}.")
        assert _api(server, f"/{STAGE}/+blocks") == []
    finally:
        context.close()
