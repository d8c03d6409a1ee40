"""Real installers (pip and uv from the test virtualenv) run against a server under test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.packages import installer_env

UV = str(Path(sys.executable).with_name("uv"))


def pip_install(
    index_url: str,
    target: Path,
    *requirements: str,
    extra: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``pip install --target`` from ``index_url`` only; no cache, no global config (``env``:
    the environment, default ``installer_env()``)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--isolated",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "0",
        "--timeout",
        "20",
        "--target",
        str(target),
        "--index-url",
        index_url,
        *extra,
        *requirements,
    ]
    environment = dict(env) if env is not None else installer_env()
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


def uv_install(
    index_url: str, target: Path, *requirements: str, cache_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``uv pip install --target`` from ``index_url`` only, with a fresh (or given) cache."""
    cache = ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache"]
    command = [
        UV,
        "pip",
        "install",
        *cache,
        "--python",
        sys.executable,
        "--target",
        str(target),
        "--index-url",
        index_url,
        *requirements,
    ]
    return subprocess.run(command, env=installer_env(), capture_output=True, text=True, timeout=300)


def installed(target: Path) -> set[str]:
    """Names of the distributions installed into ``target`` (from their dist-info dirs)."""
    return {path.name.split("-")[0].lower() for path in target.glob("*.dist-info")}
