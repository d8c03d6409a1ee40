"""The server image behind a TLS-intercepting proxy (issue 23): a CA bundle mounted read-only and
named by ``CHEESEBOARD_CA_BUNDLE``, as docs/containers.md shows, lets the mirror reach an HTTPS
upstream whose certificate only that CA signed."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.engine import Docker, ServerContainer, readable_dir, volume_dir
from tests.support.certs import ThrowawayCA, make_ca
from tests.support.clients import installed, pip_install
from tests.support.packages import Dist
from tests.support.server import ROOT_PASSWORD, free_port
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.docker

MOUNTED = "/etc/cheeseboard/ca.pem"


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCA:
    made = make_ca(readable_dir(tmp_path / "ca"))
    made.ca_pem.chmod(0o644)  # read by the image's uid 10001
    return made


@pytest.fixture
def https_upstream(ca: ThrowawayCA, dists: dict[str, list[Dist]]) -> Iterator[UpstreamServer]:
    with UpstreamServer(mode="html", tls=ca.server_context()) as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        yield upstream


def _status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_mounted_ca_bundle_reaches_an_https_upstream(
    docker: Docker,
    server_image: str,
    https_upstream: UpstreamServer,
    ca: ThrowawayCA,
    tmp_path: Path,
) -> None:
    """Without the bundle the container's mirror answers 502 naming the certificate problem;
    with ``-v ca.pem:/etc/cheeseboard/ca.pem:ro -e CHEESEBOARD_CA_BUNDLE=...`` pip installs."""
    env = {
        "CHEESEBOARD_ROOT_PASSWORD": ROOT_PASSWORD,
        "CHEESEBOARD_MIRROR_URL": https_upstream.simple_url,
    }
    plain = ServerContainer(docker, server_image, volume_dir(tmp_path / "plain"), free_port(), env)
    with plain:
        plain.start()
        status, body = _status(f"{plain.index_url}app/")
        assert status == 502, body
        assert "TLS certificate not trusted" in body, body

    trusting = ServerContainer(
        docker,
        server_image,
        volume_dir(tmp_path / "trusting"),
        free_port(),
        {**env, "CHEESEBOARD_CA_BUNDLE": MOUNTED},
        run_options=["--volume", f"{ca.ca_pem}:{MOUNTED}:ro"],
    )
    with trusting:
        trusting.start()
        result = pip_install(trusting.index_url, tmp_path / "site", "app")
        assert result.returncode == 0, f"{result.stderr}\n{trusting.logs()}"
        assert {"app", "lib_a", "lib_b", "lib_c"} <= installed(tmp_path / "site")
        assert "setting ca-bundle from environment CHEESEBOARD_CA_BUNDLE" in trusting.logs()
