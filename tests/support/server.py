"""Real cheeseboard servers for tests: data directories made as ``init`` makes them, ``serve`` as
subprocesses on free ports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.process import ManagedProcess, http_probe

ROOT_PASSWORD = "root-secret"
_init_lock = threading.Lock()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cheeseboard.server.cli", *args]


class CheeseboardServer:
    """One server process over one data directory; can be stopped and started again."""

    def __init__(self, datadir: Path, port: int, extra_args: list[str]) -> None:
        self.datadir = datadir
        self.port = port
        self.extra_args = extra_args
        self.url = f"http://127.0.0.1:{port}/"
        self.index_url = f"{self.url}root/pypi/+simple/"
        self.log_path = datadir.parent / f"{datadir.name}-server.log"
        self.managed: ManagedProcess | None = None
        self.process: subprocess.Popen[bytes] | None = None  # the running one's, for pid and poll

    def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
        self.managed = ManagedProcess(
            server_command(
                "serve", "--datadir", str(self.datadir), "--port", str(self.port), *self.extra_args
            ),
            name="server",
            log_path=self.log_path,
            ready=http_probe(self.url + "-/health"),
            env=env,
        )
        self.managed.start(timeout)
        self.process = self.managed.process

    def stop(self) -> None:
        if self.managed is not None:
            self.managed.stop()
        self.managed = self.process = None

    def kill(self) -> None:
        """SIGKILL the server and its workers at once, as a crash or the OOM killer would."""
        if self.managed is not None:
            self.managed.kill()
        self.managed = self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class ServerFactory:
    """Creates initialised data directories and servers over them."""

    def __init__(
        self, base: Path, database_url: str | None = None, blob_url: str | None = None
    ) -> None:
        self.base = base
        self.database_url = database_url  # None: SQLite in each data directory
        self.blob_url = blob_url  # None: files in each data directory
        self.servers: list[CheeseboardServer] = []

    def _database_args(self) -> list[str]:
        return ["--database-url", self.database_url] if self.database_url else []

    def init(self, mirror_url: str, name: str = "data") -> Path:
        """``cheeseboard-server init``'s work, in this process (``init_datadir``, what the command
        calls; the command itself is tested in test_server_cli): a new interpreter importing
        cheeseboard costs about a second per server. From inside a running event loop (where
        ``asyncio.run`` is refused) the command runs as a subprocess. Alembic's migration context
        is global to the process: one in-process init at a time."""
        datadir = self.base / name
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            from cheeseboard.ops.datadir import init_datadir

            with _init_lock:
                init_datadir(datadir, ROOT_PASSWORD, mirror_url, self.database_url)
            return datadir
        subprocess.run(
            server_command(
                "init",
                "--datadir",
                str(datadir),
                "--root-password",
                ROOT_PASSWORD,
                "--mirror-url",
                mirror_url,
                *self._database_args(),
            ),
            check=True,
            capture_output=True,
        )
        return datadir

    def start(
        self, mirror_url: str, *args: str, name: str = "data", port: int | None = None
    ) -> CheeseboardServer:
        datadir = self.base / name
        if not datadir.exists():
            self.init(mirror_url, name)
        blob_args = ["--blob-url", self.blob_url] if self.blob_url else []
        server = CheeseboardServer(
            datadir, port or free_port(), [*args, *self._database_args(), *blob_args]
        )
        server.start()
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
