"""Upload paths an attack review broke (issue 17): links in sdists, documentation as a way past
the dependency-confusion guard, and non-volatile immutability under concurrent uploads.

Every test drives a real server over HTTP; races are real threads released by one barrier.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import stat
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.api import basic, call, doc_zip, upload_body, upload_dist, upload_docs
from tests.support.packages import Dist, build_sdist, build_wheel, dist_name
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
JSON = "application/vnd.pypi.simple.v1+json"
RACERS = 8
T = TypeVar("T")


@pytest.fixture
def mirror_server(shared_mirror_server: CheeseboardServer) -> CheeseboardServer:
    """One server for the module (tests/conftest.py); users and indexes reset after each test."""
    return shared_mirror_server


def _setup_local_stable(server: CheeseboardServer, volatile: str) -> None:
    """User ``local`` and ``local/stable`` (bases root/pypi, ``volatile`` as given), by root."""
    status, body = call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)
    assert status == 201, body
    config = {"bases": "root/pypi", "volatile": volatile}
    status, body = call(server.url, "PUT", "/local/stable", config, auth=ROOT)
    assert status == 200, body


def _files(server: CheeseboardServer, project: str) -> dict[str, dict[str, Any]]:
    """The PEP 691 files of ``project`` on local/stable by filename ({} if it has no page)."""
    request = urllib.request.Request(
        f"{server.url}local/stable/+simple/{project}/", headers={"Accept": JSON}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            assert error.code == 404, error.read()
        return {}
    return {entry["filename"]: entry for entry in page["files"]}


def _download_sha256(server: CheeseboardServer, project: str, filename: str) -> str:
    """sha256 of the bytes the server serves for ``filename`` (followed from the simple page)."""
    url = urllib.parse.urljoin(
        f"{server.url}local/stable/+simple/{project}/", _files(server, project)[filename]["url"]
    )
    with urllib.request.urlopen(url.split("#")[0], timeout=30) as response:
        return hashlib.sha256(response.read()).hexdigest()


def _doc_sha256(server: CheeseboardServer, project: str, version: str) -> str:
    """The sha256 the release lists for its doc zip, checked against the bytes served."""
    status, body = call(server.url, "GET", f"/local/stable/{project}/{version}")
    assert status == 200, body
    links = [link for link in body["result"]["+links"] if link["rel"] == "doczip"]
    assert len(links) == 1, links
    with urllib.request.urlopen(links[0]["href"], timeout=30) as response:
        served = hashlib.sha256(response.read()).hexdigest()
    assert served == links[0]["hashes"]["sha256"]
    return served


def _race(count: int, attempt: Callable[[int], T]) -> list[T]:
    """Run ``attempt(0..count-1)`` in ``count`` threads that start together."""
    barrier = threading.Barrier(count)

    def one(number: int) -> T:
        barrier.wait()
        return attempt(number)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _post(server: CheeseboardServer, body: bytes, content_type: str) -> tuple[int, str]:
    """One upload POST to local/stable as ``local``."""
    request = urllib.request.Request(
        f"{server.url}local/stable/",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": basic(*LOCAL)},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


# --- links in sdists (item 5) -------------------------------------------------------------------


def _link(name: str, kind: bytes, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def _regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _sdist_plus(dest: Path, base: Dist, extra: list[tuple[tarfile.TarInfo, bytes]]) -> Dist:
    """``base``'s sdist with ``extra`` members after its own, under the same filename."""
    buffer = io.BytesIO()
    with (
        tarfile.open(base.path) as original,
        tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for info in original.getmembers():
            archive.addfile(info, original.extractfile(info) if info.isfile() else None)
        for info, data in extra:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return _written(dest, base, base.filename, gzip.compress(buffer.getvalue(), mtime=0))


def _written(dest: Path, base: Dist, filename: str, data: bytes) -> Dist:
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / filename
    path.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    return dataclasses.replace(base, path=path, filename=filename, sha256=sha256, size=len(data))


def test_sdists_with_links_are_refused(mirror_server: CheeseboardServer, tmp_path: Path) -> None:
    """Symlinks (absolute, ../), hard links, a link then a file of its name, and zip symlinks:
    each sdist is refused with 400 naming the member, and nothing is stored."""
    _setup_local_stable(mirror_server, volatile="False")
    base = build_sdist(tmp_path / "base", "linked-pkg", "1.0")
    top = f"{dist_name('linked-pkg')}-1.0"
    cases: dict[str, list[tuple[tarfile.TarInfo, bytes]]] = {
        "absolute-symlink": [_link(f"{top}/evil", tarfile.SYMTYPE, "/etc")],
        "dotdot-symlink": [_link(f"{top}/evil", tarfile.SYMTYPE, "../../../../tmp")],
        "hardlink": [_link(f"{top}/evil", tarfile.LNKTYPE, "/etc/passwd")],
        "link-then-file": [
            _link(f"{top}/evil", tarfile.SYMTYPE, "/tmp/cheeseboard-escape"),
            _regular(f"{top}/evil", b"written through the link\n"),
        ],
    }
    sdists = {case: _sdist_plus(tmp_path / case, base, extra) for case, extra in cases.items()}
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr(f"{top}/PKG-INFO", base.metadata)
        link = zipfile.ZipInfo(f"{top}/evil")
        link.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc")
    sdists["zip-symlink"] = _written(tmp_path / "zip", base, f"{top}.zip", zipped.getvalue())
    for case, sdist in sdists.items():
        status, text = upload_dist(mirror_server.url, "local/stable", sdist, LOCAL)
        assert status == 400, (case, status, text)
        assert f"'{top}/evil'" in text and "link" in text and "are refused" in text, (case, text)
    assert _files(mirror_server, "linked-pkg") == {}
    status, text = upload_dist(mirror_server.url, "local/stable", base, LOCAL)
    assert status == 200, text  # the same sdist without links is fine
    assert list(_files(mirror_server, "linked-pkg")) == [base.filename]


# --- documentation and the dependency-confusion guard (item 6) ----------------------------------


def _upload_token(server: CheeseboardServer) -> tuple[str, str]:
    """Basic credentials of a token of ``local`` that may only upload to local/stable."""
    status, body = call(
        server.url, "POST", "/local/+tokens", {"indexes": ["local/stable"]}, auth=LOCAL
    )
    assert status == 201, body
    return "local", str(body["result"]["token"])


@pytest.mark.parametrize("credential", ["password", "upload-token"])
def test_doc_upload_cannot_claim_an_upstream_name(
    server_factory: ServerFactory, tmp_path: Path, credential: str
) -> None:
    """Docs for a name the base mirror serves get 403, as its wheel then does; upstream's file
    stays the one served (password and upload-only token alike)."""
    public = build_wheel(tmp_path / "public", "foo", "1.0")
    with UpstreamServer() as upstream:
        upstream.add(public)
        server = server_factory.start(upstream.simple_url)
        _setup_local_stable(server, volatile="True")
        auth = LOCAL if credential == "password" else _upload_token(server)
        docs = doc_zip({"index.html": "<p>mine now</p>"})
        status, text = upload_docs(server.url, "local/stable", "foo", "1.0", docs, auth)
        assert status == 403, text
        assert "root/pypi" in text and "allow_upstream_names" in text
        private = build_wheel(tmp_path / "private", "foo", "9.0")
        status, text = upload_dist(server.url, "local/stable", private, auth)
        assert status == 403, text
        assert list(_files(server, "foo")) == [public.filename]
        status, body = call(server.url, "GET", "/local/stable/foo/1.0")
        assert status == 404, body  # no release, no doc zip was made on local/stable


def test_doc_upload_needs_an_existing_release(
    mirror_server: CheeseboardServer, tmp_path: Path
) -> None:
    """A doc zip for a release the index lacks is 400 "no release" and creates none; once the
    release exists it attaches (also when spelled 1.0.0), and never to another version."""
    _setup_local_stable(mirror_server, volatile="False")
    docs = doc_zip({"index.html": "<p>docs</p>"})
    status, text = upload_docs(mirror_server.url, "local/stable", "solo", "1.0", docs, LOCAL)
    assert status == 400 and "no release solo 1.0" in text, (status, text)
    assert call(mirror_server.url, "GET", "/local/stable/solo")[0] == 404
    wheel = build_wheel(tmp_path, "solo", "1.0")
    assert upload_dist(mirror_server.url, "local/stable", wheel, LOCAL)[0] == 200
    status, text = upload_docs(mirror_server.url, "local/stable", "solo", "1.0", docs, LOCAL)
    assert status == 200 and "stored" in text, text
    status, text = upload_docs(mirror_server.url, "local/stable", "solo", "1.0.0", docs, LOCAL)
    assert status == 200 and "identical" in text, text
    status, text = upload_docs(mirror_server.url, "local/stable", "solo", "2.0", docs, LOCAL)
    assert status == 400 and "no release solo 2.0" in text, (status, text)
    status, body = call(mirror_server.url, "GET", "/local/stable/solo")
    assert status == 200, body
    assert sorted(body["result"]) == ["1.0"]
    assert _doc_sha256(mirror_server, "solo", "1.0") == hashlib.sha256(docs).hexdigest()


# --- concurrent uploads of one filename (item 7) ------------------------------------------------


def _variants(dest: Path, name: str, version: str) -> list[Dist]:
    """RACERS wheels of one filename, each with other bytes."""
    wheels = [
        build_wheel(dest / str(number), name, version, summary=f"variant {number}")
        for number in range(RACERS)
    ]
    assert len({wheel.filename for wheel in wheels}) == 1
    assert len({wheel.sha256 for wheel in wheels}) == RACERS
    return wheels


def _race_uploads(server: CheeseboardServer, wheels: list[Dist]) -> list[tuple[int, str]]:
    bodies = [upload_body(wheel) for wheel in wheels]
    return _race(len(bodies), lambda number: _post(server, *bodies[number]))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_uploads_to_non_volatile_index(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """8 simultaneous uploads of one filename with other bytes: one 200 "stored", seven 409,
    and the winner's bytes are served from then on; same for doc zips; 8 identical uploads
    store once and answer "identical" to the rest."""
    factory: ServerFactory = request.getfixturevalue(
        "server_factory" if backend == "sqlite" else "pg_server_factory"
    )
    upstream: UpstreamServer = request.getfixturevalue("html_upstream")
    server = factory.start(upstream.simple_url, "--workers", "2")
    _setup_local_stable(server, volatile="False")
    wheels = _variants(tmp_path / "racers", "racer", "1.0")
    replies = _race_uploads(server, wheels)
    statuses = sorted(status for status, _ in replies)
    print(f"\n{backend}: {RACERS} racing uploads answered {statuses}")
    assert statuses == [200] + [409] * (RACERS - 1), replies
    winner = next(n for n, (status, _) in enumerate(replies) if status == 200)
    assert "stored" in replies[winner][1], replies
    assert all("File already exists" in text for status, text in replies if status == 409)
    filename = wheels[0].filename
    assert _files(server, "racer")[filename]["hashes"]["sha256"] == wheels[winner].sha256
    assert _download_sha256(server, "racer", filename) == wheels[winner].sha256
    loser = wheels[(winner + 1) % RACERS]
    assert upload_dist(server.url, "local/stable", loser, LOCAL)[0] == 409
    assert _download_sha256(server, "racer", filename) == wheels[winner].sha256

    zips = [doc_zip({"index.html": f"<p>docs {number}</p>"}) for number in range(RACERS)]
    doc_replies = _race(
        RACERS,
        lambda number: upload_docs(server.url, "local/stable", "racer", "1.0", zips[number], LOCAL),
    )
    assert sorted(status for status, _ in doc_replies) == [200] + [409] * (RACERS - 1)
    doc_winner = next(n for n, (status, _) in enumerate(doc_replies) if status == 200)
    assert _doc_sha256(server, "racer", "1.0") == hashlib.sha256(zips[doc_winner]).hexdigest()

    same = build_wheel(tmp_path / "same", "racer", "2.0")
    replies = _race_uploads(server, [same] * RACERS)
    assert [status for status, _ in replies] == [200] * RACERS, replies
    kinds = sorted("stored" if "stored" in text else "identical" for _, text in replies)
    assert kinds == ["identical"] * (RACERS - 1) + ["stored"], replies
    assert _download_sha256(server, "racer", same.filename) == same.sha256


def test_concurrent_uploads_to_volatile_index(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """On a volatile index the last writer wins, as documented: every racer is stored, the page
    and the bytes agree on one of them, and a later upload replaces it."""
    server = server_factory.start(html_upstream.simple_url, "--workers", "2")
    _setup_local_stable(server, volatile="True")
    wheels = _variants(tmp_path / "racers", "racer", "1.0")
    replies = _race_uploads(server, wheels)
    assert all(status == 200 and "stored" in text for status, text in replies), replies
    filename = wheels[0].filename
    listed = _files(server, "racer")[filename]["hashes"]["sha256"]
    assert listed in {wheel.sha256 for wheel in wheels}
    assert _download_sha256(server, "racer", filename) == listed
    last = next(wheel for wheel in wheels if wheel.sha256 != listed)
    assert upload_dist(server.url, "local/stable", last, LOCAL)[0] == 200
    assert _download_sha256(server, "racer", filename) == last.sha256
