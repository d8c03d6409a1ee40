"""Against the real upstream (needs the internet; run with CHEESEBOARD_LIVE=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.clients import installed, pip_install
from tests.support.server import ServerFactory


@pytest.mark.live
def test_install_six_from_real_pypi(server_factory: ServerFactory, tmp_path: Path) -> None:
    """pip installs six through root/pypi mirroring https://pypi.org/simple/."""
    server = server_factory.start("https://pypi.org/simple/", "--request-timeout", "30")
    result = pip_install(server.index_url, tmp_path / "t", "six")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "t") == {"six"}
