"""``init`` takes ``serve``'s storage options (issue 23), and a PostgreSQL URL without the driver
installed names the extra to install: the real CLI, in a subprocess where psycopg is not
importable (``sys.modules["psycopg"] = None`` makes ``import psycopg`` raise ImportError)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import server_command

NO_DRIVER = (
    "import sys; sys.modules['psycopg'] = None; sys.argv[0] = 'cheeseboard-server'; "
    "from cheeseboard.server.start import main; main()"
)
PG_URL = "postgresql://cheeseboard@127.0.0.1:9/cheeseboard"  # never reached


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}


def _run_without_driver(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_DRIVER, *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["init", "--root-password", "pw", "--database-url", PG_URL],
        ["serve", "--port", "0", "--database-url", PG_URL],
    ],
    ids=["init", "serve"],
)
def test_postgres_url_without_driver_names_the_extra(tmp_path: Path, command: list[str]) -> None:
    datadir = tmp_path / "data"
    name, *rest = command
    result = _run_without_driver(name, "--datadir", str(datadir), *rest)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--database-url" in result.stderr
    assert "pip install 'cheeseboard[" in result.stderr and "postgres]'" in result.stderr
    assert not datadir.exists()


def test_passwd_with_postgres_url_without_driver(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    init = subprocess.run(
        server_command("init", "--datadir", str(datadir), "--root-password", "pw"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    result = _run_without_driver(
        "passwd", "--datadir", str(datadir), "--database-url", PG_URL, "root"
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "postgres]'" in result.stderr


def test_init_checks_blob_url_as_serve_does(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    result = subprocess.run(
        server_command(
            "init", "--datadir", str(datadir), "--root-password", "pw", "--blob-url", "http://x/"
        ),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--blob-url" in result.stderr and "s3://" in result.stderr
    assert "Traceback" not in result.stderr
    assert not datadir.exists()


def test_init_takes_blob_url_from_the_environment_like_serve(tmp_path: Path) -> None:
    """CHEESEBOARD_BLOB_URL set for serve does not break init (it is checked, then kept out of
    the data directory: serve is given it again)."""
    datadir = tmp_path / "data"
    env = _env() | {
        "CHEESEBOARD_BLOB_URL": "s3://bucket/prefix?endpoint=http://127.0.0.1:9&region=r",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "CHEESEBOARD_ROOT_PASSWORD": "pw",
    }
    result = subprocess.run(
        server_command("init", "--datadir", str(datadir), "--no-root-pypi"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (datadir / ".cheeseboard").is_file()
