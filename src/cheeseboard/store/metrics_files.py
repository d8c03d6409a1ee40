"""Workers' metric snapshots in a run directory, so that any worker can answer for all of them.

Each worker writes its snapshot to ``<pid>-<random>.json`` (a temporary file renamed over the
old one, so a reader sees a whole snapshot or the previous one). A scrape reads the others'
files under an exclusive ``flock`` and first folds the files of workers that are gone (crashed or
restarted by Granian) into ``retired.json``, so counters never go backwards and the directory
does not grow with restarts. ``retired.json`` names the files it absorbed; one still present
after a crash between the rename and the unlink is skipped, never counted twice.

Each server (the process that starts the workers) has its own directory
(``server_directory``): counters start at zero with each server, as Prometheus expects.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cheeseboard.core.metrics import Snapshot, merge
from cheeseboard.core.metrics_text import BadSnapshot, dumps, loads

_RETIRED = "retired.json"
_LOCK = ".lock"


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), or "" elsewhere:
    with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def server_directory(root: Path) -> Path:
    """The directory of this server's workers under ``root``: named after the process that
    started them (Granian's parent), so that each server starts from zero, as Prometheus
    expects after a restart. Directories of servers that are gone are removed."""
    parent = os.getppid()
    name = f"{parent}-{_started(parent)}"
    try:
        for child in root.iterdir():
            pid = _pid(child.name + ".json")
            if child.name != name and pid is not None and not _alive(pid):
                shutil.rmtree(child, ignore_errors=True)
    except FileNotFoundError:
        pass
    return root / name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid(name: str) -> int | None:
    head, _, tail = name.partition("-")
    if not head.isdigit() or not tail.endswith(".json"):
        return None
    return int(head)


class SnapshotDirectory:
    """This worker's view of the run directory: publishes its own snapshot, reads the others'."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}.json"
        self._last: bytes | None = None

    def publish(self, snapshot: Snapshot) -> bool:
        """Write ``snapshot`` as this worker's file unless it is what was written last; returns
        whether it wrote."""
        raw = dumps(snapshot)
        if raw == self._last:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{self.name}.tmp"
        temporary.write_bytes(raw)
        os.replace(temporary, self.directory / self.name)
        self._last = raw
        return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / _LOCK, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def others(self) -> tuple[Snapshot, int]:
        """The sum of every other worker's snapshot and of the retired ones, and how many
        workers still alive that includes (besides this one)."""
        with self._locked():
            retired, absorbed = self._read_retired()
            live: list[Snapshot] = []
            dead: dict[str, Snapshot] = {}
            for path in self.directory.iterdir():
                pid = _pid(path.name)
                if pid is None or path.name == self.name:
                    continue
                if path.name in absorbed:
                    path.unlink(missing_ok=True)  # already in the retired total
                    continue
                snapshot = self._read(path)
                if snapshot is None:
                    continue
                if _alive(pid):
                    live.append(snapshot)
                else:
                    dead[path.name] = snapshot
            if dead or absorbed:
                retired = merge([retired, *dead.values()])
                self._write_retired(retired, set(dead))
                for name in dead:
                    (self.directory / name).unlink(missing_ok=True)
            return merge([retired, *live]), len(live)

    @staticmethod
    def _read(path: Path) -> Snapshot | None:
        try:
            return loads(path.read_bytes())
        except (FileNotFoundError, BadSnapshot):
            return None  # gone meanwhile, or not ours: nothing to count

    def _read_retired(self) -> tuple[Snapshot, set[str]]:
        try:
            raw = (self.directory / _RETIRED).read_bytes()
        except FileNotFoundError:
            return Snapshot(), set()
        head, _, body = raw.partition(b"\n")
        try:
            names = {str(name) for name in json.loads(head)}
            return loads(body), names
        except (ValueError, TypeError):
            return Snapshot(), set()

    def _write_retired(self, retired: Snapshot, absorbed: set[str]) -> None:
        raw = json.dumps(sorted(absorbed)).encode() + b"\n" + dumps(retired)
        temporary = self.directory / f".{_RETIRED}.tmp"
        temporary.write_bytes(raw)
        os.replace(temporary, self.directory / _RETIRED)
