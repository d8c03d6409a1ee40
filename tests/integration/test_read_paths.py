"""Every read path besides the simple pages shows only what its caller may read, and answers for a
private thing exactly as for a missing one (issue 20), against a real server.

alice owns ``alice/priv`` (``acl_read`` = carol only) holding ``zzsecretpkg`` 1.0 with docs, and
``alice/pub`` (public) whose base is ``alice/priv``. Anonymous callers and bob (signed in, not in
``acl_read``) must not see ``alice/priv`` or ``zzsecretpkg`` anywhere, and every answer for them
equals, byte for byte once the names are swapped, the answer for ``alice/miss`` and
``zzmissingpk`` (names of the same length that do not exist). alice, carol and root see it all.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.api import basic, call, doc_zip, upload_dist, upload_docs
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

PASSWORDS = {"root": ROOT_PASSWORD, "alice": "alice-pw-1", "bob": "bob-pw-1", "carol": "carol-pw-1"}
BROWSER = {"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla/5.0 (test)"}
API = {"Accept": "application/json"}
PRIVATE, MISSING = "alice/priv", "alice/miss"
SECRET, ABSENT = "zzsecretpkg", "zzmissingpk"
OUTSIDERS = (None, "bob")  # anonymous, and a signed-in user not in acl_read
READERS = ("alice", "carol", "root")


@dataclass
class Answer:
    status: int
    body: bytes


@dataclass
class World:
    server: CheeseboardServer
    sessions: dict[str, str]  # user -> login token, used as the web UI's session cookie

    def get(self, path: str, who: str | None, web: bool = False) -> Answer:
        """GET ``path`` as ``who`` (None: anonymous): API calls with Basic credentials, web
        pages as a browser with ``who``'s session cookie."""
        headers = dict(BROWSER if web else API)
        if who is not None and web:
            headers["Cookie"] = f"cheeseboard_session={self.sessions[who]}"
        elif who is not None:
            headers["Authorization"] = basic(who, PASSWORDS[who])
        parts = urlsplit(self.server.url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.read())
        finally:
            connection.close()


def _swapped(body: bytes) -> bytes:
    """The answer about the private names, with the missing names in their place."""
    for private, missing in ((PRIVATE, MISSING), (SECRET, ABSENT)):
        for a, b in (
            (private, missing),
            (private.replace("/", "%2F"), missing.replace("/", "%2F")),
        ):
            body = body.replace(a.encode(), b.encode())
    return re.sub(rb"\(\d+\.\d ms\)", b"(ms)", body)  # the search page's timing


def _assert_alike(world: World, private: str, missing: str, web: bool = False) -> None:
    """For every outsider the private path answers exactly as the missing one."""
    for who in OUTSIDERS:
        hidden, absent = world.get(private, who, web), world.get(missing, who, web)
        assert hidden.status == absent.status, (private, who, hidden, absent)
        assert hidden.status >= 400, (private, who, hidden)
        assert _swapped(hidden.body) == _swapped(absent.body), (private, who, hidden, absent)
        if PRIVATE not in private:  # names the caller sent come back; the base's never does
            assert PRIVATE.encode() not in hidden.body, (private, who, hidden)


def _json(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer
    result = json.loads(answer.body)["result"]
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def world(
    module_mirror_server: CheeseboardServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    server = module_mirror_server
    root = ("root", ROOT_PASSWORD)
    for user in ("alice", "bob", "carol"):
        created = call(server.url, "PUT", f"/{user}", {"password": PASSWORDS[user]}, auth=root)
        assert created[0] == 201, created
    alice = ("alice", PASSWORDS["alice"])
    made = call(server.url, "PUT", f"/{PRIVATE}", {"acl_read": ["carol"], "bases": []}, root)
    assert made[0] in (200, 201), made
    made = call(server.url, "PUT", "/alice/pub", {"bases": [PRIVATE]}, root)
    assert made[0] in (200, 201), made
    wheel = build_wheel(tmp_path_factory.mktemp("read-paths"), SECRET, "1.0")
    status, text = upload_dist(server.url, PRIVATE, wheel, alice)
    assert status == 200, text
    archive = doc_zip({"index.html": "<h1>secret docs</h1>"})
    status, text = upload_docs(server.url, PRIVATE, SECRET, "1.0", archive, alice)
    assert status == 200, text
    sessions = {}
    for user, password in PASSWORDS.items():
        status, body = call(server.url, "POST", "/+login", {"user": user, "password": password})
        assert status == 200, body
        sessions[user] = body["result"]["password"]
    yield World(server, sessions)


def test_the_private_index_answers_as_a_missing_one(world: World) -> None:
    for suffix in ("", "/", "/+api", f"/{SECRET}", f"/{SECRET}/1.0", "/+simple/"):
        _assert_alike(world, f"/{PRIVATE}{suffix}", f"/{MISSING}{suffix}")
    for web_suffix in ("", f"/{SECRET}", f"/{SECRET}/1.0"):
        _assert_alike(world, f"/{PRIVATE}{web_suffix}", f"/{MISSING}{web_suffix}", web=True)
    doc = "/{}/{}/1.0/+doc/index.html"
    _assert_alike(world, doc.format(PRIVATE, SECRET), doc.format(MISSING, ABSENT))
    json_api = "/{}/+pypi/{}/json"
    _assert_alike(world, json_api.format(PRIVATE, SECRET), json_api.format(MISSING, ABSENT))
    for who in READERS:
        view = _json(world.get(f"/{PRIVATE}", who))
        assert view["projects"] == [SECRET], (who, view)
        assert world.get(doc.format(PRIVATE, SECRET), who).body == b"<h1>secret docs</h1>"
        page = world.get(f"/{PRIVATE}/{SECRET}", who, web=True)
        assert page.status == 200 and SECRET.encode() in page.body, (who, page)


def test_a_public_child_hides_its_private_base(world: World) -> None:
    """Through alice/pub, zzsecretpkg (only on the private base) is as missing as any name."""
    for kind in ("/{}", "/{}/1.0", "/+pypi/{}/json", "/+pypi/{}/1.0/json", "/+simple/{}/"):
        _assert_alike(world, "/alice/pub" + kind.format(SECRET), "/alice/pub" + kind.format(ABSENT))
    for kind in ("/{}", "/{}/1.0"):
        private, missing = "/alice/pub" + kind.format(SECRET), "/alice/pub" + kind.format(ABSENT)
        _assert_alike(world, private, missing, web=True)
    for who in OUTSIDERS:
        config = _json(world.get("/alice/pub", who))
        assert config["bases"] == [], (who, config)
        index_page = world.get("/alice/pub", who, web=True)
        assert index_page.status == 200, index_page
        assert PRIVATE.encode() not in index_page.body and SECRET.encode() not in index_page.body
    for who in READERS:
        versions = _json(world.get(f"/alice/pub/{SECRET}", who))
        assert list(versions) == ["1.0"], (who, versions)
        document = world.get(f"/alice/pub/+pypi/{SECRET}/json", who)
        assert document.status == 200, (who, document)
        assert json.loads(document.body)["info"]["name"] == SECRET
        page = world.get(f"/alice/pub/{SECRET}", who, web=True)
        assert page.status == 200 and f"/{PRIVATE}/{SECRET}/1.0/+doc/".encode() in page.body
        index_page = world.get("/alice/pub", who, web=True)
        assert PRIVATE.encode() in index_page.body and SECRET.encode() in index_page.body
    assert _json(world.get("/alice/pub", "alice"))["bases"] == [PRIVATE]


def test_listings_show_only_readable_indexes(world: World) -> None:
    for who in OUTSIDERS:
        users = _json(world.get("/", who))
        assert set(users["alice"]["indexes"]) == {"pub"}, (who, users)
        assert users["alice"]["indexes"]["pub"]["bases"] == []
        alice = _json(world.get("/alice", who))
        assert set(alice["indexes"]) == {"pub"}, (who, alice)
        for path in ("/", "/alice"):
            page = world.get(path, who, web=True)
            assert page.status == 200, page
            assert b"alice/pub" in page.body and PRIVATE.encode() not in page.body, (who, path)
    for who in READERS:
        alice = _json(world.get("/alice", who))
        assert set(alice["indexes"]) == {"priv", "pub"}, (who, alice)
        for path in ("/", "/alice"):
            page = world.get(path, who, web=True)
            assert PRIVATE.encode() in page.body, (who, path)


def test_search_finds_only_readable_projects(world: World) -> None:
    for who in OUTSIDERS:
        for where in ("", "&index=alice/pub"):
            hidden = world.get(f"/+search?q={SECRET}{where}", who, web=True)
            absent = world.get(f"/+search?q={ABSENT}{where}", who, web=True)
            assert hidden.status == absent.status == 200, (who, hidden)
            assert _swapped(hidden.body) == _swapped(absent.body), (who, where)
            assert b'id="result-count">0 results' in hidden.body
        _assert_alike(world, f"/+search?q=x&index={PRIVATE}", f"/+search?q=x&index={MISSING}", True)
    for who in READERS:
        for where in ("", "&index=alice/pub", f"&index={PRIVATE}"):
            found = world.get(f"/+search?q={SECRET}{where}", who, web=True)
            assert found.status == 200 and b'id="result-count">1 result ' in found.body, who
            assert f'href="/{PRIVATE}/{SECRET}"'.encode() in found.body


def test_a_signed_in_browser_reads_with_its_session_alone(world: World) -> None:
    """The web UI knows its user by the session cookie (no Authorization header at all)."""
    page = world.get(f"/{PRIVATE}", "carol", web=True)
    assert page.status == 200 and SECRET.encode() in page.body, page
    stale = World(world.server, {"carol": "forged.session.value"})
    refused = stale.get(f"/{PRIVATE}", "carol", web=True)
    assert refused.status == 401 and SECRET.encode() not in refused.body, refused


def test_the_test_names_have_equal_lengths() -> None:
    """The comparisons swap names byte for byte: the pairs must be the same length."""
    assert len(PRIVATE) == len(MISSING) and len(SECRET) == len(ABSENT)
