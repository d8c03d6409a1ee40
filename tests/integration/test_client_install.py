"""Installing the ``cheeseboard`` client as the README says (issue 23): from ``make dist``'s
wheel, and from a running server's ``/+client/`` with the dependencies from its own mirror.

Offline: the client's real dependencies (click, rich, packaging, build and theirs) are repacked
from this interpreter's installed copies (tests/support/repack.py) and offered by a local
upstream or a find-links directory; each install goes into a fresh venv with real pip.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import cheeseboard
from tests.support.packages import Dist, installer_env
from tests.support.repack import repack, requirement_closure
from tests.support.server import ServerFactory
from tests.support.upstream import UpstreamServer

REPO = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def dependencies(tmp_path_factory: pytest.TempPathFactory) -> list[Dist]:
    """Wheels in one directory: the client's dependencies (the package's requirements without
    extras), transitively, as installed here."""
    dest = tmp_path_factory.mktemp("client-deps")
    requires = metadata.distribution("cheeseboard").requires or []
    return [repack(name, dest) for name in requirement_closure(requires)]


def _fresh_venv(path: Path) -> Path:
    """A venv without pip (pip runs from outside with ``--python``); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _pip_install(python: Path, *args: str) -> None:
    result = subprocess.run(
        [*PIP, "--python", str(python), "install", *args],
        env=installer_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _check_client(venv: Path) -> None:
    """The venv's ``cheeseboard`` command runs from the venv's own copy, without the server's
    dependencies."""
    version = subprocess.run(
        [str(venv / "bin" / "cheeseboard"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr
    assert cheeseboard.__version__ in version.stdout
    helped = subprocess.run(
        [str(venv / "bin" / "cheeseboard"), "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "upload" in helped.stdout, helped.stderr
    probe = (
        "import importlib.util, cheeseboard; print(cheeseboard.__file__); "
        "print(importlib.util.find_spec('granian') is None)"
    )
    where, no_server = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert Path(where).is_relative_to(venv)
    assert no_server == "True"


def test_make_dist_builds_sdist_and_wheel_and_the_wheel_installs_the_client(
    tmp_path: Path, dependencies: list[Dist]
) -> None:
    """``make dist`` writes one sdist and one wheel; the wheel installs the client into a fresh
    venv with its dependencies and nothing of the server's."""
    out = tmp_path / "dist"
    # -o: use .venv as it is (make test has just made it); never reinstall it from a test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # not make test's
    subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "dist", f"DIST={out}"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    version = cheeseboard.__version__
    assert sorted(p.name for p in out.iterdir()) == [
        f"cheeseboard-{version}-py3-none-any.whl",
        f"cheeseboard-{version}.tar.gz",
    ]
    with tarfile.open(out / f"cheeseboard-{version}.tar.gz") as sdist:
        names = set(sdist.getnames())
    assert {f"cheeseboard-{version}/pyproject.toml", f"cheeseboard-{version}/README.md"} <= names
    assert f"cheeseboard-{version}/src/cheeseboard/client/cli.py" in names
    wheel = out / f"cheeseboard-{version}-py3-none-any.whl"
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    _pip_install(python, "--no-index", "--find-links", str(dependencies[0].path.parent), str(wheel))
    _check_client(venv)


def test_server_serves_its_client_wheel_installable_through_its_mirror(
    tmp_path: Path, server_factory: ServerFactory, dependencies: list[Dist]
) -> None:
    """``/+client/`` lists the wheel with the sha256 of the bytes ``/+client/<wheel>`` serves;
    the README's command installs it with its dependencies from the server's root/pypi."""
    with UpstreamServer(mode="html") as upstream:
        for dist in dependencies:
            upstream.add(dist)
        server = server_factory.start(mirror_url=upstream.simple_url)
        with urllib.request.urlopen(server.url + "+client/", timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/html")
            page = response.read().decode()
        found = re.search(r'href="([^"#]+\.whl)#sha256=([0-9a-f]{64})"', page)
        assert found is not None, page
        filename, listed = found.groups()
        assert filename == f"cheeseboard-{cheeseboard.__version__}-py3-none-any.whl"
        wheel_url = f"{server.url}+client/{filename}"
        with urllib.request.urlopen(wheel_url, timeout=30) as response:
            served = response.read()
            etag = response.headers["ETag"]
        assert hashlib.sha256(served).hexdigest() == listed
        assert etag == f'"{listed}"'
        with zipfile.ZipFile(io.BytesIO(served)) as archive:
            assert archive.testzip() is None
        # The command the page shows is the one the README documents, and it works.
        command = f"pip install --index-url {server.index_url} {wheel_url}"
        assert command in page
        venv = tmp_path / "venv"
        python = _fresh_venv(venv)
        _pip_install(python, "--index-url", server.index_url, wheel_url)
        _check_client(venv)
        # Every dependency came through the mirror (the upstream saw pip's requests for them).
        asked = {r.path.rsplit("/", 1)[-1] for r in upstream.requests}
        assert {dist.filename for dist in dependencies} <= asked
        # Same bytes again (built once per process, reproducible); other names are 404s.
        with urllib.request.urlopen(wheel_url, timeout=30) as response:
            assert response.read() == served
        for bad in ("cheeseboard-0.0.0-py3-none-any.whl", "..%2F..%2Fsecret", "x" * 300):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{server.url}+client/{bad}", timeout=30)
            refused.value.close()  # it holds the connection
            assert refused.value.code == 404
        request = urllib.request.Request(wheel_url, headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as cached:
            urllib.request.urlopen(request, timeout=30)
        cached.value.close()
        assert cached.value.code == 304
