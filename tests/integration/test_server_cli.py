"""``cheeseboard-server`` init/serve: first-start initialisation, settings sources, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.process import ManagedProcess, http_probe
from tests.support.server import free_port, server_command


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
    env.update(extra)
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        server_command(*args), env=_env(**env), capture_output=True, text=True, timeout=60
    )


def _serve_until_ready(args: list[str], env: dict[str, str], port: int) -> str:
    """Start serve, wait for /-/health on ``port``, stop it (SIGTERM); return its output."""

    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/health", timeout=1) as r:
            status: str = json.load(r)["status"]
            assert status == "ok", status
            return True

    with tempfile.TemporaryDirectory(prefix="cb-serve-") as tmp:
        server = ManagedProcess(
            server_command("serve", *args),
            name="serve",
            log_path=Path(tmp) / "serve.log",
            ready=healthy,
            env=_env(**env),
            stop_timeout=20,
        )
        try:
            server.start()
        finally:
            server.stop()
        return server.log()


def test_serve_refuses_uninitialised_dir_without_password(tmp_path: Path) -> None:
    """Without CHEESEBOARD_ROOT_PASSWORD, serve on an empty dir exits 2 and says what to do."""
    result = _run("serve", "--datadir", str(tmp_path / "data"), "--port", str(free_port()))
    assert result.returncode == 2
    assert "not initialised" in result.stderr and "CHEESEBOARD_ROOT_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_serve_initialises_with_password_from_environment(tmp_path: Path) -> None:
    """With CHEESEBOARD_ROOT_PASSWORD set, serve initialises the directory, then serves."""
    port = free_port()
    datadir = tmp_path / "data"
    _serve_until_ready(
        ["--datadir", str(datadir), "--port", str(port)], {"CHEESEBOARD_ROOT_PASSWORD": "pw"}, port
    )
    assert (datadir / ".cheeseboard").is_file()
    assert (datadir / "secret").stat().st_mode & 0o777 == 0o600


def test_access_log_has_one_line_per_request(tmp_path: Path) -> None:
    """Every request gets one logfmt line, flushed by the time the server has stopped."""
    port = free_port()
    output = _serve_until_ready(
        ["--datadir", str(tmp_path / "data"), "--port", str(port)],
        {"CHEESEBOARD_ROOT_PASSWORD": "pw"},
        port,
    )
    lines = [line for line in output.splitlines() if 'path="/-/health"' in line]
    assert lines, output
    assert all("method=GET" in line and " ms=" in line for line in lines)
    assert any("status=200" in line for line in lines)
    quiet = _serve_until_ready(
        ["--datadir", str(tmp_path / "data"), "--port", str(port), "--no-access-log"], {}, port
    )
    assert 'path="/-/health"' not in quiet


def test_settings_precedence_cli_env_file(tmp_path: Path) -> None:
    """The port comes from the CLI over the environment over the YAML file."""
    datadir = tmp_path / "data"
    assert _run("init", "--datadir", str(datadir), "--root-password", "pw").returncode == 0
    file_port, env_port, cli_port = free_port(), free_port(), free_port()
    config = tmp_path / "server.yaml"
    config.write_text(f"cheeseboard-server:\n  port: {file_port}\n  mirror_cache_expiry: 60\n")
    base = ["--datadir", str(datadir), "--config", str(config)]
    output = _serve_until_ready(base, {}, file_port)
    assert f"setting port from config file {config}" in output
    _serve_until_ready(base, {"CHEESEBOARD_PORT": str(env_port)}, env_port)
    _serve_until_ready(
        [*base, "--port", str(cli_port)], {"CHEESEBOARD_PORT": str(env_port)}, cli_port
    )


@pytest.mark.parametrize(
    ("config_text", "env", "message"),
    [
        ("port: [1, 2]\n", {}, "--port from config file"),
        ("colour: blue\n", {}, "unknown option 'colour'"),
        ("port: 1\n  bad: [\n", {}, "not valid YAML"),
        ("", {"CHEESEBOARD_WORKERS": "zero"}, "--workers from environment CHEESEBOARD_WORKERS"),
        ("", {"CHEESEBOARD_OFFLINE": "maybe"}, "--offline from environment"),
        ("blob-url: http://bucket/\n", {}, "--blob-url from config file"),
        (
            "",
            {"CHEESEBOARD_BLOB_URL": "s3:///prefix?region=r"},  # no bucket
            "--blob-url from environment CHEESEBOARD_BLOB_URL",
        ),
    ],
)
def test_bad_settings_give_one_clear_line(
    tmp_path: Path, config_text: str, env: dict[str, str], message: str
) -> None:
    """Each bad value names the option and where it came from, without a traceback."""
    config = tmp_path / "bad.yaml"
    config.write_text(config_text)
    result = _run("serve", "--datadir", str(tmp_path), "--config", str(config), **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_init_refuses_non_empty_directory_and_empty_password(tmp_path: Path) -> None:
    """init never takes over a directory with other files, and wants a root password."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep me")
    result = _run("init", "--datadir", str(tmp_path / "data"), "--root-password", "pw")
    assert result.returncode == 2 and "not an empty directory" in result.stderr
    assert (tmp_path / "data" / "precious.txt").read_text() == "keep me"
    result = _run("init", "--datadir", str(tmp_path / "other"))
    assert result.returncode == 2 and "--root-password" in result.stderr
    assert not (tmp_path / "other").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]  # no staging directory left behind


def test_init_where_the_directory_cannot_be_made_says_why_in_one_line(tmp_path: Path) -> None:
    """A parent that is a file (as a parent without write permission) gives one line naming
    the directory and the reason, no traceback, and leaves nothing behind."""
    (tmp_path / "file").write_text("in the way")
    datadir = tmp_path / "file" / "data"
    result = _run("init", "--datadir", str(datadir), "--root-password", "pw")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot create {datadir}" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_init_twice_is_refused(tmp_path: Path) -> None:
    """A second init of the same directory fails and leaves the first intact."""
    datadir = tmp_path / "data"
    assert _run("init", "--datadir", str(datadir), "--root-password", "pw").returncode == 0
    before = (datadir / "secret").read_text()
    result = _run("init", "--datadir", str(datadir), "--root-password", "other")
    assert result.returncode == 2 and "already initialised" in result.stderr
    assert (datadir / "secret").read_text() == before


def test_older_server_on_a_newer_schema_refuses_in_one_line(tmp_path: Path) -> None:
    """A node left on an older version after another migrated the database says so, no
    traceback."""
    import sqlite3

    datadir = tmp_path / "data"
    assert _run("init", "--datadir", str(datadir), "--root-password", "pw").returncode == 0
    with sqlite3.connect(datadir / "cheeseboard.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfacecafe'")
    result = _run("serve", "--datadir", str(datadir), "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert "migrated by a newer cheeseboard" in result.stderr
    assert "Traceback" not in result.stderr


def test_repeated_stop_signals_still_stop_the_server(tmp_path: Path) -> None:
    """A burst of SIGTERM/SIGINT (make forwarding, double Ctrl-C) stops the server promptly."""
    datadir = tmp_path / "data"
    assert _run("init", "--datadir", str(datadir), "--root-password", "pw").returncode == 0
    log_path = tmp_path / "server.log"
    for burst in ([signal.SIGTERM] * 6, [signal.SIGINT, signal.SIGINT, signal.SIGTERM]):
        port = free_port()
        server = ManagedProcess(
            server_command("serve", "--datadir", str(datadir), "--port", str(port)),
            name="serve",
            log_path=log_path,
            ready=http_probe(f"http://127.0.0.1:{port}/-/health"),
            # On a hang, SIGABRT makes faulthandler print every thread's stack to the log.
            env={**_env(), "PYTHONFAULTHANDLER": "1"},
        )
        server.start()
        process = server.process
        assert process is not None
        try:
            for signum in burst:
                process.send_signal(signum)
                time.sleep(0.001)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGABRT)
                process.wait(timeout=10)
                stacks = log_path.read_text(errors="replace")[-20_000:]
                pytest.fail(f"server still running 15 s after {burst}; its stacks:\n{stacks}")
        finally:
            server.kill()
