"""A real devpi-server (the pip package, 6.x) for tests, initialised with its own ``devpi-init``.

root/pypi is created over HTTP as a mirror of a test upstream, so devpi never reaches pypi.org.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.support.process import ManagedProcess, http_probe
from tests.support.server import free_port

DEVPI_ROOT_PASSWORD = "devpi-root-secret"
_BIN = Path(sys.executable).parent


class DevpiServer:
    """``devpi-init`` + ``devpi-server`` on 127.0.0.1 over a fresh server directory."""

    def __init__(self, workdir: Path, mirror_url: str) -> None:
        self.serverdir = workdir / "devpi-server"
        self.log_path = workdir / "devpi-server.log"
        self.mirror_url = mirror_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.managed: ManagedProcess | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVPI_", "PIP_"))}
        env["NO_PROXY"] = "127.0.0.1,localhost"
        return env

    def __enter__(self) -> DevpiServer:
        subprocess.run(
            [
                str(_BIN / "devpi-init"),
                "--serverdir",
                str(self.serverdir),
                "--root-passwd",
                DEVPI_ROOT_PASSWORD,
                "--no-root-pypi",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            env=self._env(),
        )
        self.managed = ManagedProcess(
            [
                str(_BIN / "devpi-server"),
                "--serverdir",
                str(self.serverdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            name="devpi-server",
            log_path=self.log_path,
            ready=http_probe(self.url + "+api"),
            env=self._env(),
        )
        try:
            self.managed.start(timeout=60.0, interval=0.1)
            self._create_mirror()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _create_mirror(self) -> None:
        auth = base64.b64encode(f"root:{DEVPI_ROOT_PASSWORD}".encode()).decode()
        body = json.dumps({"type": "mirror", "mirror_url": self.mirror_url}).encode()
        request = urllib.request.Request(
            self.url + "root/pypi",
            data=body,
            method="PUT",
            headers={
                "X-Devpi-Auth": auth,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.managed is not None:
            self.managed.stop()
