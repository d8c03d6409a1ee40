"""The audit log end to end (issue 21): a real server records what users do; root reads it
through ``GET /+audit``, the web page and ``cheeseboard-server audit``; others are refused; an
export and import keep the entries and add one for the import."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import basic, call, upload_dist
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret-1")
BROWSER = {"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla/5.0 (test)"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cheeseboard.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def page(server: CheeseboardServer, path: str, auth: tuple[str, str] | None) -> tuple[int, str]:
    headers = dict(BROWSER)
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    request = urllib.request.Request(server.url.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def signed_in(server: CheeseboardServer, who: tuple[str, str]) -> str:
    """The home page in a browser signed in to the web UI as ``who``."""
    login = {"user": who[0], "password": who[1]}
    status, body = call(server.url, "POST", "/+login", login)
    assert status == 200, body
    headers = {**BROWSER, "Cookie": f"cheeseboard_session={body['result']['password']}"}
    request = urllib.request.Request(server.url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    """A server on which root created alice and alice/dev, alice changed and yanked, and
    someone failed to sign in as alice."""
    base = tmp_path_factory.mktemp("audit")
    factory = ServerFactory(base)
    server = factory.start("http://127.0.0.1:9/simple/")
    try:
        assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
        body = {"bases": [], "volatile": True}
        assert call(server.url, "PUT", "/alice/dev", body, auth=ROOT)[0] == 200
        status, answer = call(server.url, "PATCH", "/alice/dev", ["title=Dev"], auth=ALICE)
        assert status == 200, answer
        wheel = build_wheel(base, "pkg", "1.0")
        assert upload_dist(server.url, "alice/dev", wheel, ALICE)[0] == 200
        yank = {"yanked": "broken build"}
        assert call(server.url, "PATCH", "/alice/dev/pkg/1.0", yank, auth=ALICE)[0] == 200
        wrong = {"user": "alice", "password": "not-her-password"}
        assert call(server.url, "POST", "/+login", wrong)[0] == 401
        yield server
    finally:
        factory.stop_all()


def test_root_reads_the_log_through_the_api(server: CheeseboardServer) -> None:
    """Each change is an entry with its actor, target, detail and client, newest first."""
    status, body = call(server.url, "GET", "/+audit", auth=ROOT)
    assert status == 200, body
    assert body["type"] == "audit"
    entries = body["result"]
    found = [(e["actor"], e["action"], e["target"]) for e in reversed(entries)]
    assert found == [
        ("root", "user-create", "alice"),
        ("root", "index-create", "alice/dev"),
        ("alice", "index-modify", "alice/dev"),
        ("alice", "yank", "alice/dev/pkg==1.0"),
        (None, "login-failed", "alice"),
    ]
    by_action = {e["action"]: e for e in entries}
    title = {"title": {"old": None, "new": "Dev"}}
    assert by_action["index-modify"]["detail"] == {"changed": title}
    assert by_action["yank"]["detail"]["reason"] == "broken build"
    assert by_action["login-failed"]["client"] == "127.0.0.1"
    assert "not-her-password" not in json.dumps(body) and ALICE[1] not in json.dumps(body)
    assert all(e["at"].endswith("Z") and e["at"][10] == "T" for e in entries)
    status, body = call(server.url, "GET", "/+audit?actor=alice&limit=1", auth=ROOT)
    assert [(e["actor"], e["action"]) for e in body["result"]] == [("alice", "yank")]
    first = entries[-1]["id"]
    status, body = call(server.url, "GET", f"/+audit?after={first}&action=yank", auth=ROOT)
    assert [e["action"] for e in body["result"]] == ["yank"]
    assert call(server.url, "GET", "/+audit?limit=100000", auth=ROOT)[0] == 400


def test_only_root_reads_the_log(server: CheeseboardServer) -> None:
    """A user gets 403, anonymous callers 401, through the API and the web page."""
    assert call(server.url, "GET", "/+audit", auth=ALICE)[0] == 403
    assert call(server.url, "GET", "/+audit")[0] == 401
    assert page(server, "/+audit", ALICE)[0] == 403
    assert page(server, "/+audit", None)[0] == 401


def test_root_reads_the_log_as_a_web_page(server: CheeseboardServer) -> None:
    """The page lists the entries, and filters by action."""
    status, html = page(server, "/+audit", ROOT)
    assert status == 200
    assert "<h1>Audit log</h1>" in html
    for action in ("user-create", "index-create", "index-modify", "yank", "login-failed"):
        assert f">{action}</a>" in html
    assert '<a href="/+audit">Audit log</a>' in signed_in(server, ROOT)  # in root's footer
    assert "/+audit" not in signed_in(server, ALICE)
    status, html = page(server, "/+audit?action=yank", ROOT)
    assert status == 200 and ">yank</a>" in html and ">user-create</a>" not in html


def test_the_cli_prints_one_line_per_entry(server: CheeseboardServer) -> None:
    """``cheeseboard-server audit`` reads the database: oldest first, filters, ``--json``."""
    done = cli("audit", "--datadir", str(server.datadir))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("  ")[1:3] for line in lines] == [
        ["root", "user-create"],
        ["root", "index-create"],
        ["alice", "index-modify"],
        ["alice", "yank"],
        ["-", "login-failed"],
    ]
    assert lines[3].split("  ")[3] == "alice/dev/pkg==1.0"
    assert '"reason":"broken build"' in lines[3] and lines[3].endswith("[127.0.0.1]")
    done = cli("audit", "--datadir", str(server.datadir), "--action", "yank", "--json")
    assert done.returncode == 0, done.stderr
    (entry,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert entry["actor"] == "alice" and entry["target"] == "alice/dev/pkg==1.0"
    done = cli("audit", "--datadir", str(server.datadir.parent / "missing"))
    assert done.returncode == 2 and "not a cheeseboard data directory" in done.stderr


def test_export_and_import_keep_the_log(server: CheeseboardServer, tmp_path: Path) -> None:
    """The entries travel in the dump with their times; the import adds its own entry."""
    before = cli("audit", "--datadir", str(server.datadir), "--json")
    assert before.returncode == 0, before.stderr
    dump, target = tmp_path / "dump", tmp_path / "restored"
    done = cli("export", "--datadir", str(server.datadir), str(dump))
    assert done.returncode == 0, done.stderr
    done = cli("import", "--datadir", str(target), str(dump))
    assert done.returncode == 0, done.stderr
    assert "audit(s)" in done.stdout
    after = cli("audit", "--datadir", str(target), "--json")
    assert after.returncode == 0, after.stderr
    old = [json.loads(line) for line in before.stdout.splitlines()]
    new = [json.loads(line) for line in after.stdout.splitlines()]
    keys = ("at", "actor", "action", "target", "detail", "client")
    assert [{k: e[k] for k in keys} for e in new[:-1]] == [{k: e[k] for k in keys} for e in old]
    assert new[-1]["action"] == "import" and new[-1]["actor"] is None
    assert new[-1]["target"] == str(dump) and new[-1]["detail"]["merge"] is False
