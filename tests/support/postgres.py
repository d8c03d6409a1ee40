"""A real PostgreSQL 15 for the tests: one throwaway cluster per session, a database per test.

The cluster runs from the machine's PostgreSQL binaries (Debian: /usr/lib/postgresql/15/bin) on
127.0.0.1 with fsync off. ``initdb`` refuses to run as root, so as root it runs as ``postgres``.
``CHEESEBOARD_TEST_POSTGRES_URL`` points the tests at a server that is already running instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.support.process import register_cleanup, unregister_cleanup
from tests.support.server import free_port

URL_ENV = "CHEESEBOARD_TEST_POSTGRES_URL"
_BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15)]


def find_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, if PostgreSQL is installed."""
    for directory in _BIN_DIRS:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PostgresCluster:
    """initdb + pg_ctl start in ``root``; ``stop()`` removes nothing (pytest's tmp does)."""

    def __init__(self, root: Path, binaries: Path) -> None:
        self.root = root
        self.bin = binaries
        self.port = free_port()
        self.data = root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "pg.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        register_cleanup(self, self.stop)  # pg_ctl detaches it: a killed run stops it here

    def stop(self) -> None:
        unregister_cleanup(self)
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")


def create_database(server_url: str) -> str:
    """A new empty database on the server at ``server_url``; returns its URL."""
    import psycopg

    name = f"cb_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
