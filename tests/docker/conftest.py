"""Fixtures for the container tests: the engine, the images (built once per run) and a server.

No engine, or no base image in it, is a missing service: skipped with the reason on a developer
machine, a failure under CHEESEBOARD_REQUIRE_ALL=1 (CI). ``.ci/docker-setup.sh`` provides both.
A failing image build is a failing test, never a skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.docker.engine import (
    DEFAULT_BASE,
    SETUP_HINT,
    Docker,
    ServerContainer,
    volume_dir,
)
from tests.support.server import ROOT_PASSWORD, free_port
from tests.support.services import service_missing

SERVER_TAG = "cheeseboard-server:pytest"
CLIENT_TAG = "cheeseboard-client:pytest"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine (tests/docker)")


@pytest.fixture(scope="session")
def docker() -> Docker:
    """The engine from $DOCKER_HOST or .ci/docker-setup.sh's socket."""
    found = Docker.find()
    if isinstance(found, str):
        service_missing(found)
    return found


@pytest.fixture(scope="session")
def base_image(docker: Docker) -> str:
    """The Debian Python base ($CHEESEBOARD_DOCKER_BASE, default the locally made one)."""
    base = os.environ.get("CHEESEBOARD_DOCKER_BASE") or DEFAULT_BASE
    if not docker.image_exists(base):
        service_missing(f"base image {base} is not in the engine at {docker.host}: {SETUP_HINT}")
    return base


@pytest.fixture(scope="session")
def images(docker: Docker, base_image: str) -> dict[str, str]:
    """The Debian server and client images, built from this checkout (cached layers make a
    rebuild after a source change take seconds)."""
    started = time.monotonic()
    docker.build_all(
        {
            SERVER_TAG: ("docker/server/Dockerfile", base_image),
            CLIENT_TAG: ("docker/client/Dockerfile", base_image),
        }
    )
    print(f"built {SERVER_TAG} and {CLIENT_TAG} in {time.monotonic() - started:.1f} s")
    return {"server": SERVER_TAG, "client": CLIENT_TAG}


@pytest.fixture(scope="session")
def server_image(images: dict[str, str]) -> str:
    return images["server"]


@pytest.fixture(scope="session")
def client_image(images: dict[str, str]) -> str:
    return images["client"]


@pytest.fixture(scope="session")
def shared_server(
    docker: Docker, server_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerContainer]:
    """One server container for the checks that leave it as it is: started with extra serve
    options (2 workers, a cache expiry) and a 1 s health-check interval."""
    server = ServerContainer(
        docker,
        server_image,
        volume_dir(tmp_path_factory.mktemp("shared-data")),
        free_port(),
        env={"CHEESEBOARD_ROOT_PASSWORD": ROOT_PASSWORD},
        args=["--workers", "2", "--mirror-cache-expiry", "600"],
        run_options=["--health-interval", "1s"],
    )
    with server:
        server.start()
        yield server
