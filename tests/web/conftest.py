"""Fixtures for the web UI tests in real headless Chromium (Debian's /usr/bin/chromium, driven
by Playwright; never a downloaded browser). No Chromium is a missing service: a skip on a laptop,
a failure under CHEESEBOARD_REQUIRE_ALL=1, where .ci/chromium-setup.sh installs it.

Screenshots go to $CHEESEBOARD_ARTIFACTS/web (default: .artifacts/web in the checkout).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import service_missing

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]


def chromium_path() -> str | None:
    wanted = os.environ.get("CHEESEBOARD_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).exists() else None
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("CHEESEBOARD_ARTIFACTS") or REPO / ".artifacts") / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not session-wide: Playwright's sync API keeps an event loop
    running on this thread while it is open, which breaks asyncio tests collected after it."""
    executable = chromium_path()
    if executable is None:
        service_missing(
            "Chromium is not installed (apt-get install chromium; .ci/chromium-setup.sh)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright is not installed (pip install playwright)")
    # Playwright gives every launch a new empty profile of its own.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; dialogs are recorded, never answered
    silently, so a test sees any alert() a hostile page manages to raise."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.dialogs = []  # type: ignore[attr-defined]

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    try:
        yield tab
    finally:
        context.close()
