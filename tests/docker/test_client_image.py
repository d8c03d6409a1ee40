"""The Debian client image: log in from the environment, then run the command (or a shell)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker.engine import IMAGE_UID, Docker, ServerContainer, readable_dir, run_once
from tests.support.api import call
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD

pytestmark = pytest.mark.docker

BOB = ("bob", "bob-secret")


@pytest.fixture(scope="module")
def bob_index(shared_server: ServerContainer) -> str:
    """User bob with the stage index bob/dev on the shared server; its URL."""
    auth = ("root", ROOT_PASSWORD)
    assert call(shared_server.url, "PUT", "/bob", {"password": BOB[1]}, auth=auth)[0] == 201
    assert call(shared_server.url, "PUT", "/bob/dev", {"bases": ""}, auth=auth)[0] in (200, 201)
    return f"{shared_server.url}bob/dev"


def test_logs_in_then_runs_the_command(
    docker: Docker, client_image: str, bob_index: str, tmp_path: Path
) -> None:
    """DEVPI_* variables log in (docker-devpi's names); the command's stdout stays clean JSON."""
    work = readable_dir(tmp_path / "work")
    wheel = build_wheel(work, "bobs-tool", "2.0")
    env = {"DEVPI_URL": bob_index, "DEVPI_USER": BOB[0], "DEVPI_PASSWORD": BOB[1]}
    upload = run_once(
        docker,
        client_image,
        "cheeseboard",
        "upload",
        wheel.filename,
        env=env,
        mounts={work: "/work"},
    )
    assert upload.returncode == 0, upload.stdout + upload.stderr
    listing = run_once(docker, client_image, "cheeseboard", "--json", "list", env=env)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "bobs-tool" in json.dumps(json.loads(listing.stdout)), listing.stdout


def test_wrong_password_stops_before_the_command(
    docker: Docker, client_image: str, bob_index: str
) -> None:
    """A failing login exits 2 and never runs the command."""
    env = {"CHEESEBOARD_URL": bob_index, "CHEESEBOARD_USER": BOB[0], "CHEESEBOARD_PASSWORD": "no"}
    result = run_once(docker, client_image, "echo", "ran", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ran" not in result.stdout
    assert "cannot log in as bob" in result.stderr


def test_user_without_password_is_refused(docker: Docker, client_image: str) -> None:
    """CHEESEBOARD_USER alone is a configuration error, said before anything runs."""
    result = run_once(docker, client_image, "true", env={"CHEESEBOARD_USER": "bob"})
    assert result.returncode == 2
    assert "CHEESEBOARD_PASSWORD" in result.stderr


def test_default_is_a_shell_as_unprivileged_user(docker: Docker, client_image: str) -> None:
    """No command: a shell in /work, as uid 10001, reading stdin."""
    result = run_once(docker, client_image, stdin="id -u; pwd; cheeseboard --help >/dev/null\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(IMAGE_UID), "/work"]
