"""Workers' snapshot files: others' counts read, dead workers' kept in the retired total."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cheeseboard.core.metrics import Snapshot
from cheeseboard.core.metrics_text import dumps
from cheeseboard.store.metrics_files import SnapshotDirectory, server_directory


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _counted(uploads: float, page_200: float) -> Snapshot:
    return Snapshot(
        counters={
            "uploads_total": {(): uploads},
            "http_requests_total": {("page", "200"): page_200},
        },
        histograms={
            "upstream_request_duration_seconds": {
                ("root/pypi", "page", "ok"): [1.0] + [0.0] * 12 + [0.5]
            }
        },
    )


def test_dead_workers_are_retired_and_never_counted_twice(tmp_path: Path) -> None:
    """A gone worker's last snapshot stays in the total (counters never go backwards), its
    file is folded into retired.json once, and a leftover copy is not counted again."""
    me = SnapshotDirectory(tmp_path)
    me.publish(_counted(1, 10))
    live = tmp_path / f"{os.getpid()}-live.json"  # a process that is alive: this one
    live.write_bytes(dumps(_counted(2, 20)))
    dead_name = f"{_dead_pid()}-gone.json"
    (tmp_path / dead_name).write_bytes(dumps(_counted(4, 40)))

    total, alive = me.others()
    assert alive == 1
    assert total.counters["uploads_total"][()] == 6  # the live and the dead one, not mine
    assert total.counters["http_requests_total"][("page", "200")] == 60
    assert (
        total.histograms["upstream_request_duration_seconds"][("root/pypi", "page", "ok")][0] == 2
    )
    assert not (tmp_path / dead_name).exists()
    assert (tmp_path / "retired.json").exists()

    # A crash between writing retired.json and the unlink leaves the dead file behind.
    (tmp_path / dead_name).write_bytes(dumps(_counted(4, 40)))
    again, _ = me.others()
    assert again.counters["uploads_total"][()] == 6
    assert not (tmp_path / dead_name).exists()
    # The live worker exits; its counts move to the retired total, nothing is lost.
    live.rename(tmp_path / f"{_dead_pid()}-exited.json")
    after, alive = me.others()
    assert alive == 0
    assert after.counters["uploads_total"][()] == 6
    assert me.others()[0].counters["uploads_total"][()] == 6


def test_publish_writes_only_changes_and_ignores_foreign_files(tmp_path: Path) -> None:
    """An unchanged snapshot is not written again; damaged files count as nothing."""
    me = SnapshotDirectory(tmp_path)
    assert me.publish(_counted(1, 1))
    assert not me.publish(_counted(1, 1))
    assert me.publish(_counted(2, 1))
    (tmp_path / f"{os.getpid()}-broken.json").write_bytes(b"{not json")
    (tmp_path / "notes.txt").write_text("hello")
    total, alive = me.others()
    assert total.counters == {} and alive == 0


def test_server_directory_removes_gone_servers(tmp_path: Path) -> None:
    """Each server counts from zero in its own directory; those of dead servers go away."""
    gone = tmp_path / f"{_dead_pid()}-123"
    gone.mkdir()
    (gone / "1-a.json").write_bytes(b"{}")
    mine = server_directory(tmp_path)
    assert mine.name.startswith(f"{os.getppid()}-")
    assert not gone.exists()
