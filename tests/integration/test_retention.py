"""Retention (issue 23): the mirror cache cap evicts least recently used files, which come back
from upstream on the next request; stage indexes' cleanup policies remove releases; a dry run
lists what a run removes and removes nothing; every removal is in the audit log."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from cheeseboard.store.s3 import S3Client, S3Location
from cheeseboard.store.s3_blobs import object_name
from tests.support.api import call, upload_dist
from tests.support.clients import installed, pip_install
from tests.support.packages import Dist, build_wheel
from tests.support.server import (
    ROOT_PASSWORD,
    CheeseboardServer,
    ServerFactory,
    free_port,
    server_command,
)
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
DAY = 86400


@pytest.fixture
def mirror_server(
    server_factory: ServerFactory, html_upstream: UpstreamServer
) -> CheeseboardServer:
    """A mirror server that leaves retention to the test's own ``gc`` runs (its schedule would
    otherwise run retention a few seconds after start)."""
    return server_factory.start(html_upstream.simple_url, "--retention-interval", "0")


def gc(datadir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        server_command("gc", "--datadir", str(datadir), *args),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def file_url(server: CheeseboardServer, index: str, dist: Dist) -> str:
    page_url = f"{server.url}{index}/+simple/{dist.name}/"
    with urllib.request.urlopen(page_url, timeout=30) as page:
        html = page.read().decode()
    href = html.split(dist.filename)[0].rsplit('href="', 1)[1] + dist.filename
    return urllib.parse.urljoin(page_url, href)


def download(server: CheeseboardServer, index: str, dist: Dist) -> bytes:
    with urllib.request.urlopen(file_url(server, index, dist), timeout=30) as response:
        data: bytes = response.read()
    return data


def stored(datadir: Path, dist: Dist) -> bool:
    return (datadir / "blobs" / dist.sha256[:2] / dist.sha256[2:4] / dist.sha256).is_file()


def listed(output: str, verb: str) -> set[str]:
    """The names a retention report lists after ``verb`` (``evict``/``remove``)."""
    names = set()
    for line in output.splitlines():
        words = line.split()
        for lead in ((verb,), ("would", verb), (verb + "ed",), (verb + "d",)):
            if tuple(words[: len(lead)]) == lead and len(words) > len(lead):
                names.add(words[len(lead)])
    return names


def audit(server: CheeseboardServer, action: str) -> list[str]:
    status, body = call(server.url, "GET", f"/+audit?actor=retention&action={action}", auth=ROOT)
    assert status == 200, body
    return sorted(entry["target"] for entry in body["result"])


def bucket(s3_url: str) -> set[str]:
    async def names() -> set[str]:
        async with S3Client(S3Location.from_url(s3_url)) as client:
            return {name async for name, _, _ in client.list("")}

    return asyncio.run(names())


def wheels(dists: dict[str, list[Dist]], *names: str) -> list[Dist]:
    return [next(d for d in dists[name] if d.filename.endswith(".whl")) for name in names]


def test_cache_cap_evicts_least_recently_used_and_refetches(
    mirror_server: CheeseboardServer,
    html_upstream: UpstreamServer,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
) -> None:
    """Over the cap, the least recently used file goes; the recently used stay; the evicted one
    is fetched again from upstream on request and pip installs it."""
    server, datadir = mirror_server, mirror_server.datadir
    lib_a, lib_b, lib_c = wheels(dists, "lib-a", "lib_b", "lib-c")
    for dist in (lib_a, lib_b, lib_c):
        assert download(server, "root/pypi", dist) == dist.path.read_bytes()
        time.sleep(0.05)
    time.sleep(1.2)  # past the hot path's one-second memo of a stored file
    assert download(server, "root/pypi", lib_a) == lib_a.path.read_bytes()  # used again
    server.stop()  # its last-use times are written at shutdown (else within 30 s)
    cap = str(lib_a.path.stat().st_size + lib_c.path.stat().st_size)

    dry = gc(datadir, "--mirror-cache-size", cap, "--dry-run")
    evicted = {f"root/pypi/{lib_b.filename}"}
    assert listed(dry.stdout, "evict") == evicted, dry.stdout
    assert all(stored(datadir, d) for d in (lib_a, lib_b, lib_c))

    done = gc(datadir, "--mirror-cache-size", cap)
    assert listed(done.stdout, "evict") == evicted, done.stdout
    assert not stored(datadir, lib_b)
    assert stored(datadir, lib_a) and stored(datadir, lib_c)
    again = gc(datadir, "--mirror-cache-size", cap, "--dry-run")
    assert listed(again.stdout, "evict") == set(), again.stdout  # under the cap now

    server.start()
    assert audit(server, "evict") == sorted(evicted)
    html_upstream.clear_requests()
    result = pip_install(server.index_url, tmp_path / "target", "lib_b")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lib_b" in {name.replace("-", "_") for name in installed(tmp_path / "target")}
    paths = [r.path for r in html_upstream.requests if r.method == "GET"]
    assert paths.count(f"/files/{lib_b.filename}") == 1, paths
    assert stored(datadir, lib_b)


def test_server_evicts_on_its_schedule(
    server_factory: ServerFactory, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    """With --mirror-cache-size and --retention-interval a running two-worker server evicts by
    itself, once (one audit entry), and serves the evicted file again from upstream."""
    lib_a, lib_b = wheels(dists, "lib-a", "lib_b")
    cap = lib_b.path.stat().st_size
    server = server_factory.start(
        html_upstream.simple_url,
        "--mirror-cache-size",
        str(cap),
        "--retention-interval",
        "1",
        "--workers",
        "2",
    )
    assert download(server, "root/pypi", lib_a) == lib_a.path.read_bytes()
    time.sleep(0.05)
    assert download(server, "root/pypi", lib_b) == lib_b.path.read_bytes()
    deadline = time.monotonic() + 20
    while stored(server.datadir, lib_a) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stored(server.datadir, lib_a), server.log()
    assert stored(server.datadir, lib_b)
    assert audit(server, "evict") == [f"root/pypi/{lib_a.filename}"]
    html_upstream.clear_requests()
    assert download(server, "root/pypi", lib_a) == lib_a.path.read_bytes()  # fetched again
    assert [r.path for r in html_upstream.requests if r.method == "GET"].count(
        f"/files/{lib_a.filename}"
    ) == 1


def test_download_under_way_finishes_when_its_file_is_evicted(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A client reading a big cached file while it is evicted gets every byte."""
    big = build_wheel(tmp_path, "bigpkg", "1.0", payload_size=16 * 1024 * 1024)
    with UpstreamServer(mode="html") as upstream:
        upstream.add(big)
        server = server_factory.start(upstream.simple_url, "--retention-interval", "0")
        assert download(server, "root/pypi", big) == big.path.read_bytes()
        parts = urllib.parse.urlsplit(file_url(server, "root/pypi", big))
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        connection.request("GET", parts.path)
        response = connection.getresponse()
        assert response.status == 200
        digest = hashlib.sha256(response.read(64 * 1024))
        gc(server.datadir, "--mirror-cache-size", "1K")
        assert not stored(server.datadir, big)
        while chunk := response.read(1024 * 1024):
            digest.update(chunk)
        connection.close()
        assert digest.hexdigest() == big.sha256
        assert download(server, "root/pypi", big) == big.path.read_bytes()


@pytest.fixture
def alice(mirror_server: CheeseboardServer) -> CheeseboardServer:
    assert call(mirror_server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    return mirror_server


def versions(server: CheeseboardServer, index: str, project: str) -> set[str]:
    status, body = call(server.url, "GET", f"/{index}/{project}", auth=ALICE)
    if status == 404:
        return set()
    assert status == 200, body
    return set(body["result"])


def test_keep_dev_releases_removes_older_pre_releases(
    alice: CheeseboardServer, tmp_path: Path
) -> None:
    """keep_dev_releases=2 keeps the two highest dev/pre-releases and every final release; the
    dry run lists exactly what the run removes; the audit log names each removal."""
    server = alice
    assert call(server.url, "PUT", "/alice/dev", {"volatile": True}, auth=ROOT)[0] == 200
    uploaded = ["1.0", "1.1.dev1", "1.1.dev2", "1.1rc1", "1.2.dev1", "2.0"]
    for version in uploaded:
        dist = build_wheel(tmp_path, "tool", version)
        assert upload_dist(server.url, "alice/dev", dist, ALICE)[0] == 200
    status, body = call(server.url, "PATCH", "/alice/dev", ["keep_dev_releases=2"], auth=ALICE)
    assert status == 200, body
    assert body["result"]["keep_dev_releases"] == 2

    dry = gc(server.datadir, "--dry-run")
    doomed = {"alice/dev/tool==1.1.dev1", "alice/dev/tool==1.1.dev2"}
    assert listed(dry.stdout, "remove") == doomed, dry.stdout
    assert versions(server, "alice/dev", "tool") == set(uploaded)

    done = gc(server.datadir)
    assert listed(done.stdout, "remove") == doomed, done.stdout
    assert versions(server, "alice/dev", "tool") == {"1.0", "1.1rc1", "1.2.dev1", "2.0"}
    assert audit(server, "remove") == sorted(doomed)
    assert listed(gc(server.datadir).stdout, "remove") == set()


def test_max_release_age_removes_old_releases_of_a_volatile_index(
    alice: CheeseboardServer, tmp_path: Path
) -> None:
    """max_release_age=30 removes nothing today, and 1.0 once it is 31 days old (--as-of)."""
    server = alice
    body = {"volatile": True, "max_release_age": "30"}
    assert call(server.url, "PUT", "/alice/tmp", body, auth=ROOT)[0] == 200
    dist = build_wheel(tmp_path, "old", "1.0")
    assert upload_dist(server.url, "alice/tmp", dist, ALICE)[0] == 200
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 31 * DAY))

    assert listed(gc(server.datadir).stdout, "remove") == set()
    dry = gc(server.datadir, "--dry-run", "--as-of", later)
    assert listed(dry.stdout, "remove") == {"alice/tmp/old==1.0"}, dry.stdout
    assert versions(server, "alice/tmp", "old") == {"1.0"}
    done = gc(server.datadir, "--as-of", later)
    assert listed(done.stdout, "remove") == {"alice/tmp/old==1.0"}, done.stdout
    assert versions(server, "alice/tmp", "old") == set()
    assert audit(server, "remove") == ["alice/tmp/old==1.0"]


def test_policies_are_refused_on_a_non_volatile_index(alice: CheeseboardServer) -> None:
    """A non-volatile index refuses the policies with the reason, on creation and on edit;
    making a volatile index with a policy non-volatile is refused too."""
    server = alice
    body = {"volatile": False, "max_release_age": "30"}
    status, answer = call(server.url, "PUT", "/alice/prod", body, auth=ROOT)
    assert status == 400 and "non-volatile" in answer["message"], answer
    assert call(server.url, "PUT", "/alice/prod", {"volatile": False}, auth=ROOT)[0] == 200
    for item in ("max_release_age=7", "keep_dev_releases=1"):
        status, answer = call(server.url, "PATCH", "/alice/prod", [item], auth=ALICE)
        assert status == 400 and "non-volatile" in answer["message"], answer
    assert call(server.url, "PUT", "/alice/dev", {"keep_dev_releases": 1}, auth=ROOT)[0] == 200
    status, answer = call(server.url, "PATCH", "/alice/dev", ["volatile=False"], auth=ALICE)
    assert status == 400 and "keep_dev_releases" in answer["message"], answer
    status, answer = call(server.url, "PATCH", "/alice/dev", ["keep_dev_releases=x"], auth=ALICE)
    assert status == 400 and "whole number" in answer["message"], answer
    status, answer = call(server.url, "PATCH", "/alice/dev", ["keep_dev_releases-="], auth=ALICE)
    assert status == 200 and "keep_dev_releases" not in answer["result"], answer


def test_retention_on_postgres_and_s3(
    tmp_path: Path,
    postgres_url: str,
    s3_url: str,
    html_upstream: UpstreamServer,
    dists: dict[str, list[Dist]],
) -> None:
    """Two nodes sharing PostgreSQL and a bucket: the least recently used object leaves the
    bucket and comes back on request; a policy removes a dev release; both are audited."""
    factory = ServerFactory(tmp_path, database_url=postgres_url, blob_url=s3_url)
    try:
        off = ("--retention-interval", "0")  # retention only from the test's gc runs
        first = factory.start(html_upstream.simple_url, *off, name="one")
        second = factory.start(html_upstream.simple_url, *off, name="two")
        lib_a, lib_b = wheels(dists, "lib-a", "lib_b")
        for node, dist in ((first, lib_a), (first, lib_b)):
            assert download(node, "root/pypi", dist) == dist.path.read_bytes()
            time.sleep(0.05)
        time.sleep(0.1)
        assert download(second, "root/pypi", lib_b) == lib_b.path.read_bytes()  # used on two
        assert call(first.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
        assert call(first.url, "PUT", "/alice/dev", {"keep_dev_releases": 1}, auth=ROOT)[0] == 200
        for version in ("1.0.dev1", "1.0.dev2"):
            wheel = build_wheel(tmp_path / "d", "tool", version)
            assert upload_dist(second.url, "alice/dev", wheel, ALICE)[0] == 200
        first.stop()
        second.stop()  # both write their last-use times

        storage = ("--database-url", postgres_url, "--blob-url", s3_url)
        cap = str(lib_b.path.stat().st_size)
        dry = gc(first.datadir, *storage, "--mirror-cache-size", cap, "--dry-run")
        assert listed(dry.stdout, "evict") == {f"root/pypi/{lib_a.filename}"}, dry.stdout
        assert listed(dry.stdout, "remove") == {"alice/dev/tool==1.0.dev1"}, dry.stdout
        assert object_name(lib_a.sha256) in bucket(s3_url)
        done = gc(first.datadir, *storage, "--mirror-cache-size", cap)
        assert listed(done.stdout, "evict") == listed(dry.stdout, "evict"), done.stdout
        assert listed(done.stdout, "remove") == listed(dry.stdout, "remove"), done.stdout
        left = bucket(s3_url)
        assert object_name(lib_a.sha256) not in left and object_name(lib_b.sha256) in left

        second.start()
        assert audit(second, "evict") == [f"root/pypi/{lib_a.filename}"]
        assert audit(second, "remove") == ["alice/dev/tool==1.0.dev1"]
        assert versions(second, "alice/dev", "tool") == {"1.0.dev2"}
        assert download(second, "root/pypi", lib_a) == lib_a.path.read_bytes()
    finally:
        factory.stop_all()


def test_policies_are_set_with_devpi_and_the_cheeseboard_client(
    alice: CheeseboardServer, tmp_path: Path
) -> None:
    """``devpi index`` and ``cheeseboard index`` set and drop the policies; a refusal is shown
    with its reason; the web page's configuration table lists them."""
    from tests.support.client_cli import Cli
    from tests.support.devpi import DevpiClient

    server = alice
    assert call(server.url, "PUT", "/alice/dev", {}, auth=ROOT)[0] == 200
    assert call(server.url, "PUT", "/alice/prod", {"volatile": False}, auth=ROOT)[0] == 200
    devpi = DevpiClient(tmp_path / "devpi", server_log=server.log)
    devpi.use(server.url)
    devpi.login(*ALICE)
    devpi.ok("index", "alice/dev", "keep_dev_releases=3", "max_release_age=90")
    config = call(server.url, "GET", "/alice/dev")[1]["result"]
    assert (config["keep_dev_releases"], config["max_release_age"]) == (3, 90)
    assert "non-volatile" in devpi.fails("index", "alice/prod", "max_release_age=90")

    cli = Cli(tmp_path / "client")
    cli.ok("use", server.url)
    cli.ok("login", "alice", "--password", ALICE[1])
    cli.ok("index", "alice/dev", "max_release_age-=", "keep_dev_releases=1")
    config = call(server.url, "GET", "/alice/dev")[1]["result"]
    assert config["keep_dev_releases"] == 1 and "max_release_age" not in config
    refused = cli("index", "alice/prod", "keep_dev_releases=1")
    assert refused.returncode == 1 and "non-volatile" in refused.stderr, refused.stderr
    request = urllib.request.Request(
        f"{server.url}alice/dev", headers={"Accept": "text/html,application/xhtml+xml"}
    )
    with urllib.request.urlopen(request, timeout=30) as page:
        html = page.read().decode()
    assert "<dt>keep_dev_releases</dt><dd>1</dd>" in html


def test_policies_survive_export_and_import(alice: CheeseboardServer, tmp_path: Path) -> None:
    """A dump keeps the policies (index config); last-use times are not part of it."""
    server = alice
    body = {"keep_dev_releases": 2, "max_release_age": 14}
    assert call(server.url, "PUT", "/alice/dev", body, auth=ROOT)[0] == 200
    dump = tmp_path / "dump"
    for args in (
        ("export", "--datadir", str(server.datadir), str(dump)),
        ("import", "--datadir", str(tmp_path / "imported"), str(dump)),
    ):
        result = subprocess.run(server_command(*args), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in (dump / "records.jsonl").read_text().splitlines()]
    assert any(r.get("config", {}).get("keep_dev_releases") == 2 for r in records), records
    assert all("last_used" not in r for r in records)
    copy = CheeseboardServer(tmp_path / "imported", free_port(), [])
    copy.start()
    try:
        config = call(copy.url, "GET", "/alice/dev")[1]["result"]
    finally:
        copy.stop()
    assert (config["keep_dev_releases"], config["max_release_age"]) == (2, 14)


def test_gc_refuses_bad_values_and_can_skip_retention(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]]
) -> None:
    """A bad size or time stops gc with a one-line reason; --no-retention evicts nothing."""
    server, datadir = mirror_server, mirror_server.datadir
    (lib_a,) = wheels(dists, "lib-a")
    assert download(server, "root/pypi", lib_a) == lib_a.path.read_bytes()
    for args, reason in (
        (("--mirror-cache-size", "12X"), "expected a size such as 500M"),
        (("--mirror-cache-size", "-5G"), "between 1 byte"),
        (("--as-of", "next tuesday"), "RFC 3339"),
    ):
        result = subprocess.run(
            server_command("gc", "--datadir", str(datadir), *args),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    skipped = gc(datadir, "--no-retention", "--mirror-cache-size", "1")
    assert "retention" not in skipped.stdout and stored(datadir, lib_a)
