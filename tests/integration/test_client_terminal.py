"""The client on a real terminal: progress bars, password prompts, flat memory on big uploads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import call
from tests.support.client_cli import SCRIPT, Cli, clean_env
from tests.support.packages import build_wheel
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.terminal import run_on_pty
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
BIG = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("client-terminal"))
    with UpstreamServer(mode="html") as upstream:
        try:
            started = factory.start(upstream.simple_url)
            for path, body in (
                ("/tty", {"password": "tty-pw"}),
                ("/tty/stable", {"bases": "root/pypi"}),
            ):
                status, reply = call(started.url, "PUT", path, body, auth=ROOT)
                assert status in (200, 201), reply
            yield started
        finally:
            factory.stop_all()


def _env(tmp_path: Path, server: CheeseboardServer, **extra: str) -> dict[str, str]:
    return clean_env(
        tmp_path / "client",
        {"CHEESEBOARD_URL": f"{server.url}tty/stable", "CHEESEBOARD_USER": "tty", **extra},
    )


def test_big_upload_shows_progress_and_keeps_memory_flat(
    server: CheeseboardServer, tmp_path: Path
) -> None:
    small = build_wheel(tmp_path / "small", "cbsmall", "1.0", payload_size=1024 * 1024)
    big = build_wheel(tmp_path / "big", "cbbig", "1.0", payload_size=BIG)
    assert big.path.stat().st_size > BIG
    env = _env(tmp_path, server, CHEESEBOARD_PASSWORD="tty-pw")

    baseline = run_on_pty([str(SCRIPT), "upload", str(small.path)], env)
    assert baseline.returncode == 0, baseline.text
    run = run_on_pty([str(SCRIPT), "upload", str(big.path)], env)
    assert run.returncode == 0, run.text
    assert "uploaded 1 file(s) to tty/stable" in run.text
    # rich's bar: the file name, bar glyphs and a transferred/total column in MB.
    assert "cbbig-1.0-py3-none-any.whl" in run.text
    assert "━" in run.raw
    assert "/52.4 MB" in run.text or "/52.5 MB" in run.text, run.text
    assert baseline.max_rss_kib > 0
    growth_mib = (run.max_rss_kib - baseline.max_rss_kib) / 1024
    assert growth_mib < 16, f"peak RSS grew by {growth_mib:.1f} MiB for a 50 MiB upload"

    status, body = call(server.url, "GET", "/tty/stable/cbbig/1.0")
    assert status == 200
    assert body["result"]["+links"][0]["hashes"]["sha256"] == big.sha256


def test_piped_upload_draws_no_progress_bar(server: CheeseboardServer, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist", "cbpiped", "1.0", payload_size=2_000_000)
    cli = Cli(tmp_path / "client")
    out = cli.ok(
        "upload", str(wheel.path), env=_env(tmp_path, server, CHEESEBOARD_PASSWORD="tty-pw")
    )
    assert "━" not in out
    assert "\x1b[" not in out
    assert "uploaded cbpiped-1.0-py3-none-any.whl" in out


def test_missing_password_is_prompted_for_on_a_terminal(
    server: CheeseboardServer, tmp_path: Path
) -> None:
    env = _env(tmp_path, server)
    run = run_on_pty([str(SCRIPT), "--json", "list"], env, answers=[("password for tty", "tty-pw")])
    assert run.returncode == 0, run.text
    assert "tty-pw" not in run.text  # hidden input is not echoed
    assert "[" in run.text.split("password for tty", 1)[1]

    # Reads need no login; a change does, and a wrong answer is a clear error.
    change = [str(SCRIPT), "index", "tty/stable", "title=Prompted"]
    wrong = run_on_pty(change, env, answers=[("password for tty", "nope")])
    assert wrong.returncode == 1
    assert "wrong password" in wrong.text
    right = run_on_pty(change, env, answers=[("password for tty", "tty-pw")])
    assert right.returncode == 0, right.text


def test_login_and_passwd_prompt_on_a_terminal(server: CheeseboardServer, tmp_path: Path) -> None:
    call(server.url, "PUT", "/prompted", {"password": "prompted-pw"}, auth=ROOT)
    env = clean_env(tmp_path / "client", {})
    Cli(tmp_path / "client").ok("use", server.url)
    run = run_on_pty(
        [str(SCRIPT), "login", "prompted"], env, answers=[("password for prompted", "prompted-pw")]
    )
    assert run.returncode == 0, run.text
    assert "logged in as prompted" in run.text
    run = run_on_pty(
        [str(SCRIPT), "passwd"],
        env,
        answers=[("new password for prompted", "second-pw"), ("Repeat", "second-pw")],
    )
    assert run.returncode == 0, run.text
    state = json.loads((tmp_path / "client" / "client.json").read_text())
    assert state["user"] == "prompted"
    assert call(server.url, "GET", "/prompted", auth=("prompted", "second-pw"))[0] == 200
