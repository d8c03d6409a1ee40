"""Unit tests of the client's config, HTTP error mapping, multipart body and imports."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cheeseboard.client import cli, install, releases, tokens
from cheeseboard.client.config import ClientConfig, split_url
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError, error_for
from cheeseboard.client.upload import MultipartBody, collect, parse_filename, upload_form

SERVER_MODULES = (
    "starlette",
    "sqlalchemy",
    "aiohttp",
    "granian",
    "cheeseboard.server",
    "cheeseboard.services",
    "cheeseboard.store",
    "cheeseboard.http",
    "cheeseboard.mirror",
)


def test_client_imports_no_server_modules() -> None:
    code = (
        "import sys, cheeseboard.client.cli\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {SERVER_MODULES[:4]!r}"
        f" or m.startswith({SERVER_MODULES[4:]!r})]\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:3141", ("http://h:3141/", None)),
        ("http://h:3141/", ("http://h:3141/", None)),
        ("http://h/u/i", ("http://h/", "u/i")),
        ("http://h/prefix/u/i/", ("http://h/prefix/", "u/i")),
        ("http://h/u/i/+simple/", ("http://h/u/i/+simple/", None)),
    ],
)
def test_split_url(url: str, expected: tuple[str, str | None]) -> None:
    assert split_url(url) == expected


def test_config_roundtrip_is_private(tmp_path: Path) -> None:
    env = {"CHEESEBOARD_CLIENTDIR": str(tmp_path / "c")}
    config = ClientConfig.load(env, interactive=False)
    config.url, config.index, config.user, config.token = "http://h/", "u/i", "u", "tok"
    config.save()
    path = tmp_path / "c" / "client.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {
        "url": "http://h/",
        "index": "u/i",
        "user": "u",
        "token": "tok",
    }
    again = ClientConfig.load(env, interactive=False)
    assert again.credentials() == ("u", "tok")
    assert list((tmp_path / "c").iterdir()) == [path]


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "CHEESEBOARD_CLIENTDIR": str(tmp_path),
        "DEVPI_URL": "http://devpi/a/b",
        "DEVPI_USER": "d",
        "DEVPI_PASSWORD": "dpw",
        "CHEESEBOARD_USER": "c",
    }
    config = ClientConfig.load(env, interactive=False)
    assert (config.url, config.index) == ("http://devpi/", "a/b")
    assert config.credentials() == ("c", "dpw")


def test_missing_password_fails_without_terminal(tmp_path: Path) -> None:
    env = {"CHEESEBOARD_CLIENTDIR": str(tmp_path), "CHEESEBOARD_USER": "u"}
    config = ClientConfig.load(env, interactive=False)
    with pytest.raises(ClientError, match="no password"):
        config.credentials()
    config.interactive, config.prompt = True, lambda text: "typed"
    assert config.credentials() == ("u", "typed")


def test_corrupt_state_is_a_client_error(tmp_path: Path) -> None:
    (tmp_path / "client.json").write_text("{nope")
    with pytest.raises(ClientError, match="cannot read"):
        ClientConfig.load({"CHEESEBOARD_CLIENTDIR": str(tmp_path)})


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "wrong password"), (403, "no permission"), (404, "not found"), (500, "500")],
)
def test_error_for(status: int, words: str) -> None:
    error = error_for(status, "server says")
    assert words in error.message
    assert "server says" in error.message
    assert error.status == status


def test_multipart_body_streams_with_exact_length(tmp_path: Path) -> None:
    path = tmp_path / "p-1.0-py3-none-any.whl"
    path.write_bytes(b"x" * 600_000)
    seen: list[int] = []
    body = MultipartBody([("name", "p"), ("version", "1.0")], "content", path, seen.append)
    chunks = list(body)
    data = b"".join(chunks)
    assert len(data) == len(body)
    assert len(chunks) > 3  # the file is not read whole
    assert sum(seen) == 600_000
    assert data.startswith(f"--{body.boundary}\r\n".encode())
    assert data.endswith(f"\r\n--{body.boundary}--\r\n".encode())
    assert b'name="content"; filename="p-1.0-py3-none-any.whl"' in data


def test_parse_filename_and_collect(tmp_path: Path) -> None:
    wheel = parse_filename(Path("my_pkg-1.2-py3-none-any.whl"))
    assert (wheel.name, wheel.version, wheel.filetype, wheel.pyversion) == (
        "my_pkg",
        "1.2",
        "bdist_wheel",
        "py3",
    )
    sdist = parse_filename(Path("my-pkg-1.2.tar.gz"))
    assert (sdist.name, sdist.version, sdist.filetype) == ("my-pkg", "1.2", "sdist")
    with pytest.raises(ClientError, match="cannot upload"):
        parse_filename(Path("notes.txt"))
    (tmp_path / "a-1.0.tar.gz").write_bytes(b"")
    (tmp_path / "README").write_text("")
    assert [a.path.name for a in collect([tmp_path])] == ["a-1.0.tar.gz"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClientError, match="nothing to upload"):
        collect([tmp_path / "empty"])


def test_output_json_table() -> None:
    buffer = io.StringIO()
    out = Output(json_mode=True, console=Console(file=buffer))
    out.table("t", ["a", "b"], [["1", "2"]])
    assert json.loads(buffer.getvalue()) == [{"a": "1", "b": "2"}]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90d", 90 * 86_400), ("12h", 43_200), ("3600", 3600), ("2w", 1_209_600)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert tokens.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5y", "-1d", "1.5h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ClientError, match="not a duration"):
        tokens.parse_duration(text)


@pytest.mark.parametrize(
    ("spec", "pair"),
    [
        ("pkg==1.0", ("pkg", "1.0")),
        ("my-pkg-2.0rc1", ("my-pkg", "2.0rc1")),
        ("a.b==3", ("a.b", "3")),
    ],
)
def test_split_spec(spec: str, pair: tuple[str, str]) -> None:
    assert releases.split_spec(spec) == pair


def test_doc_zip_filename() -> None:
    artifact = parse_filename(Path("my_pkg-1.0.doc.zip"))
    assert (artifact.name, artifact.version, artifact.filetype) == ("my_pkg", "1.0", "doc")
    form = dict(upload_form(artifact, "0" * 64))
    assert form[":action"] == "doc_upload"
    with pytest.raises(ClientError, match=r"NAME-VERSION\.doc\.zip"):
        parse_filename(Path("nodash.doc.zip"))


def test_install_command_uses_the_current_index() -> None:
    config = ClientConfig(Path("unused"), url="http://h:3141/", index="u/i")
    command = install.install_command(config, ["pkg"], False, "/venv/bin/python", False)
    url = "http://h:3141/u/i/+simple/"
    assert command == ["/venv/bin/python", "-m", "pip", "install", "--index-url", url, "pkg"]


def test_help_matches_the_readme() -> None:
    """Every command in ``cheeseboard --help`` has a README row with the same one-line help."""
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `cheeseboard ([a-z-]+)` \| (.+?) \|$", readme, re.MULTILINE))
    result = CliRunner().invoke(cli.cli, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    listed = result.output.split("Commands:\n", 1)[1]
    commands = dict(line.strip().split(None, 1) for line in listed.splitlines() if line.strip())
    assert rows == commands
    for name in commands:
        sub = CliRunner().invoke(cli.cli, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert f"Usage: cli {name}" in sub.output or f"Usage: cheeseboard {name}" in sub.output
