"""A killed test run leaves no server behind (tests/support/process.py, the conftest plugin).

A small pytest session in a subprocess starts a real cheeseboard server and a process group with
a grandchild, then sleeps; it is killed with SIGTERM (CI cancelling a job) or SIGINT (Ctrl-C), and
every process it started must be gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

INNER_CONFTEST = """
from tests.support.process import install_cleanup


def pytest_configure(config):
    install_cleanup()
"""

INNER_TEST = """
import json
import os
import time
from pathlib import Path

from tests.support.process import ManagedProcess
from tests.support.server import ServerFactory


def test_sleeps_with_servers(tmp_path):
    server = ServerFactory(tmp_path).start("http://127.0.0.1:9/simple/")
    group = ManagedProcess(
        ["sh", "-c", "sleep 600 & echo $! > child.pid; wait"],
        name="group",
        log_path=tmp_path / "group.log",
        cwd=tmp_path,
        ready=lambda: (tmp_path / "child.pid").exists(),
    )
    group.start()
    pids = [server.process.pid, group.pid, int((tmp_path / "child.pid").read_text())]
    Path(os.environ["PIDS_FILE"]).write_text(json.dumps(pids))
    time.sleep(600)
"""


def _group(pgid: int) -> list[int]:
    """The live processes in process group ``pgid`` (a server's workers outlive a lone leader)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_killed_session_stops_its_servers(tmp_path: Path, signum: signal.Signals) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(INNER_CONFTEST)
    (inner / "test_inner.py").write_text(INNER_TEST)
    pids_file = tmp_path / "pids.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHEESEBOARD_", "PYTEST_"))},
        "PYTHONPATH": str(REPO),
        "PIDS_FILE": str(pids_file),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["--rootdir", str(inner), "--basetemp", str(tmp_path / "basetemp"), str(inner)]
    session = subprocess.Popen(
        command,
        cwd=inner,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # our signal goes to pytest alone, as `kill <pid>` would
        # A terminal's process gets SIGINT with its default action, which Python turns into
        # KeyboardInterrupt; a child inherits an ignored SIGINT instead, should anything in this
        # worker have set that (then Python installs no handler and Ctrl-C does nothing).
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while not pids_file.exists():
            if session.poll() is not None or time.monotonic() > deadline:
                session.kill()
                pytest.fail(f"the inner session never started its servers:\n{_output(session)}")
            time.sleep(0.1)
        time.sleep(0.2)  # the write is not atomic
        pids: list[int] = json.loads(pids_file.read_text())
        assert all(_alive(pid) for pid in pids), pids
        session.send_signal(signum)
        try:
            output = _output(session, timeout=30)
        except subprocess.TimeoutExpired:
            handler = signal.getsignal(signal.SIGINT)
            pytest.fail(
                f"the session ignored {signum.name} for 30 s (this worker's SIGINT: {handler})"
            )
        assert session.returncode != 0, output
        deadline = time.monotonic() + 5
        while _survivors(pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = _survivors(pids)
        assert survivors == [], f"still running after {signum.name}: {survivors}\n{output}"
    finally:
        if session.poll() is None:
            os.killpg(session.pid, signal.SIGKILL)
            session.wait()
        if pids_file.exists():  # never leave our own mess behind, even when the test failed
            for pid in _survivors(json.loads(pids_file.read_text() or "[]")):
                os.kill(pid, signal.SIGKILL)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _survivors(pids: list[int]) -> list[int]:
    """The pids still alive, and every process left in the groups they lead."""
    return sorted({pid for pid in pids if _alive(pid)} | {m for pid in pids for m in _group(pid)})


def _output(session: subprocess.Popen[bytes], timeout: float = 10) -> str:
    out, _ = session.communicate(timeout=timeout)
    return out.decode(errors="replace")
