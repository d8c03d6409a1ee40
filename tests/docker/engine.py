"""A real Docker engine for the container tests: the CLI, image builds, server and client runs.

The engine is the one ``.ci/docker-setup.sh`` starts (``$DOCKER_HOST``, else
``unix:///tmp/cb-docker/docker.sock``). Containers always use ``--network host`` (the CI engine has
no bridge) and the server binds 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.support.api import call

REPO = Path(__file__).resolve().parents[2]
DEFAULT_HOST = "unix:///tmp/cb-docker/docker.sock"
DEFAULT_BASE = "local/python:3.12-slim"
SETUP_HINT = "run .ci/docker-setup.sh"
IMAGE_UID = 10001  # the images' unprivileged user (docker/*/Dockerfile)
TEST_LABEL = "cheeseboard.test-image=1"


def _docker_binary() -> str | None:
    """The CLI: $CHEESEBOARD_DOCKER, else /usr/bin/docker (docker.io's client, which has BuildKit
    built in; /usr/local/bin/docker 28.x needs buildx for it), else docker on PATH."""
    explicit = os.environ.get("CHEESEBOARD_DOCKER")
    if explicit:
        return explicit
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    return shutil.which("docker")


def extra_ca_bundle() -> Path | None:
    """CA bundle handed to image builds as the ``ca`` secret, so pip works behind the machine's
    TLS-intercepting proxy: $CHEESEBOARD_DOCKER_CA, else the system bundle if there is one."""
    explicit = os.environ.get("CHEESEBOARD_DOCKER_CA")
    if explicit is not None:
        return Path(explicit) if explicit else None
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    return system if system.is_file() else None


@dataclass(frozen=True)
class Docker:
    """The docker CLI bound to one engine."""

    binary: str
    host: str

    @classmethod
    def find(cls) -> Docker | str:
        """The engine if it answers, else the reason it cannot be used."""
        binary = _docker_binary()
        if binary is None:
            return f"no docker CLI found: {SETUP_HINT}"
        engine = cls(binary, os.environ.get("DOCKER_HOST") or DEFAULT_HOST)
        try:
            probe = engine.run(
                "version", "--format", "{{.Server.Version}}", check=False, timeout=15
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"docker engine at {engine.host} unusable ({error}): {SETUP_HINT}"
        if probe.returncode != 0:
            return f"no docker engine answers at {engine.host}: {SETUP_HINT}"
        return engine

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONTEXT"}
        env["DOCKER_HOST"] = self.host
        env["DOCKER_BUILDKIT"] = "1"
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """One CLI call; with ``check`` a failure raises with the command's output."""
        result = subprocess.run(
            [self.binary, *args],
            env=self.env(),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def build_command(self, dockerfile: str, tag: str, base: str) -> list[str]:
        """``docker build`` of one of the repository's Dockerfiles on ``base``."""
        command = [self.binary, "build", "--network", "host", "--label", TEST_LABEL]
        ca = extra_ca_bundle()
        if ca is not None:
            command += ["--secret", f"id=ca,src={ca}"]
        return [*command, "--build-arg", f"BASE={base}", "-f", dockerfile, "-t", tag, str(REPO)]

    def build_all(self, builds: Mapping[str, tuple[str, str]], timeout: float = 900) -> None:
        """Build ``{tag: (dockerfile, base)}`` concurrently; any failure raises with its log."""
        running = {
            tag: subprocess.Popen(
                self.build_command(dockerfile, tag, base),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for tag, (dockerfile, base) in builds.items()
        }
        failures = []
        for tag, process in running.items():
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            if process.returncode != 0:
                failures.append(f"building {tag} failed ({process.returncode}):\n{output[-6000:]}")
        # Rebuilt tags leave their previous images dangling; keep the engine's disk bounded.
        self.run("image", "prune", "--force", "--filter", f"label={TEST_LABEL}", check=False)
        if failures:
            raise AssertionError("\n\n".join(failures))

    def image_size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout)


def volume_dir(path: Path, owner: int = IMAGE_UID) -> Path:
    """An empty host directory for /data, owned by the image's user as the docs ask."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, owner, owner)
    else:  # cannot give it away: let everyone write
        path.chmod(0o777)
    return path


def can_log_in(url: str, user: str, password: str) -> bool:
    """Whether ``POST /+login`` accepts the credentials."""
    return call(url, "POST", "/+login", {"user": user, "password": password})[0] == 200


def readable_dir(path: Path) -> Path:
    """A host directory the image's user can read (pytest's tmp dirs are 0700, owned by us)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


@dataclass
class ServerContainer:
    """One detached server container on 127.0.0.1:``port`` with ``datadir`` as its /data."""

    docker: Docker
    image: str
    datadir: Path
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    args: Sequence[str] = ()
    run_options: Sequence[str] = ()
    name: str = field(default_factory=lambda: f"cb-test-{uuid.uuid4().hex[:12]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def index_url(self) -> str:
        return f"{self.url}root/pypi/+simple/"

    def __enter__(self) -> ServerContainer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def start(self, timeout: float = 60) -> None:
        """``docker run -d`` and wait until /-/health answers 200."""
        env_args = [f"--env={key}={value}" for key, value in self.env.items()]
        self.docker.run(
            "run",
            "--detach",
            "--name",
            self.name,
            "--network",
            "host",
            "--volume",
            f"{self.datadir}:/data",
            *env_args,
            *self.run_options,
            self.image,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "-/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if not self.running():
                raise AssertionError(f"server container exited early:\n{self.logs()}")
            time.sleep(0.1)
        raise AssertionError(f"server container not ready after {timeout} s:\n{self.logs()}")

    def running(self) -> bool:
        state = self.docker.run("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def inspect(self, template: str) -> str:
        return self.docker.run("inspect", "--format", template, self.name).stdout.strip()

    def stop(self) -> float:
        """``docker stop`` (SIGTERM, SIGKILL after 10 s); returns the seconds it took."""
        started = time.monotonic()
        self.docker.run("stop", "--time", "10", self.name, timeout=30)
        return time.monotonic() - started

    def exit_code(self) -> int:
        return int(self.inspect("{{.State.ExitCode}}"))

    def logs(self) -> str:
        result = self.docker.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        self.docker.run("rm", "--force", "--volumes", self.name, check=False)


def run_once(
    docker: Docker,
    image: str,
    *command: str,
    env: Mapping[str, str] | None = None,
    mounts: Mapping[Path, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``docker run --rm`` to completion (host network); returns the finished process."""
    options = ["--rm", "--network", "host"]
    if stdin is not None:
        options.append("--interactive")
    for source, target in (mounts or {}).items():
        options += ["--volume", f"{source}:{target}"]
    options += [f"--env={key}={value}" for key, value in (env or {}).items()]
    return docker.run("run", *options, image, *command, check=False, timeout=timeout, stdin=stdin)
