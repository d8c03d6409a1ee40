"""``cheeseboard-server passwd`` (issue 23): the real command on real data directories, with a
running server that must take the new password, and drop the old one and its tokens, at once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cheeseboard.server.cli import main
from cheeseboard.services.users import verify_password
from cheeseboard.store.db import engine_for
from cheeseboard.store.schema import users
from tests.support.api import call
from tests.support.server import ROOT_PASSWORD, ServerFactory, server_command

ROOT = ("root", ROOT_PASSWORD)
NO_UPSTREAM = "http://127.0.0.1:9/simple/"  # never asked: these tests read no mirror


def _passwd(
    datadir: Path, *args: str, stdin: str = "", database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
    db_args = ["--database-url", database_url] if database_url else []
    return subprocess.run(
        server_command("passwd", "--datadir", str(datadir), *db_args, *args),
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _pwhash(db_url: str, user: str) -> str:
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            value = conn.scalar(select(users.c.pwhash).where(users.c.name == user))
    finally:
        engine.dispose()
    assert isinstance(value, str)
    return value


def _sqlite(datadir: Path) -> str:
    return f"sqlite:///{datadir / 'cheeseboard.sqlite'}"


def _audit(datadir: Path, database_url: str | None = None) -> list[dict[str, object]]:
    db_args = ["--database-url", database_url] if database_url else []
    result = subprocess.run(
        server_command(
            "audit", "--datadir", str(datadir), *db_args, "--action", "password-change", "--json"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def _login(url: str, user: str, password: str) -> int:
    return call(url, "POST", "/+login", {"user": user, "password": password})[0]


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _running_server_takes_new_password(
    factory: ServerFactory, database_url: str | None = None
) -> None:
    server = factory.start(NO_UPSTREAM)
    assert call(server.url, "PUT", "/alice", {"password": "old-pw"}, auth=ROOT)[0] == 201
    status, body = call(server.url, "POST", "/+login", {"user": "alice", "password": "old-pw"})
    assert status == 200, body
    token = body["result"]["password"]
    assert call(server.url, "PATCH", "/alice", {"title": "A"}, auth=("alice", token))[0] == 200

    result = _passwd(
        server.datadir, "--password-stdin", "alice", stdin="new-pw\n", database_url=database_url
    )
    assert result.returncode == 0, result.stderr
    assert "password of alice set" in result.stdout

    # No restart: the server reloads its users from the change the command logged.
    assert _eventually(lambda: _login(server.url, "alice", "new-pw") == 200)
    assert _login(server.url, "alice", "old-pw") == 401
    status, body = call(server.url, "PATCH", "/alice", {"title": "B"}, auth=("alice", token))
    assert status == 401, body
    assert call(server.url, "PATCH", "/alice", {"title": "C"}, auth=("alice", "new-pw"))[0] == 200

    entries = _audit(server.datadir, database_url)
    assert [(e["actor"], e["target"]) for e in entries] == [("server-cli", "alice")]


def test_running_server_takes_the_new_password(server_factory: ServerFactory) -> None:
    """Old password and login tokens stop working, the new password works, no restart."""
    _running_server_takes_new_password(server_factory)


def test_running_server_on_postgres_takes_the_new_password(
    pg_server_factory: ServerFactory, postgres_url: str
) -> None:
    """The same with the metadata in PostgreSQL (``--database-url``)."""
    _running_server_takes_new_password(pg_server_factory, postgres_url)


@pytest.fixture
def datadir(tmp_path: Path) -> Path:
    factory = ServerFactory(tmp_path)
    return factory.init(NO_UPSTREAM)


def test_password_from_a_file_first_line(datadir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("from-file\nignored\n")
    result = _passwd(datadir, "--password-file", str(secret), "root")
    assert result.returncode == 0, result.stderr
    assert verify_password(_pwhash(_sqlite(datadir), "root"), "from-file")


def test_prompt_asks_twice_until_both_match(datadir: Path) -> None:
    """The prompt hides the input and asks again when the two entries differ."""
    result = CliRunner().invoke(
        main, ["passwd", "--datadir", str(datadir), "root"], input="one\ntwo\nthree\nthree\n"
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert "three" not in result.output  # not echoed
    assert verify_password(_pwhash(_sqlite(datadir), "root"), "three")


def test_unknown_user_is_refused_in_one_line(datadir: Path) -> None:
    before = _pwhash(_sqlite(datadir), "root")
    result = _passwd(datadir, "--password-stdin", "nobody", stdin="pw\n")
    assert result.returncode == 2
    assert "no user 'nobody'" in result.stderr
    assert "Traceback" not in result.stderr
    assert _pwhash(_sqlite(datadir), "root") == before
    assert _audit(datadir) == []


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--password-stdin"], "\n", "must not be empty"),
        (["--password-stdin", "--password-file", "/dev/null"], "pw\n", "one of"),
        (["--password-file", "/nonexistent/pw"], "", "cannot read --password-file"),
    ],
)
def test_refusals_change_nothing(datadir: Path, args: list[str], stdin: str, message: str) -> None:
    before = _pwhash(_sqlite(datadir), "root")
    result = _passwd(datadir, *args, "root", stdin=stdin)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert _pwhash(_sqlite(datadir), "root") == before


def test_not_a_data_directory(tmp_path: Path) -> None:
    result = _passwd(tmp_path, "--password-stdin", "root", stdin="pw\n")
    assert result.returncode == 2
    assert "not a cheeseboard data directory" in result.stderr
