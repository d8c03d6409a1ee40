"""Imported OSV advisories in a running server: the PyPI JSON API's ``vulnerabilities`` and the
project page, for releases uploaded to a stage; the import runs while the server serves."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.api import call, upload_dist
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, ServerFactory, server_command
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ADVISORY = {
    "id": "GHSA-vuln-1234-abcd",
    "modified": "2024-03-01T00:00:00Z",
    "summary": "Remote code execution in vuln-lib",
    "details": "vuln-lib before 1.1 runs what it is sent.",
    "aliases": ["CVE-2024-0001"],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Vuln_Lib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}],
        }
    ],
}


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def _page(url: str) -> str:
    request = urllib.request.Request(
        url, headers={"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla/5.0"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


def test_vulnerabilities_in_the_pypi_json_api(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    _vulnerabilities(server_factory, html_upstream, tmp_path)


def test_vulnerabilities_on_postgres(
    pg_server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """The import commits on PostgreSQL; the running server learns of it by notification."""
    _vulnerabilities(pg_server_factory, html_upstream, tmp_path)


def _vulnerabilities(factory: ServerFactory, upstream: UpstreamServer, tmp_path: Path) -> None:
    server = factory.start(mirror_url=upstream.simple_url)
    assert call(server.url, "PUT", "/root/dev", {"bases": []}, auth=ROOT)[0] == 200
    for version in ("1.0", "1.1"):
        wheel = build_wheel(tmp_path / version, "vuln_lib", version)
        assert upload_dist(server.url, "root/dev", wheel, ROOT)[0] == 200
    old = f"{server.url}root/dev/+pypi/vuln-lib/1.0/json"
    assert _json(old)["vulnerabilities"] == []  # cached now: the import must drop it

    feed = tmp_path / "osv"
    feed.mkdir()
    (feed / "GHSA-vuln-1234-abcd.json").write_text(json.dumps(ADVISORY))
    database = ["--database-url", factory.database_url] if factory.database_url else []
    done = subprocess.run(
        server_command(
            "advisories", "import", "--datadir", str(server.datadir), *database, str(feed)
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "stored 1" in done.stdout

    (entry,) = _json(old)["vulnerabilities"]
    assert entry == {
        "aliases": ["CVE-2024-0001"],
        "details": "vuln-lib before 1.1 runs what it is sent.",
        "fixed_in": ["1.1"],
        "id": "GHSA-vuln-1234-abcd",
        "link": "https://osv.dev/vulnerability/GHSA-vuln-1234-abcd",
        "source": "osv",
        "summary": "Remote code execution in vuln-lib",
        "withdrawn": None,
    }
    assert _json(f"{server.url}root/dev/+pypi/vuln-lib/1.1/json")["vulnerabilities"] == []
    project = _json(f"{server.url}root/dev/+pypi/vuln-lib/json")
    assert project["info"]["version"] == "1.1"
    assert project["vulnerabilities"] == []  # PyPI lists those of the release shown

    assert "GHSA-vuln-1234-abcd" in _page(f"{server.url}root/dev/vuln-lib/1.0")
    assert "Known vulnerabilities" not in _page(f"{server.url}root/dev/vuln-lib/1.1")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serving(directory: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _publish(directory: Path, *documents: dict[str, Any]) -> None:
    """Write OSV's all.zip shape atomically (the server may be downloading the old one)."""
    partial_zip = directory / "all.zip.part"
    with zipfile.ZipFile(partial_zip, "w") as archive:
        for document in documents:
            archive.writestr(f"{document['id']}.json", json.dumps(document))
    partial_zip.replace(directory / "all.zip")


def _until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_scheduled_reimport_from_a_url(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    _publish(served, ADVISORY)
    with _serving(served) as base:
        server = server_factory.start(
            html_upstream.simple_url,
            "--workers",
            "2",
            "--advisories-url",
            f"{base}/all.zip",
            "--advisories-interval",
            "1",
        )
        assert call(server.url, "PUT", "/root/dev", {"bases": []}, auth=ROOT)[0] == 200
        wheel = build_wheel(tmp_path / "w", "vuln_lib", "1.0")
        assert upload_dist(server.url, "root/dev", wheel, ROOT)[0] == 200
        url = f"{server.url}root/dev/+pypi/vuln-lib/1.0/json"

        def listed() -> list[str]:
            return [entry["id"] for entry in _json(url)["vulnerabilities"]]

        _until(lambda: listed() == ["GHSA-vuln-1234-abcd"], "the first import never landed")
        _publish(served, {**ADVISORY, "withdrawn": "2024-04-01T00:00:00Z"})
        _until(lambda: listed() == [], "the withdrawal was never re-imported")
