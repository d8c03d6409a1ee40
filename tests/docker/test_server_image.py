"""The Debian server image on a real engine: install through it, upload to it, restart, stop.

The acceptance run of the container issue is ``test_install_upload_restart_and_stop``; the other
tests pin one entrypoint or image behaviour each.
"""

from __future__ import annotations

import base64
import http.client
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.docker.engine import (
    IMAGE_UID,
    Docker,
    ServerContainer,
    can_log_in,
    readable_dir,
    run_once,
    volume_dir,
)
from tests.support.api import call
from tests.support.clients import installed, pip_install
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, free_port
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.docker

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret")
STOP_LIMIT = 2.0  # seconds from `docker stop` (SIGTERM) to a stopped container


def _installs(index_url: str, target: Path, requirement: str) -> set[str]:
    result = pip_install(index_url, target, requirement)
    assert result.returncode == 0, f"pip install {requirement}:\n{result.stdout}\n{result.stderr}"
    return installed(target)


def test_install_upload_restart_and_stop(
    docker: Docker,
    server_image: str,
    client_image: str,
    html_upstream: UpstreamServer,
    tmp_path: Path,
) -> None:
    """pip installs through the container's mirror, the client container uploads, the container
    stops within 2 s, and a new container on the same volume serves it all with upstream gone."""
    data = volume_dir(tmp_path / "data")
    first = ServerContainer(
        docker,
        server_image,
        data,
        free_port(),
        env={
            "CHEESEBOARD_ROOT_PASSWORD": ROOT_PASSWORD,
            "CHEESEBOARD_MIRROR_URL": html_upstream.simple_url,
        },
    )
    work = readable_dir(tmp_path / "work")
    private = build_wheel(work, "private-pkg", "1.0", requires_dist=["lib-c"])
    with first:
        first.start()
        mirrored = _installs(first.index_url, tmp_path / "site-mirror", "app")
        assert {"app", "lib_a", "lib_b", "lib_c"} <= mirrored

        assert call(first.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
        status, body = call(first.url, "PUT", "/alice/dev", {"bases": "root/pypi"}, auth=ROOT)
        assert status in (200, 201), body
        upload = run_once(
            docker,
            client_image,
            "cheeseboard",
            "upload",
            private.filename,
            env={
                "CHEESEBOARD_URL": f"{first.url}alice/dev",
                "CHEESEBOARD_USER": ALICE[0],
                "CHEESEBOARD_PASSWORD": ALICE[1],
            },
            mounts={work: "/work"},
        )
        assert upload.returncode == 0, upload.stdout + upload.stderr
        index_url = f"{first.url}alice/dev/+simple/"
        assert {"private_pkg", "lib_c"} <= _installs(index_url, tmp_path / "site-1", "private-pkg")

        elapsed = first.stop()
        assert elapsed < STOP_LIMIT, f"docker stop took {elapsed:.2f} s\n{first.logs()}"
        assert first.exit_code() == 0, first.logs()

    html_upstream.stop()
    # A new container: no password needed once initialised, and everything comes from /data.
    again = ServerContainer(docker, server_image, data, free_port())
    with again:
        again.start()
        index_url = f"{again.url}alice/dev/+simple/"
        assert {"private_pkg", "lib_c"} <= _installs(index_url, tmp_path / "site-2", "private-pkg")
        mirrored = _installs(again.index_url, tmp_path / "site-mirror-2", "app")
        assert {"app", "lib_a", "lib_b", "lib_c"} <= mirrored
        assert can_log_in(again.url, "root", ROOT_PASSWORD)


def test_runs_unprivileged(shared_server: ServerContainer, docker: Docker) -> None:
    """Every process of the server container runs as the image's uid 10001, never root."""
    top = docker.run("top", shared_server.name, "-o", "pid,uid,args").stdout.splitlines()
    uids = {line.split()[1] for line in top[1:] if line.strip()}
    assert len(top) >= 4, top  # the server and its two workers
    assert uids == {str(IMAGE_UID)}, top
    assert shared_server.inspect("{{.Config.User}}") == f"{IMAGE_UID}:{IMAGE_UID}"


def test_arguments_pass_through_to_serve(shared_server: ServerContainer) -> None:
    """`docker run IMAGE --workers 2 --mirror-cache-expiry 600` reaches `serve` unchanged."""
    logs = shared_server.logs()
    assert "with 2 worker(s)" in logs, logs
    assert "setting mirror-cache-expiry from command line" in logs, logs
    assert f"Listening at: http://127.0.0.1:{shared_server.port}" in logs, logs


def test_web_ui_is_in_the_image(shared_server: ServerContainer) -> None:
    """Templates and static files are package data: a wheel without them would still start."""
    browser = {"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla/5.0"}
    request = urllib.request.Request(shared_server.url, headers=browser)
    with urllib.request.urlopen(request, timeout=30) as response:
        page = response.read().decode()
    assert "<title>cheeseboard</title>" in page and "root/pypi" in page
    stylesheet = re.search(r'href="(/\+static/style\.css\?v=\w+)"', page)
    assert stylesheet, page
    with urllib.request.urlopen(shared_server.url.rstrip("/") + stylesheet.group(1)) as css:
        assert b"prefers-color-scheme: dark" in css.read()


def test_healthcheck_reports_healthy(shared_server: ServerContainer) -> None:
    """HEALTHCHECK finds the server on the port given as an argument and reports healthy."""
    deadline = time.monotonic() + 20
    status = ""
    while time.monotonic() < deadline:
        status = shared_server.inspect("{{.State.Health.Status}}")
        if status == "healthy":
            return
        time.sleep(0.25)
    raise AssertionError(f"health is {status!r}: {shared_server.inspect('{{json .State.Health}}')}")


@pytest.mark.parametrize("source", ["DEVPI_PASSWORD", "CHEESEBOARD_ROOT_PASSWORD_FILE"])
def test_password_sources_and_hygiene(
    docker: Docker, server_image: str, tmp_path: Path, source: str
) -> None:
    """docker-devpi's DEVPI_PASSWORD or a secret file initialise root; the server process does
    not carry the password on in its environment."""
    password = "first-start-secret"
    env, options = {"DEVPI_PASSWORD": password}, []
    if source == "CHEESEBOARD_ROOT_PASSWORD_FILE":
        secret = readable_dir(tmp_path / "secrets") / "root-password"
        secret.write_text(password + "\n")
        secret.chmod(0o644)
        env = {source: "/run/secrets/root-password"}
        options = ["--volume", f"{secret}:/run/secrets/root-password:ro"]
    with ServerContainer(
        docker,
        server_image,
        volume_dir(tmp_path / "data"),
        free_port(),
        env=env,
        run_options=options,
    ) as server:
        server.start()
        assert can_log_in(server.url, "root", password)
        environ = docker.run("exec", server.name, "cat", "/proc/1/environ").stdout.split("\0")
        assert not [item for item in environ if password in item or "PASSWORD" in item], environ
        assert "CHEESEBOARD_DATADIR=/data/server" in environ


def test_help_and_other_commands_need_no_data(docker: Docker, server_image: str) -> None:
    """`IMAGE --help` shows serve's options and `IMAGE COMMAND` runs it, without initialising."""
    help_text = run_once(docker, server_image, "--workers", "4", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--mirror-cache-expiry" in help_text.stdout
    other = run_once(docker, server_image, "cheeseboard-server", "--version")
    assert other.returncode == 0 and "cheeseboard-server" in other.stdout, other


def test_refuses_to_start_uninitialised_without_password(
    docker: Docker, server_image: str, tmp_path: Path
) -> None:
    """An empty volume and no root password: a clear message, exit 2, nothing created."""
    data = volume_dir(tmp_path / "data")
    result = run_once(docker, server_image, mounts={data: "/data"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not initialised" in result.stderr and "CHEESEBOARD_ROOT_PASSWORD" in result.stderr
    assert list(data.iterdir()) == []


def test_unwritable_volume_is_explained(docker: Docker, server_image: str, tmp_path: Path) -> None:
    """A host directory the image's user cannot write: exit 2 saying whom to give it to."""
    data = volume_dir(tmp_path / "data", owner=0)
    data.chmod(0o755)
    result = run_once(
        docker, server_image, mounts={data: "/data"}, env={"CHEESEBOARD_ROOT_PASSWORD": "pw"}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not writable by uid 10001" in result.stderr, result.stderr


def test_export_then_import_into_a_new_volume(
    docker: Docker, server_image: str, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """A mounted /export dumps the store and exits; a mounted /import loads it into an empty
    volume and exits; a server on that volume has the users and packages of the first."""
    first_data = volume_dir(tmp_path / "first")
    dumps = volume_dir(tmp_path / "dumps")
    dist = build_wheel(tmp_path / "dist", "exported-pkg", "1.0")
    with ServerContainer(
        docker,
        server_image,
        first_data,
        free_port(),
        env={
            "CHEESEBOARD_ROOT_PASSWORD": ROOT_PASSWORD,
            "CHEESEBOARD_HOST": "127.0.0.1",
            "CHEESEBOARD_MIRROR_URL": html_upstream.simple_url,
        },
    ) as first:
        first.start()
        assert call(first.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
        status, body = call(first.url, "PUT", "/alice/dev", {"bases": "root/pypi"}, auth=ROOT)
        assert status == 200, body
        _upload(first.url, "alice/dev", dist, ALICE)
        first.stop()

    exported = run_once(docker, server_image, mounts={first_data: "/data", dumps: "/export"})
    assert exported.returncode == 0, exported.stdout + exported.stderr
    made = [p for p in dumps.iterdir() if p.name.startswith("cheeseboard-dump-")]
    assert len(made) == 1 and (made[0] / "cheeseboard-dump.json").exists()

    second_data = volume_dir(tmp_path / "second")
    imported = run_once(docker, server_image, mounts={second_data: "/data", dumps: "/import"})
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "imported" in imported.stdout
    again = run_once(docker, server_image, mounts={second_data: "/data", dumps: "/import"})
    assert again.returncode == 2 and "holds a store already" in again.stderr

    with ServerContainer(
        docker, server_image, second_data, free_port(), env={"CHEESEBOARD_HOST": "127.0.0.1"}
    ) as second:
        second.start()
        assert can_log_in(second.url, *ALICE)
        target = tmp_path / "target"
        assert _installs(f"{second.url}alice/dev/+simple/", target, "exported-pkg") == {
            "exported_pkg"
        }


def test_export_needs_a_store_and_one_mount(
    docker: Docker, server_image: str, tmp_path: Path
) -> None:
    empty = volume_dir(tmp_path / "data")
    dumps = volume_dir(tmp_path / "dumps")
    result = run_once(docker, server_image, mounts={empty: "/data", dumps: "/export"})
    assert result.returncode == 2 and "no store to export" in result.stderr
    both = run_once(
        docker, server_image, mounts={empty: "/data", dumps: "/export", tmp_path: "/import"}
    )
    assert both.returncode == 2 and "mount one of them" in both.stderr
    nothing = run_once(
        docker, server_image, mounts={empty: "/data", readable_dir(tmp_path / "x"): "/import"}
    )
    assert nothing.returncode == 2 and "holds no dump" in nothing.stderr
    assert list(empty.iterdir()) == [], "nothing may be initialised on the way"


def _upload(url: str, index: str, dist: Dist, auth: tuple[str, str]) -> None:
    boundary = "cheeseboard-export-boundary"
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    connection.request(
        "POST",
        f"/{index}/",
        body=_multipart(dist, boundary),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"Basic {token}",
        },
    )
    response = connection.getresponse()
    assert response.status == 200, response.read()
    connection.close()


def _multipart(dist: Dist, boundary: str) -> bytes:
    fields = {
        ":action": "file_upload",
        "name": dist.name,
        "version": dist.version,
        "sha256_digest": dist.sha256,
    }
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{dist.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
    )
    parts.append(dist.path.read_bytes())
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts)


def test_upload_in_flight_survives_stop(docker: Docker, server_image: str, tmp_path: Path) -> None:
    """SIGTERM during an upload: the upload completes and is kept, and the stop takes < 2 s."""
    data = volume_dir(tmp_path / "data")
    dist = build_wheel(tmp_path, "slow-upload", "1.0", payload_size=2_000_000)
    boundary = "cheeseboard-test-boundary"
    body = _multipart(dist, boundary)
    with ServerContainer(
        docker, server_image, data, free_port(), env={"CHEESEBOARD_ROOT_PASSWORD": ROOT_PASSWORD}
    ) as server:
        server.start()
        assert call(server.url, "PUT", "/root/dev", {"bases": ""}, auth=ROOT)[0] in (200, 201)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.putrequest("POST", "/root/dev/")
            token = base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()
            conn.putheader("Authorization", f"Basic {token}")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            half = len(body) // 2
            conn.send(body[:half])
            time.sleep(0.3)  # the server is reading the body now
            stop_time: list[float] = []
            stopper = threading.Thread(target=lambda: stop_time.append(server.stop()))
            stopper.start()
            deadline = time.monotonic() + 5
            while "Stopping worker" not in server.logs():  # granian got SIGTERM
                assert time.monotonic() < deadline, server.logs()
                time.sleep(0.05)
            conn.send(body[half:])
            response = conn.getresponse()
            answer = response.read().decode()
            stopper.join(30)
        finally:
            conn.close()
        assert response.status == 200 and "stored" in answer, answer
        assert stop_time and stop_time[0] < STOP_LIMIT, (stop_time, server.logs())
        assert server.exit_code() == 0

        docker.run("start", server.name)
        server.wait_ready()
        status, body_json = call(server.url, "GET", "/root/dev/slow-upload")
        assert status == 200 and "1.0" in body_json["result"], body_json


def test_server_image_is_under_200_mb(docker: Docker, server_image: str, base_image: str) -> None:
    """The issue's size target for the Debian server image (uncompressed, as `docker images`)."""
    size, base = docker.image_size(server_image), docker.image_size(base_image)
    print(f"{server_image}: {size / 1e6:.0f} MB, of which {base_image} {base / 1e6:.0f} MB")
    assert size < 200e6, f"{server_image} is {size / 1e6:.0f} MB (base {base / 1e6:.0f} MB)"
