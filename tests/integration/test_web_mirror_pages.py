"""The web pages of a mirror (issue 23): a mirrored project shows the summary, description and
links of a wheel the server holds, through the same safe README rendering as a stage's; before
any install it says that nothing is stored yet. The index page's configuration lists each key
once and never breaks one mid-word."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.packages import build_wheel
from tests.support.server import CheeseboardServer
from tests.support.upstream import UpstreamServer
from tests.web.helpers import HOSTILE_README

BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",
}
README = "# Described\n\nA **mirrored** project.\n\n" + HOSTILE_README


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_a_mirrored_project_shows_the_metadata_of_a_held_wheel(
    mirror_server: CheeseboardServer, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    wheel = build_wheel(
        tmp_path,
        "described",
        "1.0",
        summary="A summary from upstream",
        description=README,
        headers=[
            "Description-Content-Type: text/markdown",
            "Project-URL: Source, https://example.org/described",
            "Project-URL: Evil, javascript:alert(1)",
        ],
    )
    html_upstream.add(wheel)
    page_url = f"{mirror_server.url}root/pypi/described"

    status, body = _get(page_url, BROWSER)
    assert status == 200, body
    assert 'id="no-metadata"' in body and "No metadata of 1.0 is stored yet" in body
    assert "A summary from upstream" not in body
    assert html_upstream.count(".metadata") == 0  # the page fetched nothing for itself

    # An install brings the wheel in: the page now shows what it holds.
    simple = f"{mirror_server.url}root/pypi/+simple/described/"
    status, listing = _get(simple)
    found = re.search(rf'href="([^"]*{re.escape(wheel.filename)})[#"]', listing)
    assert status == 200 and found, listing
    status, _ = _get(urllib.parse.urljoin(simple, found[1]))
    assert status == 200

    # The download's row is written just after its last byte is sent: wait for it.
    deadline = time.monotonic() + 10
    while "no-metadata" in body and time.monotonic() < deadline:
        time.sleep(0.1)
        status, body = _get(page_url, BROWSER)
    assert status == 200, body
    assert "no-metadata" not in body
    assert '<p class="lead">A summary from upstream</p>' in body
    article = body.split('<article class="readme">', 1)[1].split("</article>", 1)[0]
    assert "<strong>mirrored</strong>" in article
    # The hostile part survives only as text: no live tag, handler or script URL.
    assert not re.search(r"<(script|iframe|svg|style)\b", article), article
    assert not re.search(r"<[^>]*\son\w+=", article), article
    assert 'href="javascript:' not in article and 'href="data:' not in article
    assert 'href="https://example.org/described"' in body
    assert "javascript:alert(1)" not in body


def test_the_index_configuration_has_one_type_row_and_whole_keys(
    mirror_server: CheeseboardServer,
) -> None:
    status, body = _get(f"{mirror_server.url}root/pypi", BROWSER)
    assert status == 200, body
    config = body.split('id="config-title"', 1)[1].split("</dl>", 1)[0]
    keys = re.findall(r"<dt>([^<]*)</dt>", config)
    assert keys.count("type") == 1, keys
    assert len(keys) == len(set(keys)), keys

    css_href = re.search(r'<link rel="stylesheet" href="([^"]+)"', body)
    assert css_href, body
    status, css = _get(urllib.parse.urljoin(mirror_server.url, css_href[1]))
    assert status == 200
    rules = dict(re.findall(r"^(\.facts(?: d[td])?) \{([^}]*)\}", css, re.MULTILINE))
    assert "white-space: nowrap" in rules[".facts dt"]
    assert "overflow-wrap: break-word" in rules[".facts dd"]
    assert "anywhere" not in rules[".facts dd"] and "break-all" not in rules[".facts dd"]
