"""The web UI in real headless Chromium: the first visit, search, a project page with its README
and install command, signing in, yanking; hostile READMEs rendered inert. Screenshots of the
home, search and project pages are saved as artifacts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import call
from tests.support.server import CheeseboardServer
from tests.web.helpers import ALICE, STAGE, Filled, fill

pytestmark = pytest.mark.browser


@pytest.fixture
def fresh_filled(mirror_server: CheeseboardServer, tmp_path: Path) -> Filled:
    """A filled server of its own, for the test that signs in and yanks."""
    return fill(mirror_server, tmp_path)


@pytest.fixture(scope="module")
def filled(
    module_mirror_server: CheeseboardServer, tmp_path_factory: pytest.TempPathFactory
) -> Filled:
    """One filled server for the module's tests that only look at it (nothing is changed)."""
    return fill(module_mirror_server, tmp_path_factory.mktemp("filled"))


def _dangerous(page: Any, selector: str) -> list[str]:
    """Elements or attributes inside ``selector`` that could run script or leave the page."""
    return list(
        page.evaluate(
            """(selector) => {
              const found = [];
              const root = document.querySelector(selector);
              if (!root) return ["no " + selector];
              for (const el of root.querySelectorAll("*")) {
                const tag = el.tagName.toLowerCase();
                if (["script", "iframe", "object", "embed", "style", "form", "svg", "base",
                     "meta", "link"].includes(tag)) found.push("element " + tag);
                for (const attr of el.attributes) {
                  const name = attr.name.toLowerCase();
                  const value = attr.value.trim().toLowerCase();
                  if (name.startsWith("on")) found.push(tag + " " + name);
                  if (name === "style") found.push(tag + " style");
                  const linkish = ["href", "src", "action", "formaction", "data", "xlink:href"];
                  if (linkish.includes(name) && /^(javascript|vbscript|data):/.test(value))
                    found.push(tag + " " + name + "=" + value);
                }
              }
              return found;
            }""",
            selector,
        )
    )


def test_first_visit_search_project_login_and_yank(
    fresh_filled: Filled, page: Any, artifacts: Path
) -> None:
    filled = fresh_filled
    url = filled.url
    page.goto(url)
    assert page.title() == "cheeseboard"
    cards = page.locator("a.index-card .card-title").all_inner_texts()
    assert cards == ["alice/dev", "root/pypi"]
    assert "inherits root/pypi" in page.locator("a.index-card").first.inner_text()
    assert page.locator("#status").inner_text().count("running") == 1
    page.screenshot(path=str(artifacts / "home.png"), full_page=True)

    # Search for a private package from the box in the top bar.
    page.locator("#q").fill("slicing")
    page.locator("#q").press("Enter")
    page.wait_for_url(re.compile(r"/\+search\?q=slicing"))
    assert "1 result" in page.locator("#result-count").inner_text()
    hit = page.locator("ol.results li").first
    assert "cheesy-widgets" in hit.inner_text()
    assert "Slicing widgets for the cheese board" in hit.inner_text()
    page.screenshot(path=str(artifacts / "search.png"), full_page=True)

    # Its project page: the latest version, the README rendered, the install command.
    hit.get_by_role("link").first.click()
    page.wait_for_url(re.compile(r"/alice/dev/cheesy-widgets"))
    assert page.locator("h1").first.inner_text().startswith("cheesy-widgets 1.1")
    readme = page.locator("article.readme")
    assert readme.locator("h1").inner_text() == "Cheesy Widgets"
    assert readme.locator("table td").first.inner_text() == "big"
    assert readme.locator("pre span").count() > 3  # highlighted code
    command = page.locator(".install pre").inner_text()
    assert command == f"pip install --index-url {url}{STAGE}/+simple/ cheesy-widgets"
    assert page.get_by_role("link", name="Source").get_attribute("href") == (
        "https://example.org/widgets/src"
    )
    assert page.get_by_role("link", name="Evil").count() == 0  # javascript: URL dropped
    files = page.locator("table.files tbody tr")
    assert files.count() == 1
    assert "cheesy_widgets-1.1-py3-none-any.whl" in files.first.inner_text()
    sha = filled.dists["cheesy-widgets"][1].sha256
    assert files.first.locator("code.hash").get_attribute("title") == sha
    assert page.get_by_role("heading", name="Manage 1.1").count() == 0  # not signed in
    page.screenshot(path=str(artifacts / "project.png"), full_page=True)

    # Its uploaded documentation opens, and runs sandboxed in an origin of its own.
    page.locator("#docs-link").click()
    page.wait_for_url(re.compile(r"/alice/dev/cheesy-widgets/1\.1/\+doc/$"))
    assert page.locator("h1").inner_text() == "Widget docs"
    page.wait_for_function("document.title.startsWith('origin:')")
    assert page.title() == "origin:null"
    page.go_back()

    # Sign in: back on the project page, now with the manage form.
    page.get_by_role("link", name="Sign in").click()
    page.locator("#username").fill(ALICE[0])
    page.locator("#password").fill(ALICE[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/alice/dev/cheesy-widgets$"))
    assert page.locator(".flash").inner_text() == "Signed in as alice."
    assert page.locator(".who").inner_text() == "alice"

    # Yank 1.1 and see the mark; pip's view (PEP 592) changes with it.
    page.locator("#yank-reason").fill("broken slicer")
    page.get_by_role("button", name="Yank 1.1").click()
    page.wait_for_url(re.compile(r"/alice/dev/cheesy-widgets/1\.1$"))
    assert page.locator(".flash").inner_text() == "cheesy-widgets 1.1 yanked."
    assert page.locator("h1 .badge-yanked").inner_text().lower() == "yanked"
    assert "broken slicer" in page.locator("#yank-note").inner_text()
    versions = page.locator("ol.versions li")
    assert "yanked" in versions.nth(0).inner_text().lower()
    assert "yanked" not in versions.nth(1).inner_text().lower()
    status, data = call(url, "GET", f"/{STAGE}/cheesy-widgets/1.1")
    assert status == 200 and data["result"]["yanked"] == "broken slicer"
    page.screenshot(path=str(artifacts / "project-yanked.png"), full_page=True)

    # The project page now shows the newest release pip would pick, 1.0.
    page.goto(f"{url}{STAGE}/cheesy-widgets")
    assert page.locator("h1").first.inner_text().startswith("cheesy-widgets 1.0")


@pytest.mark.parametrize("project", ["evil-readme", "evil-rst"])
def test_hostile_readme_runs_nothing(filled: Filled, page: Any, project: str) -> None:
    page.goto(f"{filled.url}{STAGE}/{project}")
    assert page.locator("article.readme").count() == 1
    assert _dangerous(page, "article.readme") == []
    # Click every link that does not leave for a real web site, and the page itself.
    clicked = page.evaluate(
        """() => {
          let count = 0;
          for (const a of document.querySelectorAll("article.readme a")) {
            const local = !/^https?:/.test(a.href) || a.href.startsWith(location.origin);
            if (local) { a.click(); count++; }
          }
          for (const el of document.querySelectorAll("article.readme *")) {
            if (!el.closest("a")) el.click();
          }
          return count;
        }"""
    )
    # The markdown README keeps its (defanged) links; the RST one falls back to plain text.
    assert clicked >= (1 if project == "evil-readme" else 0)
    page.mouse.click(640, 450)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    assert page.url.split("#")[0] == f"{filled.url}{STAGE}/{project}"


A11Y_CHECK = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  const headings = [...document.querySelectorAll("h1")].filter((h) => !h.closest(".readme"));
  if (headings.length !== 1) problems.push("not exactly one h1 outside the README");
  for (const input of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const labelled = input.labels.length > 0 || input.getAttribute("aria-label");
    if (!labelled) problems.push("unlabelled " + (input.id || input.name));
  }
  for (const img of document.querySelectorAll("img:not([alt])")) problems.push("img without alt");
  for (const button of document.querySelectorAll("button")) {
    const named = button.innerText.trim() || button.getAttribute("aria-label");
    if (!named) problems.push("empty button");
  }
  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (dupes.length) problems.push("duplicate ids " + dupes.join(","));
  return problems;
}"""


def test_pages_are_labelled_for_assistive_technology(filled: Filled, page: Any) -> None:
    paths = ["", "alice", STAGE, f"{STAGE}/cheesy-widgets", "+search?q=cheese", "+web/login"]
    for path in paths:
        page.goto(filled.url + path)
        assert page.evaluate(A11Y_CHECK) == [], path


def test_dark_mode_and_narrow_screen(filled: Filled, browser: Any, artifacts: Path) -> None:
    context = browser.new_context(color_scheme="dark", viewport={"width": 390, "height": 844})
    try:
        tab = context.new_page()
        tab.goto(f"{filled.url}{STAGE}/cheesy-widgets")
        background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 21, 27)"
        width = tab.evaluate("document.documentElement.scrollWidth")
        wide = tab.evaluate(
            """() => [...document.querySelectorAll("body *")]
                .filter((el) => el.getBoundingClientRect().right > 391)
                .slice(0, 5).map((el) => el.tagName + "." + el.className)"""
        )
        assert width <= 390, f"page scrolls sideways on a phone: {width}px, {wide}"
        tab.screenshot(path=str(artifacts / "project-dark-phone.png"), full_page=True)
    finally:
        context.close()


def test_pages_work_without_javascript(filled: Filled, browser: Any) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto(f"{filled.url}+search?q=brie")
        tab.get_by_role("link", name=re.compile("brie-tools")).click()
        assert tab.locator("h1").first.inner_text().startswith("brie-tools 2.0")
        # Every installer's instructions are on the page (the tabs need script to hide them).
        for heading in ("pip", "uv", "poetry", "twine"):
            assert tab.get_by_role("heading", name=heading, exact=True).is_visible()
    finally:
        context.close()
