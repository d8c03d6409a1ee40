"""The ``cheeseboard`` console script run as a subprocess with its own client directory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.packages import installer_env

SCRIPT = Path(sys.executable).with_name("cheeseboard")


def clean_env(clientdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """No CHEESEBOARD_*/DEVPI_*/PIP_* from the outside, wide output, this client directory."""
    env = {
        k: v
        for k, v in installer_env().items()
        if not k.startswith(("CHEESEBOARD_", "DEVPI_", "VIRTUAL_ENV"))
    }
    env["CHEESEBOARD_CLIENTDIR"] = str(clientdir)
    env["COLUMNS"] = "200"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


@dataclass
class Cli:
    """Runs the script with one client directory, a clean environment and no terminal."""

    clientdir: Path
    cwd: Path | None = None

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=clean_env(self.clientdir, env),
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            cwd=self.cwd,
            timeout=120,
        )

    def ok(self, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
        result = self(*args, env=env, stdin=stdin)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout


def fails(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 1, no traceback, and every word in the error output."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
