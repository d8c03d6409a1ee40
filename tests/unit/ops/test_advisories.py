"""ops/advisories.py: importing OSV advisories from a directory, a zip and a URL, into a real
SQLite data directory; blocks from MAL- entries; re-imports; withdrawn entries."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cheeseboard.core.changes import ChangeKind
from cheeseboard.ops.advisories import AdvisorySourceError, import_offline
from cheeseboard.ops.datadir import init_datadir
from cheeseboard.server.cli import main
from cheeseboard.settings import DataDirLayout
from cheeseboard.store import advisory_rows, audit_rows, block_rows, changelog_rows
from cheeseboard.store.block_rows import NewBlock
from cheeseboard.store.db import engine_for
from cheeseboard.store.schema import advisories
from cheeseboard.store.serial import SerialFile


def _mal(number: int, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"MAL-2024-{number}",
        "modified": "2024-05-01T10:00:00Z",
        "summary": f"Malicious code in {name} (PyPI)",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
        **extra,
    }


def _feed() -> dict[str, dict[str, Any]]:
    return {
        "PYSEC-2021-59.json": {
            "id": "PYSEC-2021-59",
            "modified": "2021-03-29T12:00:00Z",
            "aliases": ["CVE-2021-28363"],
            "details": "urllib3 before 1.26.4 ...",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "urllib3"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "1.26.0"}, {"fixed": "1.26.4"}],
                        }
                    ],
                }
            ],
        },
        "GHSA-aaaa-bbbb-cccc.json": {
            "id": "GHSA-aaaa-bbbb-cccc",
            "modified": "2024-01-01T00:00:00Z",
            "summary": "two projects",
            "affected": [
                {"package": {"ecosystem": "PyPI", "name": "One"}, "versions": ["1.0"]},
                {"package": {"ecosystem": "PyPI", "name": "two_pkg"}, "versions": ["2.0"]},
            ],
        },
        "MAL-2024-1.json": _mal(1, "Evil.Pkg"),
        "MAL-2024-12.json": {
            **_mal(12, "sneaky"),
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "sneaky"},
                    "versions": ["1.0", "1.1"],
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.5"}]}
                    ],
                }
            ],
        },
        "MAL-2024-99.json": _mal(99, "gone", withdrawn="2024-06-01T00:00:00Z"),
        "npm.json": {
            "id": "GHSA-npmx-npmx-npmx",
            "affected": [
                {"package": {"ecosystem": "npm", "name": "left-pad"}, "versions": ["1.0.0"]}
            ],
        },
        "broken.json": "{not json",
    }


def _write(directory: Path, docs: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        (directory / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return directory


def _zip(path: Path, docs: dict[str, Any]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, doc in docs.items():
            archive.writestr(name, doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.fixture
def datadir(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    init_datadir(target, "secret-root-password", None)
    return target


def _url(datadir: Path) -> str:
    return DataDirLayout(datadir).sqlite_url


def _blocks(datadir: Path) -> list[tuple[str | None, str | None, str]]:
    engine = engine_for(_url(datadir))
    try:
        with engine.connect() as conn:
            return sorted(
                ((b.project, b.specifier, b.source) for b in block_rows.load_all(conn)),
                key=str,
            )
    finally:
        engine.dispose()


def _advisory_ids(datadir: Path) -> list[str]:
    engine = engine_for(_url(datadir))
    try:
        with engine.connect() as conn:
            return sorted(r.id for r in conn.execute(select(advisories.c.id)))
    finally:
        engine.dispose()


def _import(datadir: Path, source: str | Path) -> Any:
    layout = DataDirLayout(datadir)
    return import_offline(str(source), layout.sqlite_url, layout.serial)


EXPECTED_BLOCKS = [
    ("evil-pkg", None, "osv:MAL-2024-1"),
    ("sneaky", "==1.0", "osv:MAL-2024-12"),
    ("sneaky", "==1.1", "osv:MAL-2024-12"),
    ("sneaky", ">=2.0,<2.5", "osv:MAL-2024-12"),
]


def test_import_from_a_directory(datadir: Path, tmp_path: Path) -> None:
    report = _import(datadir, _write(tmp_path / "osv" / "nested", _feed()).parent)
    assert report.read == 7
    assert report.pypi == 5  # the npm one is not ours, the broken one skipped
    assert report.malicious == 3
    assert report.skipped_count == 1 and "not JSON" in report.skipped[0]
    assert report.stored == 4 and report.withdrawn == 1 and report.removed == 0
    assert _advisory_ids(datadir) == [
        "GHSA-aaaa-bbbb-cccc",
        "GHSA-aaaa-bbbb-cccc#two-pkg",
        "MAL-2024-1",
        "MAL-2024-12",
        "PYSEC-2021-59",
    ]
    assert _blocks(datadir) == EXPECTED_BLOCKS
    engine = engine_for(_url(datadir))
    with engine.connect() as conn:
        (row,) = advisory_rows.for_project(conn, "two-pkg")
        assert row.id == "GHSA-aaaa-bbbb-cccc" and row.summary == "two projects"
        (pysec,) = advisory_rows.for_project(conn, "urllib3")
        assert pysec.fixed == ["1.26.4"] and pysec.aliases == ["CVE-2021-28363"]
        kinds = [c.kind for c in changelog_rows.changes_since(conn, 0)]
        assert ChangeKind.ADVISORIES in kinds and ChangeKind.BLOCKS in kinds
        (entry,) = audit_rows.read(conn, action="advisories-import")
        assert entry.detail["malicious"] == 3 and entry.detail["blocks_added"] == 4
        last = changelog_rows.max_serial(conn)
    engine.dispose()
    serial = SerialFile(DataDirLayout(datadir).serial)
    assert serial.latest() == last  # running processes of this node wake up at once
    serial.close()


def test_reimport_is_idempotent_and_replaces_changed_and_withdrawn(
    datadir: Path, tmp_path: Path
) -> None:
    feed = _feed()
    engine = engine_for(_url(datadir), write=True)
    with engine.begin() as conn:
        block_rows.add(conn, NewBlock(None, "evil-pkg", "==0.1", None, None, "by hand", "root"), 1)
    _import(datadir, _zip(tmp_path / "all.zip", feed))
    with engine.connect() as conn:
        before = changelog_rows.max_serial(conn)

    again = _import(datadir, _zip(tmp_path / "all.zip", feed))
    assert again.unchanged == 4 and again.stored == 0
    assert again.blocks_added == again.blocks_removed == 0
    with engine.connect() as conn:
        assert changelog_rows.max_serial(conn) == before  # nothing to tell the servers

    feed["MAL-2024-12.json"] = {**_mal(12, "sneaky"), "modified": "2024-07-01T00:00:00Z"}
    feed["MAL-2024-1.json"] = _mal(1, "Evil.Pkg", withdrawn="2024-07-02T00:00:00Z")
    changed = _import(datadir, _zip(tmp_path / "all.zip", feed))
    assert changed.stored == 1 and changed.removed == 1 and changed.unchanged == 2
    assert changed.blocks_removed == 4 and changed.blocks_added == 1
    assert _blocks(datadir) == [
        ("evil-pkg", "==0.1", "manual"),  # a person's block is never touched
        ("sneaky", None, "osv:MAL-2024-12"),
    ]
    assert "MAL-2024-1" not in _advisory_ids(datadir)
    engine.dispose()


def test_import_from_a_url(datadir: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    _zip(_write(served, {}) / "all.zip", _feed())
    handler = partial(_QuietHandler, directory=str(served))
    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as base:
        report = _import(datadir, f"{base}/all.zip")
        assert report.stored == 4
        assert _blocks(datadir) == EXPECTED_BLOCKS
        with pytest.raises(AdvisorySourceError, match="404"):
            _import(datadir, f"{base}/missing.zip")


def test_sources_that_cannot_be_read(datadir: Path, tmp_path: Path) -> None:
    with pytest.raises(AdvisorySourceError, match="no such file"):
        _import(datadir, tmp_path / "nothing-here")
    with pytest.raises(AdvisorySourceError, match=r"http\(s\) URL"):
        _import(datadir, "ftp://example.invalid/all.zip")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(AdvisorySourceError, match="zip"):
        _import(datadir, bad)
    assert _advisory_ids(datadir) == []


def test_cli(datadir: Path, tmp_path: Path) -> None:
    source = _write(tmp_path / "osv", _feed())
    result = CliRunner().invoke(
        main, ["advisories", "import", "--datadir", str(datadir), str(source)]
    )
    assert result.exit_code == 0, result.output
    assert "read 7 advisories (5 for PyPI, 3 malicious)" in result.output
    assert "broken.json: not JSON" in result.output
    missing = CliRunner().invoke(
        main, ["advisories", "import", "--datadir", str(datadir), str(tmp_path / "none")]
    )
    assert missing.exit_code == 2
    assert "no such file" in missing.output


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_scheduled_import_runs_once_per_interval(datadir: Path, tmp_path: Path) -> None:
    from cheeseboard.ops.advisory_schedule import import_if_due
    from cheeseboard.settings import Settings

    source = _write(tmp_path / "osv", _feed())
    settings = Settings(datadir=datadir, advisories_url=str(source), advisories_interval=600)
    first = import_if_due(settings)
    assert first is not None and first.stored == 4
    assert import_if_due(settings) is None  # another worker (or node) did it just now
    later = import_if_due(settings, now=time.time() + 600)
    assert later is not None and later.unchanged == 4
