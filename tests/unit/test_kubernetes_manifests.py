"""deploy/kubernetes: valid Kubernetes objects, and settings the server really has.

Each manifest is checked against the Kubernetes JSON schemas bundled by kubernetes-validate
(strict: unknown fields fail) for the oldest and newest versions we claim. The environment
variables and arguments the pods pass are checked against the server's own option tables
(``cheeseboard.settings.OPTIONS`` and the click commands), and the example values go through the
server's converters, so a renamed option or a malformed URL fails here, not in a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from cheeseboard.server.cli import main as server_cli
from cheeseboard.settings import ENV_PREFIX, OPTIONS

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
SECRET_EXAMPLE = K8S / "secret.example.yaml"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _objects(kind: str) -> list[dict[str, Any]]:
    found = [doc for path in _manifests() for doc in _documents(path) if doc["kind"] == kind]
    assert found, f"no {kind} in {K8S}"
    return found


def _only(kind: str) -> dict[str, Any]:
    (found,) = _objects(kind)
    return found


def _pod_spec(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = _only(kind)["spec"]["template"]["spec"]
    return spec


def _container(kind: str) -> dict[str, Any]:
    (container,) = _pod_spec(kind)["containers"]
    result: dict[str, Any] = container
    return result


def _env_names(container: dict[str, Any]) -> set[str]:
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        (config_map,) = [c for c in _objects("ConfigMap") if c["metadata"]["name"] == ref]
        names |= set(config_map["data"])
    return names


def _command_envvars(name: str) -> set[str]:
    command = server_cli.commands[name]
    envvars: set[str] = set()
    for param in command.params:
        if isinstance(param.envvar, str):
            envvars.add(param.envvar)
    return envvars


def _serve_envvars() -> set[str]:
    """``serve`` reads CHEESEBOARD_<OPTION> for every row of the settings table."""
    table = {ENV_PREFIX + option.name.upper().replace("-", "_") for option in OPTIONS}
    return table | {ENV_PREFIX + "DATADIR"} | _command_envvars("serve")


def _documented_aws_variables() -> set[str]:
    return set(re.findall(r"\bAWS_[A-Z_]+[A-Z]\b", (REPO / "docs" / "scale-out.md").read_text()))


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    """Every object in the file is valid, with no unknown field, for that Kubernetes version."""
    documents = _documents(path)
    assert documents, f"{path.name} holds no object"
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name} ({document['kind']}) is not valid for {version}: {error}")


def test_kustomization_lists_every_manifest() -> None:
    """The resources exist (secret.yaml is the user's copy of secret.example.yaml) and no
    manifest is left out of ``kubectl apply -k``."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert "secret.yaml" in listed
    assert (K8S / ".gitignore").read_text().split().count("secret.yaml") == 1
    on_disk = {p.name for p in _manifests()} - {SECRET_EXAMPLE.name} | {"secret.yaml"}
    assert listed == on_disk
    images = {image["name"] for image in kustomization["images"]}
    used = {_container(kind)["image"] for kind in ("Deployment", "Job")}
    assert used <= images


def test_server_pods_pass_only_real_options() -> None:
    """The nodes' variables are serve's (or init's, which the image's entrypoint runs on a
    first start) or documented S3 ones; their arguments are serve options."""
    container = _container("Deployment")
    allowed = _serve_envvars() | _command_envvars("init") | _documented_aws_variables()
    unknown = _env_names(container) - allowed
    assert not unknown, f"not server settings: {sorted(unknown)}"
    serve = server_cli.commands["serve"]
    options = {
        opt for param in serve.params if isinstance(param, click.Option) for opt in param.opts
    }
    passed = {arg for arg in container["args"] if arg.startswith("--")}
    assert passed, "the nodes pass no serve options"
    assert passed <= options, f"not serve options: {sorted(passed - options)}"


def test_init_job_passes_only_init_options() -> None:
    """The Job runs `cheeseboard-server init` with init's variables and S3's only."""
    container = _container("Job")
    assert container["command"] == ["cheeseboard-server", "init"]
    assert "init" in server_cli.commands
    allowed = _command_envvars("init") | _documented_aws_variables()
    unknown = _env_names(container) - allowed
    assert not unknown, f"not init settings: {sorted(unknown)}"
    assert _pod_spec("Job")["restartPolicy"] in ("OnFailure", "Never")


def test_referenced_keys_exist_and_values_convert() -> None:
    """Every secretKeyRef / configMapKeyRef names a key of the example Secret or the ConfigMap,
    and their values pass the server's own converters."""
    secret = _documents(SECRET_EXAMPLE)[0]["stringData"]
    config = _only("ConfigMap")["data"]
    for kind in ("Deployment", "Job"):
        for entry in _container(kind).get("env", []):
            source = entry.get("valueFrom", {})
            if "secretKeyRef" in source:
                assert source["secretKeyRef"]["key"] in secret, (kind, entry)
            if "configMapKeyRef" in source:
                assert source["configMapKeyRef"]["key"] in config, (kind, entry)
    by_env = {ENV_PREFIX + o.name.upper().replace("-", "_"): o for o in OPTIONS}
    converted = 0
    for name, value in config.items():
        if name in by_env:
            by_env[name].convert(value)
            converted += 1
    assert converted >= 3
    by_name = {o.name: o for o in OPTIONS}
    assert by_name["database-url"].convert(secret["database-url"]).startswith("postgresql://")
    assert by_name["blob-url"].convert(secret["blob-url"]).startswith("s3://")


def test_pods_run_as_the_image_user_with_a_read_only_root() -> None:
    """Both pods run as the image's uid, read-only, without capabilities, with bounded resources."""
    image_uid = int(
        re.search(r"--uid (\d+)", (REPO / "docker/server/Dockerfile").read_text()).group(1)  # type: ignore[union-attr]
    )
    for kind in ("Deployment", "Job"):
        pod = _pod_spec(kind)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == image_uid
        container = _container(kind)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/data", "/tmp"} <= mounts, kind
        assert "limits" in container["resources"] and "requests" in container["resources"]


def test_nodes_are_probed_on_health_and_covered_by_the_budget() -> None:
    """Probes ask /-/health; the Service and the PDB select the nodes' pods."""
    container = _container("Deployment")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/-/health", probe
    labels = _only("Deployment")["spec"]["template"]["metadata"]["labels"]
    budget = _only("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    service = _only("Service")["spec"]["selector"]
    assert budget.items() <= labels.items()
    assert service.items() <= labels.items()
    assert _only("Deployment")["spec"]["replicas"] >= 2
