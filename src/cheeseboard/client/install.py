"""``install``: run pip (or uv) with the current index as its only index.

A signed-in user's credentials reach the installer through a netrc file in a private temporary
directory (``NETRC``, which pip and uv both read), never through its command line: the command
line is printed, shows in ``ps`` and in the installer's own error messages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError


def simple_url(config: ClientConfig) -> str:
    """The PEP 503 URL of the current index."""
    return f"{config.require_url()}{config.require_index()}/+simple/"


def target_python(python: str | None) -> str:
    """``--python``, else the active virtualenv's interpreter, else the one running us."""
    if python:
        return python
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and (Path(venv) / "bin" / "python").exists():
        return str(Path(venv) / "bin" / "python")
    return sys.executable


def install_command(
    config: ClientConfig, args: list[str], use_uv: bool, python: str | None, list_only: bool
) -> list[str]:
    """The pip or uv command line ``install`` runs."""
    interpreter = target_python(python)
    if use_uv:
        beside_us = Path(sys.executable).with_name("uv")
        uv = shutil.which("uv") or (str(beside_us) if beside_us.exists() else None)
        if uv is None:
            raise ClientError("uv is not on PATH", "install uv, or drop --uv to use pip")
        base = [uv, "pip"]
        tail = ["--python", interpreter]
    else:
        base = [interpreter, "-m", "pip"]
        tail = []
    if list_only:
        return [*base, "list", *tail]
    if not args:
        raise ClientError("nothing to install", "cheeseboard install PACKAGE [...]")
    return [*base, "install", "--index-url", simple_url(config), *tail, *args]


def netrc_safe(*tokens: str) -> bool:
    """Whether every token can stand in a netrc file as is (no whitespace, quote or comment
    sign: pip's and uv's netrc parsers differ on quoting, so none is relied on)."""
    return all(
        token and not any(c.isspace() or c in "\"'#\\" or not c.isprintable() for c in token)
        for token in tokens
    )


@contextmanager
def credentials_env(config: ClientConfig, out: Output) -> Iterator[dict[str, str]]:
    """The installer's environment: ours, plus ``NETRC`` naming a temporary netrc (0600, in a
    0700 directory, deleted afterwards) with the signed-in user's credentials for the server's
    host. Without a user (or a secret) the installer runs as before, anonymously."""
    env = dict(os.environ)
    host = urlsplit(config.require_url()).hostname
    credentials = None
    if config.user and host:
        try:
            credentials = config.credentials()
        except ClientError as error:
            out.info(f"installing anonymously: {error}")
    if credentials is None or host is None:
        yield env
        return
    user, secret = credentials
    if not netrc_safe(user, secret):
        out.info(
            f"installing anonymously: the credentials of {user} contain characters a netrc "
            "file cannot carry (whitespace, quotes, #); sign in with a token instead"
        )
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="cheeseboard-install-") as directory:
        path = Path(directory) / "netrc"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"machine {host}\nlogin {user}\npassword {secret}\n")
        env["NETRC"] = str(path)
        out.info(f"(as {user}: credentials passed in a temporary netrc file)")
        yield env


def install(
    config: ClientConfig,
    out: Output,
    args: list[str],
    use_uv: bool = False,
    python: str | None = None,
    list_only: bool = False,
) -> int:
    """Run the installer, streaming its output; returns its exit code."""
    command = install_command(config, args, use_uv, python, list_only)
    out.info("$ " + " ".join(command))
    with credentials_env(config, out) as env:
        try:
            return subprocess.run(command, check=False, env=env).returncode
        except OSError as error:
            raise ClientError(f"cannot run {command[0]}: {error}") from error
