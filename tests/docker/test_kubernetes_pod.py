"""The server image under deploy/kubernetes' pod constraints, on a real engine.

No cluster here, so the Deployment's container settings are mapped onto ``docker run``: its user,
a read-only root file system, no capabilities, no privilege escalation, its arguments and its
ConfigMap settings, with a writable directory for each of its volume mounts. The server must
start, pass /-/health and mirror an install through root/pypi (which writes to /data).
PostgreSQL and S3 are left out: they are the scale-out tests' business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docker.engine import REPO, Docker, ServerContainer, volume_dir
from tests.support.clients import installed, pip_install
from tests.support.server import ROOT_PASSWORD, free_port
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.docker

K8S = REPO / "deploy" / "kubernetes"


def _deployment_container() -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def _docker_options(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    pod_security, security = pod["securityContext"], container["securityContext"]
    user, group = pod_security["runAsUser"], pod_security["runAsGroup"]
    options = ["--user", f"{user}:{group}"]
    if security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    options += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
    for mount in container["volumeMounts"]:
        if mount["mountPath"] != "/data":  # /data is ServerContainer's volume
            options += ["--tmpfs", f"{mount['mountPath']}:uid={user},gid={group}"]
    return options


def test_server_runs_under_the_deployment_constraints(
    docker: Docker, server_image: str, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """The image starts, passes /-/health and mirrors an install under the pod's constraints."""
    pod, container = _deployment_container()
    config = yaml.safe_load((K8S / "configmap.yaml").read_text())["data"]
    # The ConfigMap's settings, except those naming the world outside this test.
    env = {
        key: value
        for key, value in config.items()
        if key not in ("CHEESEBOARD_OUTSIDE_URL", "CHEESEBOARD_MIRROR_URL")
    }
    env |= {
        "CHEESEBOARD_ROOT_PASSWORD": ROOT_PASSWORD,
        "CHEESEBOARD_MIRROR_URL": html_upstream.simple_url,
    }
    port = free_port()
    server = ServerContainer(
        docker,
        server_image,
        volume_dir(tmp_path / "data", owner=pod["securityContext"]["runAsUser"]),
        port,
        env=env,
        # The manifest's arguments, then this test's address (the last --host/--port wins).
        args=[*container["args"], "--host", "127.0.0.1", "--port", str(port)],
        run_options=_docker_options(pod, container),
    )
    assert "--read-only" in server.run_options
    with server:
        server.start()
        assert server.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
        assert server.inspect("{{.Config.User}}") == "10001:10001"
        result = pip_install(server.index_url, tmp_path / "site", "app")
        assert result.returncode == 0, result.stdout + result.stderr + server.logs()
        assert {"app", "lib_a"} <= installed(tmp_path / "site")
