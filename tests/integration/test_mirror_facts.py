"""A real server over an HTML-only upstream whose JSON API hangs: the cold page answers at once,
without sizes and upload times, and has them once the JSON API answers."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from tests.support.packages import Dist
from tests.support.server import CheeseboardServer
from tests.support.upstream import DEFAULT_UPLOAD_TIME, JSON_CT, Fault, UpstreamServer

PROJECT = "lib-a"
SLOW = 3.0  # seconds the upstream JSON API takes


def _page(server: CheeseboardServer) -> tuple[float, dict[str, dict[str, Any]]]:
    """Seconds the page took, and its files by name (PEP 691 JSON)."""
    request = urllib.request.Request(server.index_url + f"{PROJECT}/", headers={"Accept": JSON_CT})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        document = json.loads(response.read())
    return time.monotonic() - started, {f["filename"]: f for f in document["files"]}


def test_cold_page_answers_before_a_slow_json_api_and_gains_its_facts(
    mirror_server: CheeseboardServer, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    html_upstream.set_fault(f"pypi/{PROJECT}", Fault("delay", seconds=SLOW))
    elapsed, files = _page(mirror_server)
    assert elapsed < SLOW / 2, f"the cold page waited {elapsed:.2f}s"
    assert set(files) == {d.filename for d in dists[PROJECT]}
    assert all("size" not in f and "upload-time" not in f for f in files.values())

    expected = {d.filename: (d.size, DEFAULT_UPLOAD_TIME) for d in dists[PROJECT]}
    deadline = time.monotonic() + SLOW + 10
    while True:
        _, files = _page(mirror_server)
        got = {name: (f.get("size"), f.get("upload-time")) for name, f in files.items()}
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got == expected
    assert html_upstream.count(f"/simple/{PROJECT}/") == 1
    assert html_upstream.count(f"/pypi/{PROJECT}/json") == 1
