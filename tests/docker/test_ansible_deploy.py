"""deploy/ansible against a real target: a Debian container with systemd as PID 1.

The playbooks reach the container through the role's own ``docker_exec`` connection plugin.
Both install modes run deploy, deploy, destroy, destroy: the package from a wheelhouse built from
this checkout (offline, as deploy/ansible/README.md describes) and the server image from a
``docker save`` archive. root/pypi mirrors a local upstream, so pip installs through the deployed
seed index. The second deploy and the second destroy must report ``changed=0``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.docker.engine import REPO, TEST_LABEL, Docker, can_log_in
from tests.support.api import call
from tests.support.clients import installed, pip_install
from tests.support.server import free_port
from tests.support.services import service_missing
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.docker

ANSIBLE_DIR = REPO / "deploy" / "ansible"
TARGET_DOCKERFILE = REPO / "tests" / "docker" / "ansible-target" / "Dockerfile"
TARGET_TAG = "cheeseboard-ansible-target:pytest"
TARGET_BASE = "local/debian:bookworm-slim"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
TARGET_PYTHON = "3.11"  # Debian bookworm's python3, which the role's venv uses
TIME_LIMIT = 240.0  # seconds for the playbooks and checks (the image build: at most 120 more)
ROOT_PW = "deploy-root-secret"
ALICE = ("alice", "alice-deploy-secret")
RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)
MADE_PATHS = (
    "/opt/cheeseboard",
    "/etc/cheeseboard",
    "/var/lib/cheeseboard",
    "/etc/systemd/system/cheeseboard.service",
)


def _debian_mirror() -> str:
    """The Debian mirror the host's apt uses (the only one reachable here), as docker-setup does."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _build_target(docker: Docker) -> str:
    if not docker.image_exists(TARGET_BASE):
        service_missing(f"base image {TARGET_BASE} is missing: run .ci/docker-setup.sh")
    docker.run(
        "build",
        "--network",
        "host",
        "--label",
        TEST_LABEL,
        "--build-arg",
        f"BASE={TARGET_BASE}",
        "--build-arg",
        f"MIRROR={_debian_mirror()}",
        "-t",
        TARGET_TAG,
        "-f",
        str(TARGET_DOCKERFILE),
        str(TARGET_DOCKERFILE.parent),
        timeout=120,
    )
    return TARGET_TAG


@contextmanager
def _systemd_container(docker: Docker, *options: str) -> Iterator[str]:
    """A running systemd container on the host network (with extra ``docker run`` options);
    yields its name."""
    if not ANSIBLE_PLAYBOOK.exists():
        service_missing(f"{ANSIBLE_PLAYBOOK} not installed (pip install -e '.[dev]')")
    image = _build_target(docker)
    name = f"cb-test-ansible-{uuid.uuid4().hex[:12]}"
    docker.run(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--cgroupns=host",
        "--volume",
        "/sys/fs/cgroup:/sys/fs/cgroup:ro",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        *options,
        image,
    )
    try:
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = _exec(docker, name, "systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        assert state in ("running", "degraded"), f"systemd did not boot: {state!r}"
        yield name
    finally:
        docker.run("rm", "--force", "--volumes", name, check=False)


def _exec(docker: Docker, container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return docker.run("exec", container, *command, check=False)


def _wheelhouse(directory: Path) -> Path:
    """The cheeseboard wheel from this checkout plus its server dependencies' wheels for the
    target's Python, whatever Python runs the tests."""
    directory.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(directory), str(REPO)],
        check=True,
        timeout=180,
    )
    machine = platform.machine()
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in (36, 34, 28, 17)]
    subprocess.run(
        [
            *pip,
            "download",
            "--only-binary=:all:",
            "--python-version",
            TARGET_PYTHON,
            "--implementation",
            "cp",
            *[
                arg
                for tag in [*platforms, f"manylinux2014_{machine}", "any"]
                for arg in ("--platform", tag)
            ],
            "--find-links",
            str(directory),
            "--dest",
            str(directory),
            "cheeseboard[server]",
        ],
        check=True,
        timeout=180,
    )
    return directory


def _playbook(docker: Docker, playbook: str, inventory: Path, home: Path) -> tuple[int, int, str]:
    """Run one playbook; returns (exit code, changed count from the recap, output)."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DOCKER_EXEC_BINARY": docker.binary,
        "DOCKER_HOST": docker.host,
        "PYTHONWARNINGS": "ignore",  # cryptography's deprecation notices from ansible-core
    }
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), playbook],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    recaps = RECAP.findall(result.stdout)
    assert len(recaps) == 1, f"{playbook}: expected one host in the recap\n{output}"
    return result.returncode, int(recaps[0][2]), output


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _inventory(path: Path, target: str, variables: dict[str, object]) -> Path:
    host = {"ansible_connection": "docker_exec"}
    path.write_text(json.dumps({"cheeseboard": {"hosts": {target: host}, "vars": variables}}))
    return path  # JSON is YAML


def _cycle(
    docker: Docker,
    target: str,
    variables: dict[str, object],
    tmp_path: Path,
    deployed: Callable[[], None],
    made: Sequence[str],
) -> float:
    """deploy, checks, deploy (changed=0), destroy, checks, destroy (changed=0); the seconds
    it took. ``deployed`` checks what is particular to the install mode; ``made`` are the
    paths deploy creates on the target."""
    started = time.monotonic()
    port = int(str(variables["cheeseboard_port"]))
    url = f"http://127.0.0.1:{port}"
    inventory = _inventory(tmp_path / "inventory.yml", target, variables)
    home = tmp_path / "ansible-home"

    code, changed, output = _playbook(docker, "deploy.yml", inventory, home)
    assert code == 0, output
    assert changed > 0, output

    assert _exec(docker, target, "systemctl", "is-active", "cheeseboard").stdout.strip() == "active"
    assert (
        _exec(docker, target, "systemctl", "is-enabled", "cheeseboard").stdout.strip() == "enabled"
    )
    fragment = _exec(docker, target, "systemctl", "show", "-P", "FragmentPath", "cheeseboard")
    assert fragment.stdout.strip() == "/etc/systemd/system/cheeseboard.service"
    deployed()
    for path in made:
        assert _exec(docker, target, "test", "-e", path).returncode == 0, f"{path} missing"
    assert call(url, "GET", "/-/health")[0] == 200
    status, mirror = call(url, "GET", "/root/pypi?no_projects=")
    assert status == 200 and mirror["result"]["type"] == "mirror", mirror
    status, stage = call(url, "GET", "/alice/dev?no_projects=")
    assert status == 200, stage
    assert stage["result"]["type"] == "stage"
    assert stage["result"]["bases"] == ["root/pypi"]
    assert can_log_in(url, *ALICE)
    assert can_log_in(url, "root", ROOT_PW)
    result = pip_install(f"{url}/alice/dev/+simple/", tmp_path / "site", "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "app" in installed(tmp_path / "site")

    code, changed, output = _playbook(docker, "deploy.yml", inventory, home)
    assert (code, changed) == (0, 0), output
    assert call(url, "GET", "/-/health")[0] == 200

    code, changed, output = _playbook(docker, "destroy.yml", inventory, home)
    assert code == 0, output
    assert changed > 0, output
    for path in made:
        assert _exec(docker, target, "test", "-e", path).returncode == 1, f"{path} still exists"
    assert _exec(docker, target, "getent", "passwd", "cheeseboard").returncode == 2
    assert _exec(docker, target, "getent", "group", "cheeseboard").returncode == 2
    load = _exec(docker, target, "systemctl", "show", "-P", "LoadState", "cheeseboard")
    assert load.stdout.strip() == "not-found"
    assert not _port_open(port)

    code, changed, output = _playbook(docker, "destroy.yml", inventory, home)
    assert (code, changed) == (0, 0), output
    return time.monotonic() - started


def _seed_variables(upstream: UpstreamServer) -> dict[str, object]:
    return {
        "cheeseboard_root_password": ROOT_PW,
        "cheeseboard_port": free_port(),
        "cheeseboard_workers": 2,
        "cheeseboard_mirror_url": upstream.simple_url,
        "cheeseboard_seed_user": ALICE[0],
        "cheeseboard_seed_password": ALICE[1],
        "cheeseboard_seed_index": "dev",
    }


def test_package_deploy_twice_then_destroy_twice(
    docker: Docker, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """The package in a venv with a systemd unit: healthy with the seed's indexes, changed=0 on
    the second run of each playbook, nothing left after destroy."""
    wheelhouse = _wheelhouse(tmp_path / "wheelhouse")
    variables = _seed_variables(html_upstream) | {"cheeseboard_wheelhouse": str(wheelhouse)}
    with _systemd_container(docker, "--tmpfs", "/tmp") as target:

        def deployed() -> None:
            main_pid = _exec(docker, target, "systemctl", "show", "-P", "MainPID", "cheeseboard")
            owner = _exec(docker, target, "stat", "-c", "%U", f"/proc/{main_pid.stdout.strip()}")
            assert owner.stdout.strip() == "cheeseboard", owner.stdout + owner.stderr

        elapsed = _cycle(docker, target, variables, tmp_path, deployed, MADE_PATHS)
    print(f"ansible package deploy, redeploy, destroy, destroy: {elapsed:.1f} s")
    assert elapsed < TIME_LIMIT


def test_image_deploy_twice_then_destroy_twice(
    docker: Docker, server_image: str, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """The server image from a ``docker save`` archive, run by a systemd unit through the
    target's docker CLI; destroy removes the container and the image it loaded.

    The target's CLI talks to the test engine (its socket and CLI mounted in), so the server
    container is the target's sibling and its volume paths are the engine host's: the state
    and config directories live under a host directory mounted at the same path in the target.
    """
    if not docker.host.startswith("unix://"):
        service_missing(f"the target needs the engine's unix socket; DOCKER_HOST is {docker.host}")
    tag = f"cheeseboard-server:ansible-{uuid.uuid4().hex[:8]}"
    archive = tmp_path / "image.tar"
    container = f"cb-test-deployed-{uuid.uuid4().hex[:12]}"
    docker.run("tag", server_image, tag)
    try:
        docker.run("save", "--output", str(archive), tag, timeout=180)
    finally:
        docker.run("rmi", tag)  # untags only: the layers stay with server_image
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    socket_path = docker.host.removeprefix("unix://")
    variables = _seed_variables(html_upstream) | {
        "cheeseboard_install": "image",
        "cheeseboard_image": tag,
        "cheeseboard_image_archive": str(archive),
        "cheeseboard_container": container,
        "cheeseboard_state_dir": f"{shared}/state",
        "cheeseboard_config_dir": f"{shared}/etc",
    }
    made = ("/opt/cheeseboard", f"{shared}/state", f"{shared}/etc", MADE_PATHS[-1])
    mounts = [
        *("--volume", f"{docker.binary}:/usr/bin/docker:ro"),
        *("--volume", f"{socket_path}:/var/run/docker.sock"),
        *("--volume", f"{shared}:{shared}"),
    ]
    with _systemd_container(docker, *mounts) as target:

        def deployed() -> None:
            image = docker.run("inspect", "--format", "{{.Config.Image}}", container).stdout
            assert image.strip() == tag
            user = docker.run("inspect", "--format", "{{.Config.User}}", container).stdout
            assert user.strip() == "10001:10001"

        try:
            elapsed = _cycle(docker, target, variables, tmp_path, deployed, made)
        finally:
            docker.run("rm", "--force", container, check=False)
    assert docker.run("container", "inspect", container, check=False).returncode != 0
    assert not docker.image_exists(tag)
    print(f"ansible image deploy, redeploy, destroy, destroy: {elapsed:.1f} s")
    assert elapsed < TIME_LIMIT
