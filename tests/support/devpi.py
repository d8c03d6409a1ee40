"""The real ``devpi`` command line client (devpi-client 7.x) run against a server under test.

Every ``DevpiClient`` keeps its state (``current.json``, ``auth.json``) in its own client
directory, passed as ``--clientdir``, so runs never share a login or a current index.  The
environment comes from ``installer_env`` (no pip/uv user configuration) without ``DEVPI_*``
variables or an active virtualenv (devpi would read ``$VIRTUAL_ENV/devpi.json``), with the null
keyring backend (devpi-client asks keyring for passwords) and ``HOME`` in the temporary
directory; stdin is closed so a prompt fails instead of hanging.

Passwords are passed non-interactively: ``devpi login USER --password PW`` and
``devpi user -c USER password=PW email=…`` (``user -m USER password=PW`` changes one).
Passwords starting with ``devpi-`` or ``pypi-`` are treated as tokens by the client: avoid them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.packages import installer_env

DEVPI = str(Path(sys.executable).with_name("devpi"))
_REQUEST = re.compile(r'method=(\S+) path="?([^"\s]*)"? status=(\d+)')


class DevpiClient:
    """Runs ``devpi`` subprocesses with a private client directory.

    ``server_log`` (e.g. ``CheeseboardServer.log``) lets failure messages show the HTTP requests
    the command made, as the server logged them (the server flushes its access log every 200 ms,
    so the last requests of the command before may show up too).
    """

    def __init__(
        self,
        tmp_dir: Path,
        timeout: float = 60.0,
        server_log: Callable[[], str] | None = None,
    ) -> None:
        self.home = tmp_dir
        self.server_log = server_log
        self._log_offset = 0
        self.clientdir = tmp_dir / "devpi-client"
        self.clientdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        env = installer_env(
            {
                "HOME": str(tmp_dir),
                "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                "NO_PROXY": "127.0.0.1,localhost",
                "PYTHONIOENCODING": "utf-8",
                "COLUMNS": "200",
            }
        )
        for name in list(env):
            if name.startswith("DEVPI_") or name in ("VIRTUAL_ENV", "WORKON_HOME"):
                del env[name]
        self.env = env
        self.history: list[subprocess.CompletedProcess[str]] = []

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``devpi ARGS --clientdir DIR``; never raises on a non-zero exit code."""
        command = [DEVPI, *map(str, args), "--clientdir", str(self.clientdir)]
        self._log_offset = len(self.server_log()) if self.server_log else 0
        result = subprocess.run(
            command,
            env=self.env,
            cwd=cwd or self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        self.history.append(result)
        return result

    def ok(self, *args: str | Path, cwd: Path | None = None) -> str:
        """Run and assert exit code 0; returns stdout + stderr."""
        result = self.run(*args, cwd=cwd)
        assert result.returncode == 0, self.explain(result)
        return output(result)

    def fails(self, *args: str | Path, cwd: Path | None = None) -> str:
        """Run and assert a non-zero exit code; returns stdout + stderr."""
        result = self.run(*args, cwd=cwd)
        assert result.returncode != 0, self.explain(result)
        return output(result)

    def requests(self) -> list[str]:
        """``METHOD path status`` of the requests the server logged since the last ``run``."""
        if self.server_log is None:
            return []
        time.sleep(0.3)  # the server flushes its access log every 200 ms
        return server_requests(self.server_log()[self._log_offset :])

    def explain(self, result: subprocess.CompletedProcess[str]) -> str:
        """The command, its output and the requests it made, for assertion messages."""
        lines = self.requests()
        return describe(result) + "".join(f"\n  > {line}" for line in lines)

    # -- common commands ----------------------------------------------------------------

    def use(self, url: str) -> str:
        return self.ok("use", url)

    def login(self, user: str, password: str) -> str:
        return self.ok("login", user, "--password", password)

    def logoff(self) -> str:
        return self.ok("logoff")

    # -- client state ---------------------------------------------------------------------

    def current(self) -> dict[str, Any]:
        """The client's ``current.json`` (empty if ``use`` never succeeded)."""
        return _read_json(self.clientdir / "current.json")

    def auth(self) -> dict[str, Any]:
        """The client's ``auth.json``: ``{"auth": {root_url: [[user, token]]}}``."""
        return _read_json(self.clientdir / "auth.json")


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """The command, its exit code and output, for assertion messages."""
    args = " ".join(map(str, result.args[1:-2]))  # without the executable and --clientdir DIR
    return f"$ devpi {args}\nexit {result.returncode}\n{output(result)}"


def server_requests(log: str) -> list[str]:
    """``METHOD path status`` for each access-log line in ``log``."""
    return [f"{m[1]} {m[2]} {m[3]}" for m in _REQUEST.finditer(log)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data
