"""Export and import: a populated server round-trips byte for byte; damaged dumps are refused.

Server A is filled through the HTTP API (users, stages with bases, uploads, a doc zip, a yank, a
cached mirror file), exported while it runs, and imported into a new data directory served by B.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import call, twine_upload
from tests.support.clients import installed, pip_install
from tests.support.packages import build_sdist, build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
JSON = "application/vnd.pypi.simple.v1+json"
PAGES = [
    ("alice/stable", "cbdumped"),
    ("alice/dev", "cbdumped"),
    ("alice/dev", "cbdevonly"),
    ("root/pypi", "cbpublic"),
]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cheeseboard.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


@dataclass
class Source:
    server: CheeseboardServer
    upstream: UpstreamServer
    factory: ServerFactory
    dump: Path
    shas: dict[str, str]  # filename -> sha256


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    base = tmp_path_factory.mktemp("dump")
    dists = base / "dists"
    with UpstreamServer(mode="json") as upstream:
        upstream.add(build_wheel(dists / "up", "cbpublic", "1.0"))
        factory = ServerFactory(base)
        try:
            server = factory.start(upstream.simple_url)
            _populate(server, dists)
            shas = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dists.glob("*.*")}
            dump = base / "dump"
            result = cli(
                "export",
                "--datadir",
                str(server.datadir),
                "--include-mirrored-files",
                str(dump),
            )
            assert result.returncode == 0, result.stderr
            assert "exported" in result.stdout
            # Pages carry the serial they were rendered at; a restart renders them anew, as the
            # imported server will (it continues from the exported serial).
            server.restart()
            yield Source(server, upstream, factory, dump, shas)
        finally:
            factory.stop_all()


def _populate(server: CheeseboardServer, dists: Path) -> None:
    assert (
        call(server.url, "PUT", "/alice", {"password": ALICE[1], "email": "a@x"}, auth=ROOT)[0]
        == 201
    )
    for name, bases in (("stable", "root/pypi"), ("dev", "alice/stable")):
        config = {"bases": bases, "mirror_whitelist": "cbpublic", "title": name.title()}
        status, body = call(server.url, "PUT", f"/alice/{name}", config, auth=ROOT)
        assert status == 200, body
    stable = [
        build_wheel(dists, "cbdumped", "1.0", requires_dist=["cbpublic"]),
        build_sdist(dists, "cbdumped", "1.0"),
        build_wheel(dists, "cbdumped", "1.1"),
    ]
    dev = [build_wheel(dists, "cbdevonly", "0.1"), build_wheel(dists, "cbdumped", "2.0.dev1")]
    for index, files in (("alice/stable", stable), ("alice/dev", dev)):
        result = twine_upload(f"{server.url}{index}/", *ALICE, *(d.path for d in files))
        assert result.returncode == 0, result.stdout + result.stderr
    docs = dists / "cbdumped-1.0.doc.zip"
    with zipfile.ZipFile(docs, "w") as archive:
        archive.writestr("index.html", "<h1>docs</h1>")
    twine_docs = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cheeseboard.client.cli import main; main(sys.argv[1:])",
            "upload",
            str(docs),
        ],
        capture_output=True,
        text=True,
        env={
            "CHEESEBOARD_CLIENTDIR": str(dists / "client"),
            "CHEESEBOARD_URL": f"{server.url}alice/stable",
            "CHEESEBOARD_USER": ALICE[0],
            "CHEESEBOARD_PASSWORD": ALICE[1],
            "PATH": "/usr/bin:/bin",
        },
        timeout=60,
    )
    assert twine_docs.returncode == 0, twine_docs.stderr
    status, body = call(
        server.url, "PATCH", "/alice/stable/cbdumped/1.1", {"yanked": "broken"}, auth=ALICE
    )
    assert status == 200, body
    # Cache a mirror file: install through the stage (cbpublic comes from root/pypi).
    result = pip_install(f"{server.url}alice/dev/+simple/", dists / "target", "cbdumped==1.0")
    assert result.returncode == 0, result.stderr
    assert installed(dists / "target") == {"cbdumped", "cbpublic"}


@pytest.fixture(scope="module")
def imported(source: Source) -> CheeseboardServer:
    result = cli("import", "--datadir", str(source.factory.base / "imported"), str(source.dump))
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout
    return source.factory.start(source.upstream.simple_url, name="imported")


@pytest.mark.parametrize(("index", "project"), PAGES)
@pytest.mark.parametrize("accept", [None, JSON])
def test_pages_are_byte_identical(
    source: Source, imported: CheeseboardServer, index: str, project: str, accept: str | None
) -> None:
    for path in (f"{index}/+simple/{project}/", f"{index}/+simple/"):
        _same_page(get(imported.url + path, accept), get(source.server.url + path, accept), path)


def _same_page(mine: bytes, theirs: bytes, where: object) -> None:
    """HTML byte for byte; JSON too but for ``_last-serial``, the serial at which a server learnt
    the page's content: the import's (continuing the source's) on an imported store."""
    if mine.startswith(b"{"):
        mine_page, their_page = json.loads(mine), json.loads(theirs)
        assert mine_page["meta"]["_last-serial"] >= their_page["meta"]["_last-serial"], where
        mine = mine.replace(_serial(mine_page), _serial(their_page), 1)
    assert mine == theirs, where


def _serial(page: dict[str, Any]) -> bytes:
    return f'"_last-serial":{page["meta"]["_last-serial"]}'.encode()


def test_files_logins_docs_and_yanks_survive(source: Source, imported: CheeseboardServer) -> None:
    page = json.loads(get(f"{imported.url}alice/stable/+simple/cbdumped/", JSON))
    names = {f["filename"] for f in page["files"]}
    assert names == {
        "cbdumped-1.0-py3-none-any.whl",
        "cbdumped-1.0.tar.gz",
        "cbdumped-1.1-py3-none-any.whl",
    }
    for entry in page["files"]:
        url = urllib.parse.urljoin(f"{imported.url}alice/stable/+simple/cbdumped/", entry["url"])
        assert hashlib.sha256(get(url)).hexdigest() == entry["hashes"]["sha256"]
        assert entry["hashes"]["sha256"] == source.shas[entry["filename"]]
    yanked = [f for f in page["files"] if f.get("yanked")]
    assert [f["filename"] for f in yanked] == ["cbdumped-1.1-py3-none-any.whl"]

    status, body = call(imported.url, "POST", "/+login", {"user": "alice", "password": ALICE[1]})
    assert status == 200, body
    status, body = call(imported.url, "GET", "/alice/stable/cbdumped/1.0")
    assert any(link["rel"] == "doczip" for link in body["result"]["+links"]), body
    status, body = call(imported.url, "GET", "/alice/dev")
    assert body["result"]["bases"] == ["alice/stable"]
    assert body["result"]["mirror_whitelist"] == ["cbpublic"]


def test_install_works_offline_from_the_import(
    source: Source, imported: CheeseboardServer, tmp_path: Path
) -> None:
    """The mirrored file came along: B installs cbpublic from its cache, not from upstream."""
    source.upstream.clear_requests()
    result = pip_install(f"{imported.url}alice/dev/+simple/", tmp_path / "t", "cbdumped==1.0")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "t") == {"cbdumped", "cbpublic"}
    assert source.upstream.count("cbpublic-1.0-py3-none-any.whl") == 0


def test_export_is_private_to_its_owner(source: Source, tmp_path: Path) -> None:
    """The dump holds password hashes: directories 0700 and files 0600, as backups are; the
    parent directory the export created keeps ordinary modes."""
    out = tmp_path / "parent" / "private"
    result = cli("export", "--datadir", str(source.server.datadir), str(out))
    assert result.returncode == 0, result.stderr
    paths = [out, *out.rglob("*")]
    assert {"records.jsonl", "cheeseboard-dump.json", "blobs"} <= {p.name for p in paths}
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in paths}
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (tmp_path / name).is_dir() else 0o600)
    }
    assert not wrong, wrong
    assert len([p for p in paths if p.is_file()]) >= 4  # header, records and blobs
    (tmp_path / "control").mkdir()  # what the user's umask gives a new directory
    assert (tmp_path / "parent").stat().st_mode == (tmp_path / "control").stat().st_mode


def _records(dump: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dump / "records.jsonl").read_text().splitlines()]


def _copy_dump(source: Source, tmp_path: Path) -> Path:
    copy = tmp_path / "dump"
    shutil.copytree(source.dump, copy)
    return copy


def test_changed_byte_in_a_file_is_refused(source: Source, tmp_path: Path) -> None:
    dump = _copy_dump(source, tmp_path)
    blob = max(
        (p for p in (dump / "blobs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    target = tmp_path / "target"
    result = cli("import", "--datadir", str(target), str(dump))
    assert result.returncode == 2
    assert "damaged" in result.stderr and blob.name in result.stderr, result.stderr
    assert "records.jsonl line" in result.stderr
    assert not target.exists()
    assert not list(tmp_path.glob(".target*"))


def _blob_of(dump: Path, filename: str) -> Path:
    (record,) = [r for r in _records(dump) if r["kind"] == "file" and r["filename"] == filename]
    sha256 = str(record["blob_sha256"])
    return dump / "blobs" / sha256[:2] / sha256


@pytest.mark.parametrize("where", ["file", "directory"])
def test_linked_blob_is_refused(source: Source, tmp_path: Path, where: str) -> None:
    """A blob that is a symlink (or sits in a linked directory) is refused, even with the right
    bytes behind it: a link could as well name the data directory's secret."""
    dump = _copy_dump(source, tmp_path)
    blob = _blob_of(dump, "cbdevonly-0.1-py3-none-any.whl")
    outside = tmp_path / "outside"
    outside.mkdir()
    if where == "file":
        shutil.move(blob, outside / blob.name)
        blob.symlink_to(outside / blob.name)
    else:
        shutil.move(blob.parent, outside / blob.parent.name)
        blob.parent.symlink_to(outside / blob.parent.name)
    target = tmp_path / "target"
    result = cli("import", "--datadir", str(target), str(dump))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is a link" in result.stderr and "refused" in result.stderr, result.stderr
    assert blob.name in result.stderr and "records.jsonl line" in result.stderr
    assert not target.exists()


def _rewrite(dump: Path, change: Any) -> None:
    """Replace the dump's records by ``change(records)`` and fix the header to match."""
    records = change(_records(dump))
    data = "".join(json.dumps(record) + "\n" for record in records).encode()
    (dump / "records.jsonl").write_bytes(data)
    header = json.loads((dump / "cheeseboard-dump.json").read_text())
    header["records_sha256"] = hashlib.sha256(data).hexdigest()
    header["records"] = len(records)
    (dump / "cheeseboard-dump.json").write_text(json.dumps(header))


def _inserted_after(kind: str, extra: dict[str, Any]) -> Any:
    """A change adding ``extra`` after the last record of ``kind``."""

    def change(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        last = max(i for i, record in enumerate(records) if record["kind"] == kind)
        return [*records[: last + 1], extra, *records[last + 1 :]]

    return change


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        ({"kind": "user", "name": "+api", "pwhash": "x"}, "user +api"),
        ({"kind": "user", "name": "a/b", "pwhash": "x"}, "user a/b"),
        ({"kind": "index", "name": "alice/+simple", "type": "stage", "config": {}}, "+simple"),
        ({"kind": "index", "name": "alice/a b", "type": "stage", "config": {}}, "'a b'"),
    ],
    ids=["user-plus", "user-slash", "index-plus", "index-space"],
)
def test_invalid_user_and_index_names_are_refused(
    source: Source, tmp_path: Path, record: dict[str, Any], shown: str
) -> None:
    """User and index names pass the API's own check on import; the error names the record."""
    dump = _copy_dump(source, tmp_path)
    _rewrite(dump, _inserted_after(record["kind"], record))
    target = tmp_path / "target"
    result = cli("import", "--datadir", str(target), str(dump))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "records.jsonl line" in result.stderr and shown in result.stderr, result.stderr
    assert "characters that aren't allowed" in result.stderr, result.stderr
    assert not target.exists()


def test_a_costly_or_foreign_password_hash_is_refused(source: Source, tmp_path: Path) -> None:
    """A dumped password hash whose argon2 cost is beyond the server's bounds (every login would
    run it) refuses the import, naming the user and the bound; so does one that is not argon2."""
    costly = "$argon2id$v=19$m=1048576,t=4,p=1$c29tZXNhbHQ$c29tZWhhc2hzb21laGFzaA"
    for pwhash, shown in ((costly, "m=1048576 exceeds"), ("plain", "must be an argon2 hash")):
        dump = _copy_dump(source, tmp_path)
        record = {"kind": "user", "name": "carol", "pwhash": pwhash, "uid": "f" * 32}
        _rewrite(dump, _inserted_after("user", record))
        target = tmp_path / "target"
        result = cli("import", "--datadir", str(target), str(dump))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "user carol" in result.stderr and shown in result.stderr, result.stderr
        assert not target.exists()
        shutil.rmtree(dump)


def _mirror_has(name: str) -> Any:
    """The dump's mirror root/pypi has ``name`` cached too (as if someone had asked for it)."""
    record = {"kind": "project", "index": "root/pypi", "name": name, "display_name": name}
    return _inserted_after("project", {**record, "found": True})


def test_import_applies_the_dependency_confusion_guard(source: Source, tmp_path: Path) -> None:
    """A stage project whose name a base mirror has refuses the import, unless
    --allow-upstream-names is given (then it is imported and reported)."""
    dump = _copy_dump(source, tmp_path)
    _rewrite(dump, _mirror_has("cbdevonly"))
    target = tmp_path / "target"
    result = cli("import", "--datadir", str(target), str(dump))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'cbdevonly' exists on root/pypi" in result.stderr, result.stderr
    assert "alice/dev would shadow the public package" in result.stderr
    assert "--allow-upstream-names" in result.stderr
    assert not target.exists()

    result = cli("import", "--allow-upstream-names", "--datadir", str(target), str(dump))
    assert result.returncode == 0, result.stderr
    assert "warning: 'cbdevonly' exists on root/pypi" in result.stderr, result.stderr
    assert "imported" in result.stdout


def test_allow_upstream_names_on_the_index_lets_the_import_through(
    source: Source, tmp_path: Path
) -> None:
    """A stage with allow_upstream_names keeps its project; a mirror row for a name no stage
    holds changes nothing."""
    dump = _copy_dump(source, tmp_path)

    def allow(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            if record["kind"] == "index" and record["name"] == "alice/dev":
                record["config"] = {**record["config"], "allow_upstream_names": True}
        return records

    _rewrite(dump, _mirror_has("cbdevonly"))
    _rewrite(dump, _mirror_has("cbnothere"))
    _rewrite(dump, allow)
    result = cli("import", "--datadir", str(tmp_path / "target"), str(dump))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_truncated_records_are_refused(source: Source, tmp_path: Path) -> None:
    dump = _copy_dump(source, tmp_path)
    records = dump / "records.jsonl"
    records.write_bytes(records.read_bytes()[:-40])
    target = tmp_path / "target"
    result = cli("import", "--datadir", str(target), str(dump))
    assert result.returncode == 2
    assert "records.jsonl" in result.stderr and "truncated" in result.stderr, result.stderr
    assert not target.exists()


def test_broken_json_is_refused_with_its_line(source: Source, tmp_path: Path) -> None:
    dump = _copy_dump(source, tmp_path)
    header = json.loads((dump / "cheeseboard-dump.json").read_text())
    lines = (dump / "records.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = b'{"kind": "index", "name": \n'
    (dump / "records.jsonl").write_bytes(b"".join(lines))
    header["records_sha256"] = hashlib.sha256(b"".join(lines)).hexdigest()
    (dump / "cheeseboard-dump.json").write_text(json.dumps(header))
    result = cli("import", "--datadir", str(tmp_path / "target"), str(dump))
    assert result.returncode == 2
    assert "records.jsonl line 3: not valid JSON" in result.stderr, result.stderr


def test_populated_store_needs_merge(source: Source, tmp_path: Path) -> None:
    result = cli("import", "--datadir", str(source.server.datadir), str(source.dump))
    assert result.returncode == 2
    assert "--merge" in result.stderr


def test_merge_adds_and_a_conflict_changes_nothing(source: Source, tmp_path: Path) -> None:
    """Merging into a store: new records are added; a clashing file aborts the whole merge."""
    factory = ServerFactory(tmp_path)
    target = factory.init(source.upstream.simple_url, name="target")
    result = cli("import", "--merge", "--datadir", str(target), str(source.dump))
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout  # root and root/pypi existed already
    server = factory.start(source.upstream.simple_url, name="target")
    try:
        assert call(server.url, "GET", "/alice/stable/cbdumped/1.0")[0] == 200
    finally:
        factory.stop_all()

    # A dump whose file of the same name has other contents: refused, store unchanged.
    dump = _copy_dump(source, tmp_path)
    lines = (dump / "records.jsonl").read_text().splitlines(keepends=True)
    changed = []
    for line in lines:
        record = json.loads(line)
        if record["kind"] == "file" and record["filename"] == "cbdevonly-0.1-py3-none-any.whl":
            record["sha256"] = "0" * 64
            line = json.dumps(record) + "\n"
        changed.append(line)
    (dump / "records.jsonl").write_text("".join(changed))
    header = json.loads((dump / "cheeseboard-dump.json").read_text())
    header["records_sha256"] = hashlib.sha256("".join(changed).encode()).hexdigest()
    (dump / "cheeseboard-dump.json").write_text(json.dumps(header))
    before = (target / "cheeseboard.sqlite").read_bytes()
    blobs_before = sorted(p.name for p in (target / "blobs").rglob("*") if p.is_file())
    result = cli("import", "--merge", "--datadir", str(target), str(dump))
    assert result.returncode == 2
    assert "cbdevonly-0.1-py3-none-any.whl" in result.stderr
    assert "different file" in result.stderr
    assert (target / "cheeseboard.sqlite").read_bytes() == before
    assert sorted(p.name for p in (target / "blobs").rglob("*") if p.is_file()) == blobs_before


def test_not_a_dump(tmp_path: Path) -> None:
    result = cli("import", "--datadir", str(tmp_path / "t"), str(tmp_path))
    assert result.returncode == 2
    assert "neither cheeseboard-dump.json" in result.stderr


def test_mirror_cache_only_when_asked(source: Source, tmp_path: Path) -> None:
    result = cli("export", "--datadir", str(source.server.datadir), str(tmp_path / "lean"))
    assert result.returncode == 0, result.stderr
    records = _records(tmp_path / "lean")
    assert {r["name"] for r in records if r["kind"] == "index"} >= {"root/pypi", "alice/dev"}
    assert all(r["index"] != "root/pypi" for r in records if r["kind"] in ("project", "file"))
    full = _records(source.dump)
    mirrored = {r["filename"] for r in full if r["kind"] == "file" and r["index"] == "root/pypi"}
    assert mirrored == {"cbpublic-1.0-py3-none-any.whl"}
    assert (
        cli("export", "--datadir", str(source.server.datadir), str(tmp_path / "lean")).returncode
        == 2
    )


def test_import_into_postgres_and_s3_gives_identical_pages(
    source: Source, tmp_path: Path, postgres_url: str, s3_url: str
) -> None:
    """Moving from the embedded store to scale-out: export, import into PostgreSQL + S3, and every
    page is the same (``_same_page``), on the importing node and on a node that joins it; that
    node installs from the bucket, with no upstream request."""
    datadir = tmp_path / "imported-pg"
    result = cli(
        "import",
        "--datadir",
        str(datadir),
        "--database-url",
        postgres_url,
        "--blob-url",
        s3_url,
        str(source.dump),
    )
    assert result.returncode == 0, result.stderr
    factory = ServerFactory(tmp_path, database_url=postgres_url, blob_url=s3_url)
    try:
        first = factory.start(source.upstream.simple_url, name="imported-pg")
        joined = factory.start(source.upstream.simple_url, name="node-2")
        for node in (first, joined):
            for index, project in PAGES:
                for accept in (None, JSON):
                    for path in (f"{index}/+simple/{project}/", f"{index}/+simple/"):
                        _same_page(
                            get(node.url + path, accept),
                            get(source.server.url + path, accept),
                            (node.datadir.name, path, accept),
                        )
        source.upstream.clear_requests()
        result = pip_install(f"{joined.url}alice/dev/+simple/", tmp_path / "t", "cbdumped==1.0")
        assert result.returncode == 0, result.stderr
        assert installed(tmp_path / "t") == {"cbdumped", "cbpublic"}
        assert source.upstream.count("cbpublic-1.0-py3-none-any.whl") == 0
    finally:
        factory.stop_all()
