"""Nothing of a private index leaks (issue 20): the proof by crawling a real server.

``owner`` keeps a private stage (``acl_read`` = [owner]) with a distinctively named project: a
wheel and an sdist with a distinctive version, summary and description, and documentation with
distinctive pages. A public stage of the same owner inherits from it, and an unrelated user has a
public stage of their own. Then anonymous callers and that unrelated user (``stranger``, with
Basic credentials and a web session) crawl the server: every path of the app's route table,
templated with the real private names and with made-up names of the same length, every link
found in any answer, and a search for each distinctive word; each path with GET (as a browser and
as an API client), HEAD and OPTIONS. Only reads: nothing is changed. So does the owner's read
token for the public index (it reads nothing more than anonymous callers elsewhere). A caller
sending the owner's
name with a wrong password and a forged session cookie (read as anonymous) asks for the paths
naming the private index and their twins (GET only: every request checks a password, slowly).

- No answer to them (headers or body) holds a private string that the request did not itself
  name (a name echoed from the URL is no leak; the comparison below covers those).
- A path naming private things and the same path with made-up names get the same status, the
  same headers that matter and the same body once the made-up names are put back.
- The owner's crawl finds every private string, each in an answer to a request not naming it:
  the crawl reaches everything, so the checks above can fail.

All of this on SQLite with files on disk, and on PostgreSQL with files on S3.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from cheeseboard.http.app import create_app
from cheeseboard.settings import Settings
from tests.integration.read_crawl import (
    ANY,
    HTML,
    JSON,
    Client,
    Crawl,
    Exchange,
    crawl,
    request_words,
)
from tests.support.api import basic, call, doc_zip, upload_dist, upload_docs
from tests.support.backends import BACKENDS, factory_for
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD

ROOT = ("root", ROOT_PASSWORD)
OWNER = ("owner", "owner-secret-1")
STRANGER = ("stranger", "stranger-secret-1")
MAX_REQUESTS = 6000  # per identity; the crawl ends well before (asserted)

PRIVATE_INDEX = "vaultzqx"  # owner/vaultzqx: acl_read [owner]
PUBLIC_INDEX = "openidx"  # owner/openidx: public, bases [owner/vaultzqx]
STRANGER_INDEX = "dev"  # stranger/dev: public, unrelated
PROJECT = "QwzMarmot_Lib"
VERSION = "7.7.7rc77"
SUMMARY = "Glimmerwick frobnosticates quuxulent tarnhelms"
DESCRIPTION = "Zorblax README\n==============\n\nThe plinthograph of vexillomancy.\n"
DOC_PAGE = "snarfwidget.html"
DOC_INDEX = (
    "<!doctype html><html><head><title>Hepzibah manual</title></head><body>"
    '<h1>Hepzibah manual</h1><a href="snarfwidget.html">more</a></body></html>'
)
DOC_OTHER = "<html><body><p>Crumplehorn widdershins</p></body></html>"

# Words of the summary, description and docs: searched for, and never to be seen by others.
WORDS = (
    "glimmerwick",
    "frobnosticates",
    "quuxulent",
    "tarnhelms",
    "zorblax",
    "plinthograph",
    "vexillomancy",
    "hepzibah",
    "snarfwidget",
    "crumplehorn",
    "widdershins",
)


def _rot13(word: str) -> str:
    """A made-up word of the same length that no one uploaded."""
    return word.translate(str.maketrans("abcdefghijklmnopqrstuvwxyz", "nopqrstuvwxyzabcdefghijklm"))


def _hex_twin(digest: str) -> str:
    """Another hex string of the same length (each digit changed)."""
    return digest.translate(str.maketrans("0123456789abcdef", "fedcba9876543210"))


@dataclass
class Private:
    """The private things (``real``) and the made-up things of the same length (``twin``)."""

    wheel: Dist
    sdist: Dist
    doc_sha256: str

    @cached_property
    def pairs(self) -> dict[str, str]:
        """Every private string and its made-up twin (lower case)."""
        pairs = {
            PRIVATE_INDEX: "ghostzqx",
            "qwzmarmot": "qwzbadger",
            VERSION: "7.7.7rc66",
            self.wheel.filename.lower(): self._twin_name(self.wheel.filename),
            self.sdist.filename.lower(): self._twin_name(self.sdist.filename),
        }
        for digest in self.digests:
            pairs[digest] = _hex_twin(digest)
            pairs[digest[3:16]] = _hex_twin(digest[3:16])  # the +f/<h3>/<h13>/ part of URLs
        for word in WORDS:
            pairs[word] = _rot13(word)
        return pairs

    @property
    def digests(self) -> list[str]:
        metadata = hashlib.sha256(self.wheel.metadata).hexdigest()
        return [self.wheel.sha256, self.sdist.sha256, self.doc_sha256, metadata]

    @staticmethod
    def _twin_name(name: str) -> str:
        return name.lower().replace("qwzmarmot", "qwzbadger").replace(VERSION, "7.7.7rc66")

    def twin(self, text: str) -> str:
        for real, made_up in sorted(self.pairs.items(), key=lambda item: -len(item[0])):
            text = text.replace(real, made_up)
        return text

    def fill(self, twin: bool) -> dict[str, str]:
        """Values for the private-side path parameters."""
        values = {
            "project": "qwzmarmot-lib",
            "version": VERSION,
            "filename": self.wheel.filename,
            "h3": self.wheel.sha256[:3],
            "h13": self.wheel.sha256[3:16],
            "path": DOC_PAGE,
        }
        if twin:
            values = {key: self.twin(value.lower()) for key, value in values.items()}
        return values


# What a path is templated with, on the side naming private things and on its made-up side:
# (user, index, content made up?). The private index with its content, the private index with
# made-up content, the private index with real and with made-up content, the public index that
# inherits from the private one, an unrelated index.
CONTEXTS = (
    (("owner", PRIVATE_INDEX, False), ("owner", "ghostzqx", True)),
    (("owner", PRIVATE_INDEX, True), ("owner", "ghostzqx", True)),
    (("owner", PRIVATE_INDEX, False), ("owner", PRIVATE_INDEX, True)),
    (("owner", PUBLIC_INDEX, False), ("owner", PUBLIC_INDEX, True)),
    (("stranger", STRANGER_INDEX, False), ("stranger", STRANGER_INDEX, True)),
)
FIXED = {
    "where": "files.example.org",
    "token_id": "0" * 16,
    "name": "style.css",
    "action": "yank",
    "moment": "2026-12-31T00:00:00Z",  # +at/<time>/ pages (issue 21)
    "id": "1",  # a block id
}


SPELLINGS = (
    "/{user}/{index}/+simple/{project}/",
    "/{user}/{index}/+simple/{project}",
    "/{user}/{index}/{project}",
    "/{user}/{index}/{project}/" + VERSION,
    "/{user}/{index}/+pypi/{project}/json",
    "/{user}/{index}/{project}/+latest/+doc/",
    "/{user}/{index}/{project}/+stable/+doc/" + DOC_PAGE,
    "/{user}/{index}/{project}/+latest/+doc",
    "/{user}/{index}/{project}/" + VERSION + "/+doc/index.html",
)


def route_patterns() -> list[str]:
    app = create_app(Settings(datadir=Path("/nonexistent")))
    return sorted({route.path_format for route in app.routes})  # type: ignore[attr-defined]


def _path(pattern: str, user: str, index: str, values: dict[str, str]) -> str:
    filled = {**FIXED, **values, "user": user, "index": index}
    return pattern.format(**{key: quote(value, safe="/") for key, value in filled.items()})


def pairs_of_paths(private: Private) -> list[tuple[str, str]]:
    """(path naming private things, the same path with made-up names): every route pattern in
    every context, and searches (everywhere, in the private index, in the public one)."""
    pairs: list[tuple[str, str]] = []
    for pattern in route_patterns():
        for (user, index, made_up), (twin_user, twin_index, twin_made_up) in CONTEXTS:
            real = _path(pattern, user, index, private.fill(made_up))
            twin = _path(pattern, twin_user, twin_index, private.fill(twin_made_up))
            if real != twin:
                pairs.append((real, twin))
    # Names as users type them (not normalised) and the versions docs are found under.
    for (user, index, _), (twin_user, twin_index, _) in CONTEXTS[:1] + CONTEXTS[3:]:
        for pattern in SPELLINGS:
            real = pattern.format(user=user, index=index, project="QwzMarmot.Lib")
            twin = private.twin(pattern).format(
                user=twin_user, index=twin_index, project="QwzBadger.Lib"
            )
            pairs.append((real, twin))
    for word in (*WORDS, "qwzmarmot", "qwzmarmot-lib", "qwzmarmot_lib", VERSION):
        for scope in ("", f"&index=owner/{PRIVATE_INDEX}", f"&index=owner/{PUBLIC_INDEX}"):
            real = f"/+search?q={quote(word)}{scope}"
            pairs.append((real, private.twin(real)))
    return list(dict.fromkeys(pairs))


def _private_index_pairs(private: Private) -> list[tuple[str, str]]:
    """The pairs of paths naming the private index and a missing one."""
    return [
        (real, twin)
        for real, twin in pairs_of_paths(private)
        if f"/{PRIVATE_INDEX}" in real and "/ghostzqx" in twin
    ]


def seeds(private: Private) -> list[str]:
    paths = ["/", "/+search?q=", "/owner", "/owner/", "/stranger", "/+api", "/+status"]
    for real, twin in pairs_of_paths(private):
        paths += [real, twin]
    return list(dict.fromkeys(paths))


OTHERS = ("anonymous", "stranger", "token elsewhere", "wrong password")

CHECKED = OTHERS


@dataclass
class Crawled:
    backend: str
    private: Private
    crawls: dict[str, Crawl]


def _setup(url: str, base: Path) -> Private:
    def ok(method: str, path: str, body: object, auth: tuple[str, str]) -> None:
        status, answer = call(url, method, path, body, auth=auth)
        assert status in (200, 201), (method, path, status, answer)

    ok("PUT", "/owner", {"password": OWNER[1]}, ROOT)
    ok("PUT", "/stranger", {"password": STRANGER[1]}, ROOT)
    ok("PUT", f"/owner/{PRIVATE_INDEX}", {"bases": [], "acl_read": ["owner"]}, ROOT)
    ok("PUT", f"/owner/{PUBLIC_INDEX}", {"bases": [f"owner/{PRIVATE_INDEX}"]}, ROOT)
    ok("PUT", f"/stranger/{STRANGER_INDEX}", {"bases": []}, ROOT)
    status, config = call(url, "GET", f"/owner/{PRIVATE_INDEX}", auth=OWNER)
    assert status == 200 and config["result"]["acl_read"] == ["owner"], config
    dest = base / "dists"
    wheel = build_wheel(dest, PROJECT, VERSION, summary=SUMMARY, description=DESCRIPTION)
    sdist = build_sdist(dest, PROJECT, VERSION, summary=SUMMARY)
    for dist in (wheel, sdist):
        status, text = upload_dist(url, f"owner/{PRIVATE_INDEX}", dist, OWNER)
        assert status == 200, text
    archive = doc_zip({"index.html": DOC_INDEX, DOC_PAGE: DOC_OTHER})
    status, text = upload_docs(url, f"owner/{PRIVATE_INDEX}", PROJECT, VERSION, archive, OWNER)
    assert status == 200, text
    return Private(wheel, sdist, hashlib.sha256(archive).hexdigest())


def _session(url: str, user: tuple[str, str]) -> str:
    status, answer = call(url, "POST", "/+login", {"user": user[0], "password": user[1]})
    assert status == 200, answer
    return f"cheeseboard_session={answer['result']['password']}"


def _token(url: str) -> str:
    """A read token of the owner's for the public index only."""
    body = {"indexes": [f"owner/{PUBLIC_INDEX}"], "scope": "read"}
    status, made = call(url, "POST", "/owner/+tokens", body, auth=OWNER)
    assert status == 201 and made["result"]["scope"] == "read", made
    return str(made["result"]["token"])


@pytest.fixture(scope="module", params=BACKENDS)
def crawled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Crawled]:
    """One server per backend, set up as the module says, crawled by each identity (the owner
    first, so that whatever the owner's requests leave in caches is there for the others)."""
    base = tmp_path_factory.mktemp("read-leaks")
    with pytest.MonkeyPatch.context() as env:
        factory = factory_for(request.param, request, base, env)
        try:
            server = factory.start("http://127.0.0.1:9/simple/", "--login-attempts", "1000000")
            private = _setup(server.url, base)
            identities = {
                "owner": Client(server.url, basic(*OWNER), _session(server.url, OWNER)),
                "anonymous": Client(server.url, None, None),
                "stranger": Client(server.url, basic(*STRANGER), _session(server.url, STRANGER)),
                # the owner's read token for the public index: reads the private one as anonymous
                "token elsewhere": Client(server.url, basic("__token__", _token(server.url)), None),
                # the owner's name with a wrong password and a forged session: reads as anonymous
                "wrong password": Client(
                    server.url, basic(OWNER[0], "not-the-password"), "cheeseboard_session=forged"
                ),
            }
            crawls = {}
            for identity, client in identities.items():
                try:
                    if identity == "wrong password":  # each request checks a password: slow
                        crawls[identity] = crawl(
                            client,
                            identity,
                            [path for pair in _private_index_pairs(private) for path in pair],
                            MAX_REQUESTS,
                            follow=lambda path: False,
                            variants_of=lambda path: ((("GET", HTML), ("GET", ANY))),
                        )
                    else:
                        crawls[identity] = crawl(client, identity, seeds(private), MAX_REQUESTS)
                finally:
                    client.close()
            yield Crawled(request.param, private, crawls)
        finally:
            factory.stop_all()


# Parts of an answer that differ between any two requests, whatever they name.
_VOLATILE = (
    (re.compile(rb'(name="csrf_token" value=")[^"]*'), rb"\1#"),
    (re.compile(rb"(cheeseboard_login=)[^;\"'\s]*"), rb"\1#"),
    (re.compile(rb"\d+(?:\.\d+)?(\s*ms\b)"), rb"#\1"),  # how long a search took
)
_COMPARED_HEADERS = (
    "content-type",
    "www-authenticate",
    "location",
    "allow",
    "cache-control",
    "content-disposition",
)


def _normal_body(body: bytes) -> bytes:
    for pattern, replacement in _VOLATILE:
        body = pattern.sub(replacement, body)
    return body.lower()


def _swapped(text: str, swap: dict[str, str]) -> str:
    for real, made_up in sorted(swap.items(), key=lambda item: -len(item[0])):
        text = text.replace(real, made_up)
    return text


def _comparable(exchange: Exchange, swap: dict[str, str]) -> tuple[object, ...]:
    """Status, chosen headers, header names and body, lower-cased, the names in ``swap``
    replaced by their made-up twins and volatile parts blanked."""

    def norm(text: bytes) -> bytes:
        return _normal_body(_swapped(text.decode("latin-1").lower(), swap).encode("latin-1"))

    headers = {key: norm(value.encode("latin-1")) for key, value in exchange.headers}
    size: int | None = int(headers.get("content-length", b"-1"))
    if exchange.path.startswith("/+search"):  # it shows how long the search took
        headers.pop("content-length", None)
        size = None if exchange.method == "HEAD" else len(_normal_body(exchange.body))
    chosen = tuple(headers.get(name) for name in _COMPARED_HEADERS)
    return exchange.status, size, chosen, tuple(sorted(headers)), norm(exchange.body)


def _leaks(crawled: Crawled, identity: str) -> list[str]:
    found = []
    secrets = crawled.private.pairs
    for exchange in crawled.crawls[identity].exchanges:
        asked = request_words(exchange)
        text = exchange.text()
        for secret in secrets:
            if secret in text and secret not in asked:
                at = text.index(secret)
                context = text[max(0, at - 60) : at + len(secret) + 60].replace("\n", " ")
                found.append(f"{exchange}: {secret!r} in ...{context}...")
    return found


def _summary(problems: list[str], limit: int = 60) -> str:
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "\n".join(problems[:limit]) + more


def test_the_owner_finds_every_private_string(crawled: Crawled) -> None:
    """The self-check: the same crawl as the owner sees each private string in an answer to a
    request that did not name it (so a leak would have been seen), and the crawl is complete."""
    found: dict[str, str] = {}
    owner = crawled.crawls["owner"]
    assert not owner.truncated, f"the crawl hit its bound of {MAX_REQUESTS} requests"
    for exchange in owner.exchanges:
        asked = request_words(exchange)
        text = exchange.text()
        for secret in crawled.private.pairs:
            if secret not in found and secret in text and secret not in asked:
                found[secret] = str(exchange)
    missing = sorted(set(crawled.private.pairs) - set(found))
    assert not missing, f"the owner's crawl ({len(owner.exchanges)} requests) never saw {missing}"


@pytest.mark.parametrize("identity", CHECKED)
def test_no_private_string_reaches_others(crawled: Crawled, identity: str) -> None:
    """No header or body answered to anonymous callers or another user holds a private string
    their request did not name."""
    result = crawled.crawls[identity]
    assert not result.truncated, f"the crawl hit its bound of {MAX_REQUESTS} requests"
    leaks = _leaks(crawled, identity)
    assert not leaks, f"{len(leaks)} leaks to {identity} ({crawled.backend}):\n{_summary(leaks)}"


@pytest.mark.parametrize("identity", CHECKED)
def test_private_and_missing_names_answer_alike(crawled: Crawled, identity: str) -> None:
    """A path naming private things and its twin naming made-up things of the same length are
    answered alike: status, headers that matter, body (names swapped back)."""
    result = crawled.crawls[identity]
    differences = []
    pairs = pairs_of_paths(crawled.private)
    if identity == "wrong password":
        pairs = _private_index_pairs(crawled.private)
    for real, twin in pairs:
        real_answers, twin_answers = result.answers(real), result.answers(twin)
        assert real_answers.keys() == twin_answers.keys(), (real, twin)
        # the names this pair swaps: the private ones its first path names and its twin doesn't
        swap = {
            secret: made_up
            for secret, made_up in crawled.private.pairs.items()
            if secret in unquote(real).lower() and secret not in unquote(twin).lower()
        }
        for key, answer in real_answers.items():
            other = twin_answers[key]
            left, right = _comparable(answer, swap), _comparable(other, {})
            if left != right:
                differences.append(f"{answer}  vs  {other}: {_difference(left, right)}")
    assert not differences, (
        f"{len(differences)} private/made-up pairs told apart by {identity} "
        f"({crawled.backend}):\n{_summary(differences)}"
    )


def _difference(left: tuple[object, ...], right: tuple[object, ...]) -> str:
    names = ("status", "content-length", "headers", "header names", "body")
    parts = []
    for name, a, b in zip(names, left, right, strict=True):
        if a != b:
            if name == "body":
                assert isinstance(a, bytes) and isinstance(b, bytes)
                at = next(
                    (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                    min(len(a), len(b)),
                )
                parts.append(f"body at {at}: {a[at - 30 : at + 50]!r} vs {b[at - 30 : at + 50]!r}")
            else:
                parts.append(f"{name}: {a!r} vs {b!r}")
    return "; ".join(parts)


def test_json_answers_are_json(crawled: Crawled) -> None:
    """A guard on the crawl itself: the API answered the owner's JSON requests with JSON (so
    JSON answers were searched and their links followed)."""
    owner = crawled.crawls["owner"]
    status, body = next(
        (x.status, x.body)
        for x in owner.exchanges
        if x.path == f"/owner/{PRIVATE_INDEX}" and x.method == "GET" and x.accept == JSON
    )
    assert status == 200 and "acl_read" in json.loads(body)["result"]
