"""``install``: run pip (or uv) with the current index as its only index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    try:
        return subprocess.run(command, check=False).returncode
    except OSError as error:
        raise ClientError(f"cannot run {command[0]}: {error}") from error
