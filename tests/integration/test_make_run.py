"""``make run`` as the README describes it: it builds its own small venv (the server extra only)
on first use, initialises the data directory and prints the root password once.

Time from ``make run`` with no venv to the first 200 of ``/-/health``, measured on the shared
2-core machine (load 2 to 7) in fresh clones with empty pip and uv caches, packages from
pypi.org: before issue 23 (``.venv`` with ``.[dev]``, 931 MB) 38.7 s; after (``.venv-run`` with
``.[server]`` through uv, 138 MB) 14.1 / 16.1 / 18.9 s cold, 11.1 / 13.5 / 21.6 s with warm caches;
the same venv through pip alone 19 to 31 s. The issue's fresh machine took 191 s before.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path

from tests.support.process import ManagedProcess, http_probe
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[2]


def _make_run(datadir: Path, venv: Path, port: int, log_path: Path) -> ManagedProcess:
    """``make run`` in its own process group, started and ready (``/-/health`` answers) within
    60 s, with its venv in ``venv`` (never the developer's ``.venv-run``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHEESEBOARD_", "MAKE"))}
    command = ["make", "--no-print-directory", "run", f"DATADIR={datadir}", f"PORT={port}"]
    process = ManagedProcess(
        [*command, f"RUN_VENV={venv}"],
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
    """From an empty venv directory, the first run installs the server alone and answers within
    60 s (pip's and uv's download caches may be warm, as on a developer's machine or in CI),
    prints a root password and serves root/pypi; the second reuses the venv and the data."""
    datadir, venv = tmp_path / "data", tmp_path / "venv"
    venv.mkdir()
    port = free_port()
    started = time.monotonic()
    first = _make_run(datadir, venv, port, tmp_path / "first.log")
    elapsed = time.monotonic() - started
    try:
        assert elapsed < 60, f"make run answered after {elapsed:.1f} s"
        installed = {path.name.split("-")[0].lower() for path in venv.glob("lib/*/site-*/*")}
        assert {"granian", "sqlalchemy", "aiohttp"} <= installed
        # The dev toolchain stays in .venv (make test): none of it in make run's venv.
        assert not installed & {"pytest", "mypy", "devpi_server", "poetry", "playwright"}
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
    stamp = (venv / ".installed").stat().st_mtime_ns
    output = _stop(_make_run(datadir, venv, port, tmp_path / "second.log"))
    assert "The root password is" not in output
    assert (venv / ".installed").stat().st_mtime_ns == stamp  # nothing installed again
