"""The integration suite's core scenarios on the scale-out backend (issue 10).

The scenarios are the very test functions of the SQLite suite, collected here a second time;
this module's ``server_factory`` puts every server they start on a fresh PostgreSQL database and
a fresh bucket of a real S3 (SeaweedFS). The other tests here are about PostgreSQL itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_mirror_install import (  # noqa: F401 - collected again here
    test_pip_then_uv_install_and_second_install_is_local,
    test_upstream_down_serves_cache_and_502_for_unknown,
)
from tests.integration.test_releases import (  # noqa: F401 - fixture and tests reused
    test_project_and_version_json,
    test_remove_on_non_volatile_needs_force_and_owner,
    test_remove_on_volatile_index,
    test_yank_and_unyank_show_at_once,
    uploaded,
)
from tests.integration.test_stages import (  # noqa: F401
    test_dependency_confusion_guard,
    test_non_volatile_rules,
    test_seed_workflow_twine_pip_uv,
    test_upload_permissions,
)
from tests.support.api import call, reset_accounts, upload_dist
from tests.support.packages import Dist, build_wheel
from tests.support.seaweed import SeaweedServer
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")


@pytest.fixture
def server_factory(tmp_path: Path, postgres_url: str, s3_url: str) -> Iterator[ServerFactory]:
    """The re-collected scenarios run on the scale-out backend: PostgreSQL and an S3 bucket."""
    factory = ServerFactory(tmp_path, database_url=postgres_url, blob_url=s3_url)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_pg_mirror_server(
    postgres_server: str,
    s3_server: SeaweedServer,
    dists: dict[str, list[Dist]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CheeseboardServer]:
    """The conftest's ``module_mirror_server`` on the scale-out backend: one PostgreSQL database
    and one bucket for the module's scenarios that take ``mirror_server`` (they neither restart
    it nor count upstream requests; users and indexes are reset after each)."""
    from tests.support.postgres import create_database

    bucket = f"cb-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(bucket)
    with pytest.MonkeyPatch.context() as env:  # as ``s3_url`` sets it, for the server process
        for name in _AWS_CLEARED:
            env.delenv(name, raising=False)
        for name, value in s3_server.env.items():
            env.setenv(name, value)
        with UpstreamServer(mode="html") as upstream:
            for files in dists.values():
                for dist in files:
                    upstream.add(dist)
            factory = ServerFactory(
                tmp_path_factory.mktemp("module-pg-server"),
                database_url=create_database(postgres_server),
                blob_url=s3_server.url(bucket),
            )
            try:
                yield factory.start(mirror_url=upstream.simple_url)
            finally:
                factory.stop_all()


_AWS_CLEARED = (
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@pytest.fixture
def mirror_server(module_pg_mirror_server: CheeseboardServer) -> Iterator[CheeseboardServer]:
    """The re-collected scenarios taking ``mirror_server`` share the module's server, as in their
    own modules (test_releases, test_stages); users and indexes are reset after each."""
    yield module_pg_mirror_server
    reset_accounts(module_pg_mirror_server.url, ROOT)


def test_nodes_starting_at_once_migrate_once(postgres_url: str) -> None:
    """Three processes migrate one empty database at the same moment: all succeed."""
    script = "import sys; from cheeseboard.store.db import migrate; migrate(sys.argv[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(versions) == 1


def test_concurrent_uploads_from_two_workers_are_all_kept(
    pg_server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """Writes from both workers queue on the advisory lock: none fails, none is lost."""
    server = pg_server_factory.start(html_upstream.simple_url, "--workers", "2")
    assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert call(server.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
    wheels = [build_wheel(tmp_path, f"busy{n % 4}", f"1.{n}") for n in range(40)]
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda w: upload_dist(server.url, "alice/dev", w, ALICE), wheels))
    assert [status for status, _ in results] == [200] * len(wheels), results
    for name in {w.name for w in wheels}:
        request = urllib.request.Request(
            f"{server.url}alice/dev/+simple/{name}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            listed = {f["filename"]: f["hashes"]["sha256"] for f in json.load(response)["files"]}
        for wheel in (w for w in wheels if w.name == name):
            assert listed[wheel.filename] == wheel.sha256
    assert "Traceback" not in server.log()


def _search(server_url: str, query: str, index: str | None = None) -> list[str]:
    """Result names in order, from the search page's result links."""
    url = f"{server_url}+search?q={urllib.parse.quote(query)}"
    if index:
        url += f"&index={index}"
    request = urllib.request.Request(url, headers={"Accept": "text/html,application/xhtml+xml"})
    with urllib.request.urlopen(request, timeout=30) as page:
        html = page.read().decode()
    return re.findall(r'<a href="/[^"/]+/[^"/]+/([^"/]+)"><strong>', html)


def test_search_on_postgres_ranks_like_sqlite(
    pg_server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """Names before text, every term required (as prefixes), scope by index, mirror names."""
    server = pg_server_factory.start(html_upstream.simple_url)
    assert call(server.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
    assert call(server.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
    uploads = [
        build_wheel(tmp_path, "cheese", "1.0", summary="The plain one"),
        build_wheel(tmp_path, "cheese-grater", "2.0", summary="Grates things"),
        build_wheel(tmp_path, "brie-tools", "1.0", summary="Tools for soft cheese wheels"),
        build_wheel(tmp_path, "slicer", "0.1", summary="Cuts", headers=["Keywords: gouda,knife"]),
    ]
    for wheel in uploads:
        assert upload_dist(server.url, "alice/dev", wheel, ALICE)[0] == 200
    urllib.request.urlopen(f"{server.index_url}lib-a/", timeout=30).close()

    names = _search(server.url, "cheese")
    assert names[:3] == ["cheese", "cheese-grater", "brie-tools"], names
    assert _search(server.url, "chee gra") == ["cheese-grater"]  # both terms, as prefixes
    assert _search(server.url, "gouda") == ["slicer"]  # keywords
    assert _search(server.url, "wheels soft") == ["brie-tools"]  # summary words
    assert _search(server.url, "lib") == ["lib-a"]  # a mirror name the server has seen
    assert _search(server.url, "lib", index="alice/dev") == []
    assert _search(server.url, "zzzz-nothing") == []
    assert _search(server.url, "it's 'quoted' & | !") == []  # no tsquery syntax gets through
    # The web UI's index page lists the projects with their versions and summaries.
    request = urllib.request.Request(
        f"{server.url}alice/dev", headers={"Accept": "text/html,application/xhtml+xml"}
    )
    with urllib.request.urlopen(request, timeout=30) as page:
        html = page.read().decode()
    assert "cheese-grater" in html and "Grates things" in html and "2.0" in html
    assert "Traceback" not in server.log()


def test_a_postgres_url_without_the_driver_is_a_clear_error(tmp_path: Path) -> None:
    """The settings name the extra to install (checked here with the driver hidden)."""
    script = (
        "import sys; sys.modules['psycopg'] = None\nfrom cheeseboard.server.cli import main; main()"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "serve",
            "--datadir",
            str(tmp_path),
            "--database-url",
            "postgresql://u:secret@127.0.0.1:1/db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cheeseboard[server,postgres]" in done.stderr
    assert "secret" not in done.stderr
