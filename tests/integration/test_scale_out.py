"""Several server nodes on one PostgreSQL database (issue 10): they behave as one server.

Each node is its own process group with its own local data directory, as on separate machines;
they share only the database (and, where files are involved, the S3 bucket).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from cheeseboard.services.locks import LockTimeout, SharedLocks
from cheeseboard.store import pg_changes
from cheeseboard.store.db import migrate
from cheeseboard.store.pg_changes import SerialWatcher
from cheeseboard.store.s3 import S3Client, S3Location
from cheeseboard.store.s3_blobs import object_name
from cheeseboard.store.serial import SerialFile
from tests.support.api import call, upload_dist
from tests.support.packages import Dist, build_wheel, installer_env
from tests.support.seaweed import SeaweedServer
from tests.support.server import (
    ROOT_PASSWORD,
    CheeseboardServer,
    ServerFactory,
    free_port,
    server_command,
)
from tests.support.upstream import Fault, UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
VISIBLE_WITHIN = 1.0  # seconds: a change on one node is seen on the others by then


@pytest.fixture
def scale_factory(tmp_path: Path, postgres_url: str, s3_url: str) -> Iterator[ServerFactory]:
    """Servers on one PostgreSQL database and one S3 bucket, each with its own data directory."""
    factory = ServerFactory(tmp_path, database_url=postgres_url, blob_url=s3_url)
    yield factory
    factory.stop_all()


@pytest.fixture
def nodes(
    scale_factory: ServerFactory, html_upstream: UpstreamServer
) -> Iterator[Callable[..., list[CheeseboardServer]]]:
    def start(count: int, *args: str) -> list[CheeseboardServer]:
        return [
            scale_factory.start(html_upstream.simple_url, *args, name=f"node-{n}")
            for n in range(count)
        ]

    yield start


def page_files(node: CheeseboardServer, index: str, project: str) -> dict[str, tuple[str, str]]:
    """{filename: (absolute URL, sha256)} from the node's PEP 691 page; {} if 404."""
    page_url = f"{node.url}{index}/+simple/{project}/"
    request = urllib.request.Request(
        page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            files = json.load(response)["files"]
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 404:
            return {}
        raise
    return {
        f["filename"]: (urljoin(page_url, f["url"]).partition("#")[0], f["hashes"]["sha256"])
        for f in files
    }


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def until_true(check: Callable[[], bool], within: float = VISIBLE_WITHIN) -> float:
    """Seconds until ``check()`` held; fails if it did not within ``within`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            pytest.fail(f"not true within {within} s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_nodes_share_users_indexes_tokens_and_the_secret(
    nodes: Callable[..., list[CheeseboardServer]],
) -> None:
    """Users and indexes made on one node are there on the others at once; a login token from
    one node works on every node; a password change on one kills the token on all."""
    a, b, c = nodes(3)
    # Nodes 2 and 3 joined the database node 1 initialised: the same root.
    assert call(b.url, "GET", "/+api", auth=ROOT)[1]["result"]["authstatus"][0] == "ok"
    assert call(a.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    until_true(lambda: call(b.url, "GET", "/alice")[0] == 200)
    assert call(c.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
    until_true(lambda: call(a.url, "GET", "/alice/dev")[0] == 200)

    status, body = call(a.url, "POST", "/+login", {"user": "alice", "password": ALICE[1]})
    assert status == 200, body
    token = ("alice", body["result"]["password"])
    for node in (a, b, c):
        assert call(node.url, "PATCH", "/alice/dev", ["title=T"], auth=token)[0] == 200

    assert call(b.url, "PATCH", "/alice", {"password": "new-secret"}, auth=ALICE)[0] == 200

    def token_dead_everywhere() -> bool:
        return all(
            call(node.url, "PATCH", "/alice/dev", ["title=U"], auth=token)[0] == 401
            for node in (a, b, c)
        )

    until_true(token_dead_everywhere)
    for node in (a, b, c):
        assert "Traceback" not in node.log()


def _insert_change(url: str, notify: bool) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO changelog (created, kind) VALUES (%s, 'test') RETURNING serial",
            (time.time(),),
        ).fetchone()
        assert row is not None
        if notify:
            conn.execute("SELECT pg_notify(%s, %s)", (pg_changes.CHANNEL, str(row[0])))
        return int(row[0])


async def test_serial_watcher_learns_commits_by_notify_and_by_poll(
    postgres_url: str, tmp_path: Path
) -> None:
    """A notified commit is seen in milliseconds; one without a notification by the poll; and
    the watcher reconnects when its connection is killed."""
    import psycopg

    migrate(postgres_url)
    serial_file = SerialFile(tmp_path / "serial")
    watcher = SerialWatcher(pg_changes.libpq_url(postgres_url), serial_file, poll_seconds=0.5)
    watcher.start()
    try:
        await asyncio.wait_for(watcher.connected.wait(), 10)

        async def seen(serial: int, within: float) -> float:
            start = time.monotonic()
            while serial_file.latest() < serial:
                assert time.monotonic() - start < within, f"serial {serial} not seen"
                await asyncio.sleep(0.005)
            return time.monotonic() - start

        notified = await asyncio.to_thread(_insert_change, postgres_url, True)
        assert await seen(notified, 0.3) < 0.3
        polled = await asyncio.to_thread(_insert_change, postgres_url, False)
        assert await seen(polled, 1.5) > 0.0
        # Kill the watcher's session: it reconnects and carries on.
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        await asyncio.sleep(0.2)
        after = await asyncio.to_thread(_insert_change, postgres_url, True)
        await seen(after, 5.0)
    finally:
        await watcher.stop()
        serial_file.close()


async def test_postgres_locks_exclude_across_sessions_and_die_with_them(
    postgres_server: str,
) -> None:
    """Two lock users (as on two nodes) exclude each other; a holder whose session dies (its node
    was killed) frees the key without waiting for any timeout."""
    import psycopg

    url = pg_changes.libpq_url(postgres_server)
    one, two = SharedLocks.on_postgres(url), SharedLocks.on_postgres(url)
    try:
        async with one.hold("file:1:x.whl", 5):
            with pytest.raises(LockTimeout):
                async with two.hold("file:1:x.whl", 0.2):
                    pytest.fail("both nodes hold the key")
            async with two.hold("file:1:other.whl", 0.5):
                pass  # other keys are free
        async with two.hold("file:1:x.whl", 0.5):
            pass

        entered = asyncio.Event()
        crashed = asyncio.Event()

        async def doomed_holder() -> None:
            with contextlib.suppress(Exception):
                async with one.hold("page:1:doomed", 5):
                    entered.set()
                    await crashed.wait()

        holder = asyncio.create_task(doomed_holder())
        await entered.wait()
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )
        start = time.monotonic()
        async with two.hold("page:1:doomed", 2):
            waited = time.monotonic() - start
        assert waited < 0.5
        crashed.set()
        await holder
    finally:
        await one.close()
        await two.close()


def test_upload_on_a_install_on_b_delete_on_c(
    nodes: Callable[..., list[CheeseboardServer]], tmp_path: Path
) -> None:
    """The issue's three-node scenario: an upload through node A installs through node B within a
    second (its bytes come from the bucket); a delete through node C is gone on A and B."""
    a, b, c = nodes(3)
    assert call(a.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert call(a.url, "PUT", "/alice/dev", {"bases": ["root/pypi"]}, auth=ROOT)[0] == 200
    wheel = build_wheel(tmp_path / "dist", "spread-out", "1.0", payload_size=300_000)
    assert upload_dist(a.url, "alice/dev", wheel, ALICE)[0] == 200
    acked = time.monotonic()
    until_true(lambda: wheel.filename in page_files(b, "alice/dev", "spread-out"))
    seen_after = time.monotonic() - acked
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--isolated",
            "install",
            "--no-cache-dir",
            "--target",
            str(target),
            "--index-url",
            f"{b.url}alice/dev/+simple/",
            "spread-out==1.0",
        ],
        env=installer_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (target / "spread_out-1.0.dist-info").is_dir()
    assert seen_after < VISIBLE_WITHIN
    # Node B had no local copy: it streamed the file from the bucket.
    url, sha256 = page_files(b, "alice/dev", "spread-out")[wheel.filename]
    status, body = fetch(url)
    assert status == 200 and hashlib.sha256(body).hexdigest() == sha256 == wheel.sha256

    assert call(c.url, "DELETE", "/alice/dev/spread-out/1.0", auth=ALICE)[0] == 200

    def gone_everywhere() -> bool:
        return all(page_files(node, "alice/dev", "spread-out") == {} for node in (a, b))

    until_true(gone_everywhere)
    for node in (a, b):
        assert fetch(url.replace(b.url, node.url))[0] == 404
    for node in (a, b, c):
        assert "Traceback" not in node.log()


def test_fifty_requests_over_three_nodes_cause_one_upstream_download(
    nodes: Callable[..., list[CheeseboardServer]],
    html_upstream: UpstreamServer,
    tmp_path: Path,
) -> None:
    """A burst of CI jobs asking three nodes (two workers each) for one uncached mirror file:
    exactly one upstream download; every client gets the right bytes."""
    wheel = build_wheel(tmp_path, "burst", "1.0", payload_size=2_000_000)
    html_upstream.add(wheel)
    servers = nodes(3, "--workers", "2")
    urls = []
    for node in servers:
        listed = page_files(node, "root/pypi", "burst")
        urls.append(listed[wheel.filename][0])
    html_upstream.clear_requests()
    # The transfer takes ~1 s, so the requests overlap it on every node and worker.
    html_upstream.set_fault(wheel.filename, Fault("trickle", pieces=10, seconds=0.1))
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(fetch, [urls[n % 3] for n in range(50)]))
    assert [status for status, _ in answers] == [200] * 50
    assert {hashlib.sha256(body).hexdigest() for _, body in answers} == {wheel.sha256}
    assert html_upstream.count(wheel.filename, "GET") == 1, html_upstream.requests
    for node in servers:
        assert "Traceback" not in node.log()


def test_killing_a_node_under_load_loses_no_acknowledged_upload(
    nodes: Callable[..., list[CheeseboardServer]], tmp_path: Path
) -> None:
    """Uploads and reads spread over three nodes; one node is SIGKILLed mid-run (process group,
    as a crash or the OOM killer would). The other two answer every request meanwhile; every
    upload any node acknowledged, the dead one's included, is listed and downloads intact from
    the survivors, and from the dead node once it is back."""
    a, b, c = nodes(3)
    assert call(a.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert call(a.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
    wheels = [build_wheel(tmp_path / "d", f"load{n % 5}", f"1.{n}") for n in range(120)]
    acked: list[tuple[Dist, str]] = []  # (wheel, node that acknowledged it)
    survivor_errors: list[str] = []
    reads = 0
    killed = threading.Event()
    done = threading.Event()
    lock = threading.Lock()

    def uploader(share: list[Dist]) -> None:
        for n, wheel in enumerate(share):
            node = (a, b, c)[n % 3]
            if node is c and killed.is_set():
                node = (a, b)[n % 2]  # the load balancer's health check took C out
            try:
                status, text = upload_dist(node.url, "alice/dev", wheel, ALICE, timeout=30)
            except OSError as exc:  # C died with the request in flight: not acknowledged
                if node is not c or not killed.is_set():
                    survivor_errors.append(f"upload to {node.url}: {exc}")
                continue
            if status == 200:
                with lock:
                    acked.append((wheel, node.url))
            elif node is not c or not killed.is_set():
                survivor_errors.append(f"upload to {node.url}: {status} {text[:200]}")

    def reader(n: int) -> None:
        nonlocal reads
        while not done.is_set():
            node = (a, b)[n % 2]
            n += 1
            try:
                page_files(node, "alice/dev", f"load{n % 5}")
                with lock:
                    reads += 1
            except OSError as exc:
                survivor_errors.append(f"read from {node.url}: {exc}")

    with ThreadPoolExecutor(10) as pool:
        readers = [pool.submit(reader, n) for n in range(4)]
        uploads = [pool.submit(uploader, wheels[n::6]) for n in range(6)]
        # Kill C once it has acknowledged a few uploads, with more of them in flight.
        deadline = time.monotonic() + 30
        while sum(url == c.url for _, url in acked) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed.set()  # first: requests in flight to C fail from here on
        c.kill()
        for future in uploads:
            future.result()
        done.set()
        for future in readers:
            future.result()

    assert survivor_errors == []
    assert reads > 50
    on_c = [wheel for wheel, url in acked if url == c.url]
    assert len(on_c) >= 3, "the killed node acknowledged no uploads before it died"
    assert len(acked) >= 100, len(acked)
    print(f"{len(acked)} uploads acknowledged ({len(on_c)} by the killed node), {reads} reads")
    c.start()
    for node in (a, b, c):
        listed: dict[str, str] = {}
        for project in {wheel.name for wheel, _ in acked}:
            listed |= {
                name: sha for name, (_, sha) in page_files(node, "alice/dev", project).items()
            }
        for wheel, _ in acked:
            assert listed.get(wheel.filename) == wheel.sha256, (node.url, wheel.filename)
    for wheel in on_c:
        url, _ = page_files(b, "alice/dev", wheel.name)[wheel.filename]
        status, body = fetch(url)
        assert status == 200 and hashlib.sha256(body).hexdigest() == wheel.sha256
    for node in (a, b):
        assert "Traceback" not in node.log()


def test_s3_outage_refuses_uploads_cleanly_and_a_dead_bucket_stops_startup(
    s3_server: SeaweedServer,
    postgres_url: str,
    html_upstream: UpstreamServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the bucket's service gone, an upload gets 503 with the reason and nothing is stored;
    files the node has cached still download; a node cannot start on an unusable bucket."""
    private = SeaweedServer(s3_server.weed, tmp_path / "s3")
    private.start()
    try:
        private.create_bucket("outage")
        for name, value in private.env.items():
            monkeypatch.setenv(name, value)
        factory = ServerFactory(tmp_path, database_url=postgres_url, blob_url=private.url("outage"))
        try:
            node = factory.start(html_upstream.simple_url, name="node")
            assert call(node.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
            assert call(node.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
            before = build_wheel(tmp_path / "d", "weather", "1.0")
            assert upload_dist(node.url, "alice/dev", before, ALICE)[0] == 200
            private.stop()
            during = build_wheel(tmp_path / "d", "weather", "2.0")
            status, text = upload_dist(node.url, "alice/dev", during, ALICE)
            assert status == 503 and "file storage is unavailable" in text, (status, text)
            listed = page_files(node, "alice/dev", "weather")
            assert set(listed) == {before.filename}
            assert not list((node.datadir / "blobs" / ".tmp").iterdir())
            status, body = fetch(listed[before.filename][0])
            assert status == 200 and hashlib.sha256(body).hexdigest() == before.sha256
            assert "Traceback" not in node.log()
            # A node cannot start on a bucket it cannot write and read.
            late = factory.init(html_upstream.simple_url, name="late")
            started = subprocess.run(
                server_command(
                    "serve",
                    "--datadir",
                    str(late),
                    "--port",
                    str(free_port()),
                    "--database-url",
                    postgres_url,
                    "--blob-url",
                    private.url("outage"),
                ),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert started.returncode != 0
            assert "cannot use s3://outage/cb" in started.stderr, started.stderr
            assert private.env["AWS_SECRET_ACCESS_KEY"] not in started.stderr
        finally:
            factory.stop_all()
    finally:
        private.stop()


def _bucket(s3_url: str) -> set[str]:
    async def names() -> set[str]:
        async with S3Client(S3Location.from_url(s3_url)) as client:
            return {name async for name, _, _ in client.list("")}

    return asyncio.run(names())


def _gc(node: CheeseboardServer, postgres_url: str, s3_url: str, *args: str) -> Any:
    return subprocess.run(
        server_command(
            "gc",
            "--datadir",
            str(node.datadir),
            "--database-url",
            postgres_url,
            "--blob-url",
            s3_url,
            *args,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gc_of_the_bucket_removes_only_what_no_row_names(
    scale_factory: ServerFactory,
    html_upstream: UpstreamServer,
    postgres_url: str,
    s3_url: str,
    tmp_path: Path,
) -> None:
    """gc --blob-url: a removed release's objects go (not on a dry run, not while young); named
    objects and objects that are not blobs stay; a named object gone missing is reported."""
    node = scale_factory.start(html_upstream.simple_url, name="node")
    assert call(node.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert call(node.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
    keep = build_wheel(tmp_path / "d", "keeper", "1.0")
    drop = build_wheel(tmp_path / "d", "dropper", "1.0")
    for wheel in (keep, drop):
        assert upload_dist(node.url, "alice/dev", wheel, ALICE)[0] == 200
    assert call(node.url, "DELETE", "/alice/dev/dropper/1.0", auth=ALICE)[0] == 200

    async def put_foreign() -> None:
        async with S3Client(S3Location.from_url(s3_url)) as client:
            await client.put_bytes("notes/readme.txt", b"not a blob")

    asyncio.run(put_foreign())
    keep_name, drop_name = object_name(keep.sha256), object_name(drop.sha256)
    assert {keep_name, drop_name, "notes/readme.txt"} <= _bucket(s3_url)

    young = _gc(node, postgres_url, s3_url)  # default --min-age: everything is young
    assert young.returncode == 0, young.stderr
    assert drop_name in _bucket(s3_url)
    dry = _gc(node, postgres_url, s3_url, "--min-age", "0", "--dry-run")
    assert dry.returncode == 0 and "would remove" in dry.stdout, dry.stdout + dry.stderr
    assert drop_name in _bucket(s3_url)
    done = _gc(node, postgres_url, s3_url, "--min-age", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    left = _bucket(s3_url)
    assert drop_name not in left and keep_name in left and "notes/readme.txt" in left
    url, _ = page_files(node, "alice/dev", "keeper")[keep.filename]
    assert fetch(url)[0] == 200

    async def lose_keep() -> None:
        async with S3Client(S3Location.from_url(s3_url)) as client:
            await client.delete(keep_name)

    asyncio.run(lose_keep())
    damaged = _gc(node, postgres_url, s3_url, "--min-age", "0")
    assert damaged.returncode == 1
    assert f"alice/dev/{keep.filename}" in damaged.stdout, damaged.stdout
