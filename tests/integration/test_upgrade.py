"""In-place upgrade: a store at the oldest migration, filled, then served by the current server.

The store is built the way the first release left it: schema at Alembic revision ``0001``
(created by that migration, its tables reflected from the database, so no column of a later
schema can sneak in), rows written with SQLAlchemy Core, blobs in the blob store, secret and
marker as ``init`` writes them. ``serve`` migrates at start; everything must still be there.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, insert
from sqlalchemy.engine import Connection

from cheeseboard.services.users import hash_password
from cheeseboard.store.blobs import FileBlobStore
from tests.support.api import call, upload_dist
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

LOCAL = ("local", "local-secret")
JSON = "application/vnd.pypi.simple.v1+json"
OLDEST = "0001"
UPLOAD_TIME = "2024-05-06T07:08:09.000000Z"


def _alembic_config() -> Config:
    """Configured like ``cheeseboard.store.db.migrate``."""
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("cheeseboard.store") / "migrations")
    )
    return config


@dataclass
class OldStore:
    datadir: Path
    private: dict[str, Dist]  # local/stable, by filename
    yanked: str  # filename of the yanked one
    mirrored: Dist  # cached in root/pypi
    not_cached: Dist  # listed on root/pypi, bytes never fetched


class _Writer:
    """Rows in the 0001 tables, as the database itself describes them."""

    def __init__(self, conn: Connection, blobs: FileBlobStore, staging: Path) -> None:
        self.conn = conn
        self.blobs = blobs
        self.staging = staging
        meta = MetaData()
        meta.reflect(bind=conn)
        self.tables = meta.tables
        self.now = time.time()

    def row(self, table: str, **values: Any) -> Any:
        """Insert one row; returns its primary key."""
        result = self.conn.execute(insert(self.tables[table]).values(**values))
        return result.inserted_primary_key[0]  # type: ignore[index]

    def blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        tmp = self.staging / f"{sha256}.part"
        tmp.write_bytes(data)
        self.blobs.install(tmp, sha256)
        self.row("blobs", sha256=sha256, size=len(data), created=self.now)
        return sha256

    def user(self, name: str, password: str) -> int:
        return self.row(
            "users",
            name=name,
            pwhash=hash_password(password),
            email=f"{name}@example.org",
            custom_data={"team": "build"},
            created=self.now,
        )

    def index(self, user_id: int, name: str, config: dict[str, Any]) -> int:
        return self.row(
            "indexes",
            user_id=user_id,
            name=name,
            type=config["type"],
            config=config,
            created=self.now,
        )

    def project(self, index_id: int, name: str, display: str, **mirror: Any) -> int:
        return self.row(
            "projects",
            index_id=index_id,
            name=name,
            display_name=display,
            created=self.now,
            found=True,
            **mirror,
        )

    def file(
        self, index_id: int, project_id: int, position: int, dist: Dist, stored: bool, **extra: Any
    ) -> None:
        wheel = dist.kind == "wheel"
        metadata_sha = None
        if wheel:
            metadata_sha = hashlib.sha256(dist.metadata).hexdigest()
            if stored:
                assert self.blob(dist.metadata) == metadata_sha
        self.row(
            "files",
            index_id=index_id,
            project_id=project_id,
            filename=dist.filename,
            version=dist.version,
            packagetype="bdist_wheel" if wheel else "sdist",
            sha256=dist.sha256,
            size=dist.size,
            requires_python=dist.requires_python,
            upload_time=UPLOAD_TIME,
            core_metadata_sha256=metadata_sha,
            blob_sha256=self.blob(dist.path.read_bytes()) if stored else None,
            position=position,
            created=self.now,
            **extra,
        )

    def change(self, index_id: int | None, project: str | None, kind: str) -> None:
        self.row("changelog", created=self.now, index_id=index_id, project=project, kind=kind)


def _fill(writer: _Writer, upstream: UpstreamServer, old: OldStore) -> None:
    root = writer.user("root", ROOT_PASSWORD)
    local = writer.user(*LOCAL)
    pypi = writer.index(
        root,
        "pypi",
        {
            "type": "mirror",
            "volatile": False,
            "title": "PyPI",
            "mirror_url": upstream.simple_url,
            "mirror_web_url_fmt": "https://pypi.org/project/{name}/",
        },
    )
    # devpi's shape of a stage config (no keys devpi does not have, e.g. allow_upstream_names).
    stable = writer.index(
        local,
        "stable",
        {
            "type": "stage",
            "bases": ["root/pypi"],
            "volatile": False,
            "acl_upload": ["local"],
            "acl_toxresult_upload": [":ANONYMOUS:"],
            "mirror_whitelist": [],
            "mirror_whitelist_inheritance": "intersection",
            "title": "Stable releases",
        },
    )
    writer.change(None, None, "index-created")
    private = writer.project(stable, "private-pkg", "Private.Pkg")
    for position, dist in enumerate(old.private.values()):
        yanked = "broken build" if dist.filename == old.yanked else None
        writer.file(stable, private, position, dist, stored=True, yanked=yanked)
        writer.change(stable, "private-pkg", "upload")
    mirror = writer.project(pypi, "lib-a", "lib-a", checked_at=writer.now, upstream_serial=1)
    for position, dist in enumerate((old.mirrored, old.not_cached)):
        url = f"{upstream.url}files/{dist.filename}"
        writer.file(pypi, mirror, position, dist, dist is old.mirrored, upstream_url=url)
    writer.change(pypi, "lib-a", "mirror-page")
    writer.row("server_info", key="uuid", value=secrets.token_hex(16))


def _make_old_store(datadir: Path, upstream: UpstreamServer, old: OldStore) -> None:
    """Data directory at revision 0001, laid out as ``init`` lays it out."""
    datadir.mkdir(mode=0o700)
    (datadir / "locks").mkdir()
    blobs = FileBlobStore(datadir / "blobs")
    fd = os.open(datadir / "secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    database = datadir / "cheeseboard.sqlite"
    sqlite3.connect(database).execute("PRAGMA journal_mode=WAL").connection.close()
    engine = create_engine(f"sqlite:///{database}")
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, OLDEST)
    with engine.begin() as conn:
        writer = _Writer(conn, blobs, blobs.tmp_dir)
        assert "releases" not in writer.tables and "tokens" not in writer.tables
        assert "uploaded_by" not in writer.tables["files"].columns
        _fill(writer, upstream, old)
    engine.dispose()
    marker = {"version": "0.1.0", "created": time.time()}
    (datadir / ".cheeseboard").write_text(json.dumps(marker))


# --- checks -------------------------------------------------------------------------------------


def _get(url: str, accept: str | None = None) -> bytes:
    headers = {"Accept": accept} if accept else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        data: bytes = r.read()
        return data


def _json_files(server: CheeseboardServer, index: str, project: str) -> dict[str, dict[str, Any]]:
    page_url = f"{server.url}{index}/+simple/{project}/"
    page = json.loads(_get(page_url, JSON))
    for entry in page["files"]:
        entry["url"] = urllib.parse.urljoin(page_url, entry["url"]).split("#")[0]
    return {entry["filename"]: entry for entry in page["files"]}


def _upload(server: CheeseboardServer, dist: Dist) -> int:
    return upload_dist(server.url, "local/stable", dist, LOCAL, timeout=30)[0]


def _login(server: CheeseboardServer, user: str, password: str) -> int:
    return call(server.url, "POST", "/+login", {"user": user, "password": password})[0]


@pytest.fixture
def old_store(
    tmp_path: Path, json_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> OldStore:
    built = tmp_path / "dist"
    private = [
        build_wheel(built, "Private.Pkg", "0.9"),
        build_wheel(built, "Private.Pkg", "1.0", requires_python=">=3.9", requires_dist=["lib-a"]),
        build_sdist(built, "Private.Pkg", "1.0", requires_python=">=3.9"),
    ]
    lib_a = {dist.kind: dist for dist in dists["lib-a"]}
    old = OldStore(
        datadir=tmp_path / "data",
        private={dist.filename: dist for dist in private},
        yanked=private[0].filename,
        mirrored=lib_a["wheel"],
        not_cached=lib_a["sdist"],
    )
    _make_old_store(old.datadir, json_upstream, old)
    return old


def test_current_server_upgrades_the_oldest_store_in_place(
    old_store: OldStore,
    server_factory: ServerFactory,
    json_upstream: UpstreamServer,
    tmp_path: Path,
) -> None:
    server = server_factory.start(json_upstream.simple_url)  # migrates at start
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with sqlite3.connect(old_store.datadir / "cheeseboard.sqlite") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
        assert head != OLDEST

    # Users log in with the passwords they had; a wrong one is still refused.
    assert _login(server, "root", ROOT_PASSWORD) == 200
    assert _login(server, *LOCAL) == 200
    assert _login(server, "local", "wrong") == 401
    status, body = call(server.url, "GET", "/local", auth=("root", ROOT_PASSWORD))
    assert status == 200 and body["result"]["email"] == "local@example.org"
    status, body = call(server.url, "GET", "/local/stable")
    assert status == 200
    assert body["result"]["bases"] == ["root/pypi"] and body["result"]["volatile"] is False
    assert body["result"]["title"] == "Stable releases"

    # The stage serves its pages, HTML and JSON, with the old files and their hashes.
    listing = _get(f"{server.url}local/stable/+simple/", "text/html").decode()
    assert "private-pkg" in listing
    listing_json = json.loads(_get(f"{server.url}local/stable/+simple/", JSON))
    assert "private-pkg" in {project["name"] for project in listing_json["projects"]}
    html = _get(f"{server.url}local/stable/+simple/private-pkg/", "text/html").decode()
    files = _json_files(server, "local/stable", "private-pkg")
    assert set(files) == set(old_store.private)
    for filename, dist in old_store.private.items():
        entry = files[filename]
        assert f'/{filename}#sha256={dist.sha256}"' in html, filename
        assert entry["hashes"]["sha256"] == dist.sha256 and entry["size"] == dist.size
        assert entry["upload-time"] == UPLOAD_TIME
        assert entry.get("requires-python") == dist.requires_python
        assert entry.get("yanked", False) == (
            "broken build" if filename == old_store.yanked else False
        )
        assert hashlib.sha256(_get(entry["url"])).hexdigest() == dist.sha256
        if dist.kind == "wheel":
            assert entry["core-metadata"]["sha256"] == hashlib.sha256(dist.metadata).hexdigest()
            assert _get(entry["url"] + ".metadata") == dist.metadata
    assert 'data-yanked="broken build"' in html

    # The mirror's cached file comes from the blob store, not from upstream.
    json_upstream.clear_requests()
    mirror_files = _json_files(server, "root/pypi", "lib-a")
    assert set(mirror_files) == {old_store.mirrored.filename, old_store.not_cached.filename}
    wheel = mirror_files[old_store.mirrored.filename]
    assert hashlib.sha256(_get(wheel["url"])).hexdigest() == old_store.mirrored.sha256
    assert _get(wheel["url"] + ".metadata") == old_store.mirrored.metadata
    assert json_upstream.requests == []

    # Uploads go on: a new version lands next to the old ones.
    new = build_wheel(tmp_path / "new", "Private.Pkg", "2.0")
    assert _upload(server, new) == 200
    changed = build_wheel(tmp_path / "changed", "Private.Pkg", "1.0", summary="other bytes")
    assert _upload(server, changed) == 409  # non-volatile: the old file is really there
    files = _json_files(server, "local/stable", "private-pkg")
    assert set(files) == {*old_store.private, new.filename}
    assert hashlib.sha256(_get(files[new.filename]["url"])).hexdigest() == new.sha256

    # The old files belong to releases (devpi's project and version JSON), yank state included.
    status, body = call(server.url, "GET", "/local/stable/private-pkg")
    assert status == 200 and set(body["result"]) == {"0.9", "1.0", "2.0"}, body
    links = {link["href"].rsplit("/", 1)[1] for link in body["result"]["1.0"]["+links"]}
    assert links == {name for name in old_store.private if "-1.0" in name}
    assert body["result"]["0.9"]["yanked"] == "broken build"
    assert "yanked" not in body["result"]["1.0"]
