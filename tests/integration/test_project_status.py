"""PEP 792 project statuses on a real server: set through the API and the ``cheeseboard`` client,
shown on the JSON and HTML simple pages, ``quarantined`` hiding the files and refusing their
downloads (through the hot path too) and pip installs, and every change in the audit log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from cheeseboard.settings import Settings
from cheeseboard.store import audit_rows
from cheeseboard.store.audit_rows import AuditRow
from tests.integration.test_web_pages import Browser
from tests.support.api import call, twine_upload
from tests.support.client_cli import Cli
from tests.support.clients import pip_install
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

ROOT = ("root", ROOT_PASSWORD)
OWNER = ("owner", "owner-secret")
UPLOADER = ("uploader", "uploader-secret")
JSON = "application/vnd.pypi.simple.v1+json"
STATUS = "/owner/dev/gated/+status"


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module (tests/conftest.py); users and indexes reset after each test."""
    return shared_mirror_server


@pytest.fixture
def wheel(mirror_server: CheeseboardServer, tmp_path: Path) -> Dist:
    """gated 1.0 on owner/dev, where ``uploader`` may upload (and so remove) but not manage."""
    for user, password in (OWNER, UPLOADER):
        assert (
            call(mirror_server.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)[0] == 201
        )
    body = {"volatile": True, "bases": [], "acl_upload": ["owner", "uploader"]}
    assert call(mirror_server.url, "PUT", "/owner/dev", body, auth=ROOT)[0] == 200
    built = build_wheel(tmp_path / "dist", "gated", "1.0")
    result = twine_upload(f"{mirror_server.url}owner/dev/", *OWNER, built.path)
    assert result.returncode == 0, result.stdout
    return built


def _get(url: str, accept: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read()


def _pages(server: CheeseboardServer) -> tuple[dict[str, Any], str]:
    url = f"{server.url}owner/dev/+simple/gated/"
    status, body = _get(url, JSON)
    assert status == 200, body
    html_status, html = _get(url, "text/html")
    assert html_status == 200, html
    return json.loads(body), html.decode()


def _audit(server: CheeseboardServer, after_id: int = 0) -> list[AuditRow]:
    """The server's project-status entries (the log outlives the accounts reset between tests:
    each test reads those after the last one it found)."""
    engine = create_engine(Settings(datadir=server.datadir).db_url)
    try:
        with engine.connect() as conn:
            return audit_rows.read(
                conn, after_id=after_id, action="project-status", newest_first=False
            )
    finally:
        engine.dispose()


def test_statuses_on_the_simple_pages_and_quarantine(
    mirror_server: CheeseboardServer, wheel: Dist, tmp_path: Path
) -> None:
    server = mirror_server
    seen = max((e.id for e in _audit(server)), default=0)
    file_url = f"{server.url}owner/dev/+f/{wheel.sha256[:3]}/{wheel.sha256[3:16]}/{wheel.filename}"
    assert call(server.url, "GET", STATUS)[1]["result"] == {"project": "gated", "status": "active"}
    for _ in range(2):  # the second one from the hot path's memory
        assert _get(file_url) == (200, wheel.path.read_bytes())

    for status in ("archived", "deprecated"):
        wanted = {"status": status, "reason": f"{status} <for> tests"}
        answer = call(server.url, "POST", STATUS, wanted, auth=OWNER)
        assert answer[0] == 200, answer
        assert answer[1]["result"]["status"] == status
        document, html = _pages(server)
        assert document["project-status"] == {"status": status, "reason": f"{status} <for> tests"}
        assert [f["filename"] for f in document["files"]] == [wheel.filename]
        assert f'<meta name="pypi:project-status" content="{status}">' in html
        assert "&lt;for&gt;" in html and wheel.filename in html
        assert _get(file_url)[0] == 200
        if status == "archived":  # PEP 792: an archived project takes no uploads
            newer = build_wheel(tmp_path / "newer", "gated", "2.0")
            result = twine_upload(f"{server.url}owner/dev/", *OWNER, newer.path)
            assert result.returncode != 0 and "403" in result.stdout + result.stderr

    answer = call(server.url, "POST", STATUS, {"status": "quarantined", "reason": "bad"}, auth=ROOT)
    assert answer[0] == 200, answer
    document, html = _pages(server)
    assert document["files"] == []
    assert document["project-status"] == {"status": "quarantined", "reason": "bad"}
    assert '<meta name="pypi:project-status" content="quarantined">' in html
    assert wheel.filename not in html
    for _ in range(3):  # the route, then what the hot path would have served from memory
        code, refusal = _get(file_url)
        assert code == 403 and b"quarantined" in refusal, refusal
    assert _get(file_url + ".metadata")[0] == 403
    index_url = f"{server.url}owner/dev/+simple/"
    refused = pip_install(index_url, tmp_path / "quarantined", "gated")
    assert refused.returncode != 0 and not (tmp_path / "quarantined" / "gated").exists()

    assert call(server.url, "POST", STATUS, {"status": "active"}, auth=OWNER)[0] == 200
    document, html = _pages(server)
    assert "project-status" not in document and "pypi:project-status" not in html
    assert [f["filename"] for f in document["files"]] == [wheel.filename]
    assert _get(file_url) == (200, wheel.path.read_bytes())
    installed = pip_install(index_url, tmp_path / "active", "gated")
    assert installed.returncode == 0, installed.stderr

    entries = _audit(server, seen)
    assert [(e.actor, e.target) for e in entries] == [
        ("owner", "owner/dev/gated"),
        ("owner", "owner/dev/gated"),
        ("root", "owner/dev/gated"),
        ("owner", "owner/dev/gated"),
    ]
    assert entries[2].detail == {
        "old": {"status": "deprecated", "reason": "deprecated <for> tests"},
        "new": {"status": "quarantined", "reason": "bad"},
    }
    assert entries[3].detail["new"] == {"status": "active", "reason": None}


def test_who_may_set_a_status(mirror_server: CheeseboardServer, wheel: Dist) -> None:
    server = mirror_server
    seen = max((e.id for e in _audit(server)), default=0)
    body = {"status": "quarantined"}
    assert call(server.url, "POST", STATUS, body)[0] == 401
    assert call(server.url, "POST", STATUS, body, auth=UPLOADER)[0] == 403
    status, answer = call(server.url, "POST", STATUS, {"status": "gone"}, auth=OWNER)
    assert status == 400 and "unknown status" in answer["message"]
    status, answer = call(
        server.url, "POST", STATUS, {"status": "archived", "reason": "x" * 1001}, auth=OWNER
    )
    assert status == 400 and "longer" in answer["message"]
    status, answer = call(server.url, "POST", "/root/pypi/lib-a/+status", body, auth=ROOT)
    assert status == 400 and "mirror" in answer["message"]
    assert call(server.url, "POST", "/owner/dev/nothing/+status", body, auth=OWNER)[0] == 404
    assert call(server.url, "GET", STATUS)[1]["result"]["status"] == "active"
    assert _audit(server, seen) == []


def test_client_command(mirror_server: CheeseboardServer, wheel: Dist, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "client")
    cli.ok("use", f"{mirror_server.url}owner/dev")
    cli.ok("login", "owner", "--password", OWNER[1])
    assert "active" in cli.ok("project-status", "gated")
    out = cli.ok("project-status", "gated", "deprecated", "--reason", "use gated2")
    assert "deprecated" in out
    shown = json.loads(cli.ok("--json", "project-status", "gated"))["result"]
    assert shown["status"] == "deprecated" and shown["reason"] == "use gated2"
    document, _ = _pages(mirror_server)
    assert document["project-status"] == {"status": "deprecated", "reason": "use gated2"}
    cli.ok("project-status", "gated", "active")
    assert "project-status" not in _pages(mirror_server)[0]
    refused = cli("project-status", "gated", "sunk")
    assert refused.returncode != 0


def test_web_form(mirror_server: CheeseboardServer, wheel: Dist) -> None:
    page_path = "/owner/dev/gated"
    uploader = Browser(mirror_server.url)
    assert uploader.login(*UPLOADER) == 303
    assert "Project status" not in uploader.get(page_path)[2]  # no form for non-owners
    owner = Browser(mirror_server.url)
    assert owner.login(*OWNER) == 303
    _, _, page = owner.get(page_path)
    assert "Project status" in page
    form = {"csrf_token": owner.csrf(page), "status": "quarantined", "reason": "under review"}
    status, headers, _ = owner.request("POST", f"{page_path}/+setstatus", form)
    assert status == 303 and headers["location"] == page_path
    _, _, page = owner.get(page_path)
    assert "marked <strong>quarantined</strong>: under review" in page
    assert "may not be downloaded" in page
    assert _pages(mirror_server)[0]["project-status"]["status"] == "quarantined"
    refused = {"csrf_token": uploader.csrf(uploader.get(page_path)[2]), "status": "active"}
    assert uploader.request("POST", f"{page_path}/+setstatus", refused)[0] == 403
    assert _pages(mirror_server)[0]["project-status"]["status"] == "quarantined"
