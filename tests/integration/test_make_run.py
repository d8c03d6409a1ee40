"""``make run`` as the README describes it: first run initialises and prints the root password."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path

from tests.support.process import ManagedProcess, http_probe
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[2]


def _make_run(datadir: Path, port: int, log_path: Path) -> ManagedProcess:
    """``make run`` in its own process group, started and ready (``/-/health`` answers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHEESEBOARD_", "MAKE"))}
    process = ManagedProcess(
        ["make", "--no-print-directory", "run", f"DATADIR={datadir}", f"PORT={port}"],
        name="make run",
        log_path=log_path,
        ready=http_probe(f"http://127.0.0.1:{port}/-/health"),
        env=env,
        cwd=REPO,
        stop_group=True,  # SIGTERM to make and the server at once, as Ctrl-C in a terminal
        stop_timeout=20,
    )
    process.start(timeout=60, interval=0.1)
    return process


def _stop(process: ManagedProcess) -> str:
    assert process.stop(), f"make run did not stop on SIGTERM within 20 s:\n{process.log()}"
    return process.log()


def test_make_run_initialises_once_and_serves_root_pypi(tmp_path: Path) -> None:
    """The first run prints a root password and serves root/pypi; the second reuses the data."""
    datadir = tmp_path / "data"
    port = free_port()
    first = _make_run(datadir, port, tmp_path / "first.log")
    try:
        request = urllib.request.Request(
            f"http://localhost:{port}/root/pypi/+simple/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["meta"]["api-version"] == "1.4"
        # The first page a person sees: the web UI, with root/pypi on it.
        browser = {"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla/5.0"}
        home = urllib.request.Request(f"http://localhost:{port}/", headers=browser)
        with urllib.request.urlopen(home, timeout=10) as response:
            page = response.read().decode()
        assert 'href="/root/pypi"' in page and "running" in page
    finally:
        output = _stop(first)
    assert f"Web UI: http://localhost:{port}/" in output
    passwords = re.findall(r"The root password is: (\S+)", output)
    assert len(passwords) == 1, output
    assert (datadir / "cheeseboard.sqlite").is_file()
    assert oct((datadir / "secret").stat().st_mode & 0o777) == "0o600"
    output = _stop(_make_run(datadir, port, tmp_path / "second.log"))
    assert "The root password is" not in output
