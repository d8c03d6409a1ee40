"""deploy/kubernetes' settings on real PostgreSQL and S3, without a cluster.

The init Job's command and environment, and the Deployment's environment and arguments, are read
from the manifests; the Secret's keys get real values (a fresh database, a fresh bucket). The Job
runs twice (a second run joins and changes nothing, as its comment says), then two nodes start
as the image's entrypoint starts them (init of their own data directory, then serve) and share
one view of the data.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.api import call
from tests.support.process import ManagedProcess, http_probe
from tests.support.server import free_port, server_command

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
ROOT_PW = "k8s-root-secret"
IMAGE_DATADIR = "/data/server"  # the server image's CHEESEBOARD_DATADIR (docker/server/Dockerfile)


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return loaded


def _container(name: str) -> dict[str, Any]:
    (container,) = _load(name)["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _pod_env(container: dict[str, Any], secret: dict[str, str], data: Path) -> dict[str, str]:
    """The variables the pod would get, with /data mounted at ``data``."""
    config: dict[str, str] = _load("configmap.yaml")["data"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "cheeseboard"
        env |= config
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            env[entry["name"]] = secret[entry["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[entry["name"]] = config[entry["valueFrom"]["configMapKeyRef"]["key"]]
    env.setdefault("CHEESEBOARD_DATADIR", IMAGE_DATADIR)
    env["CHEESEBOARD_DATADIR"] = env["CHEESEBOARD_DATADIR"].replace("/data", str(data), 1)
    data.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CHEESEBOARD_", "AWS_"))}
    return base | env


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_init_job_then_two_nodes_on_postgres_and_s3(
    postgres_url: str, s3_url: str, tmp_path: Path
) -> None:
    """The init Job fills the database, then joins; two nodes set up as deployed share it."""
    secret = {
        "database-url": postgres_url,
        "blob-url": s3_url,
        "aws-access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws-secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "root-password": ROOT_PW,
    }
    assert set(secret) == set(_load("secret.example.yaml")["stringData"])

    job = _container("job-init.yaml")
    assert job["command"][0] == "cheeseboard-server"
    for attempt, expected in ((1, "initialised"), (2, "joining")):
        env = _pod_env(job, secret, tmp_path / f"job-{attempt}")
        result = _run(server_command(*job["command"][1:]), env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert expected in result.stdout + result.stderr, result.stdout + result.stderr

    node = _container("deployment.yaml")
    urls = []
    processes = []
    try:
        for number in (1, 2):
            env = _pod_env(node, secret, tmp_path / f"node-{number}")
            # The entrypoint: init the empty data directory (joining), forget the password, serve.
            result = _run(server_command("init"), env)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "joining" in result.stdout + result.stderr
            del env["CHEESEBOARD_ROOT_PASSWORD"]
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = ManagedProcess(
                server_command("serve", *node["args"], "--host", "127.0.0.1", "--port", str(port)),
                name=f"node-{number}",
                log_path=tmp_path / f"node-{number}.log",
                ready=http_probe(url + "/-/health"),
                env=env,
            )
            processes.append(process)
            process.start(60)
            urls.append(url)

        first, second = urls
        status, body = call(
            first, "PUT", "/alice", {"password": "alice-k8s"}, auth=("root", ROOT_PW)
        )
        assert status == 201, body
        status, body = call(second, "GET", "/alice")
        assert status == 200, body
        status, body = call(second, "GET", "/root/pypi?no_projects=")
        assert status == 200 and body["result"]["type"] == "mirror", body
    finally:
        for process in processes:
            process.stop()
