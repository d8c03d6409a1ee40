"""``make run`` as the README describes it: first run initialises and prints the root password."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[2]


def _wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "make run exited early"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("make run did not serve in time")


def _make_run(datadir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHEESEBOARD_", "MAKE"))}
    return subprocess.Popen(
        ["make", "--no-print-directory", "run", f"DATADIR={datadir}", f"PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    return output


def test_make_run_initialises_once_and_serves_root_pypi(tmp_path: Path) -> None:
    """The first run prints a root password and serves root/pypi; the second reuses the data."""
    datadir = tmp_path / "data"
    port = free_port()
    first = _make_run(datadir, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/-/health", first)
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
    second = _make_run(datadir, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/-/health", second)
    finally:
        output = _stop(second)
    assert "The root password is" not in output
