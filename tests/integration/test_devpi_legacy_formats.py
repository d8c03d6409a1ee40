"""Legacy formats devpi accepts and cheeseboard refuses (issue 22): ``bdist_egg`` (``.egg``)
and ``bdist_dumb`` (``name-1.0.linux-x86_64.tar.gz``), uploaded with the real devpi client.
twine 6 refuses both itself: eggs are unknown to it, and a bdist_dumb tarball has more than one
top-level member, which no sdist has. Each refusal names the format, instead of the version
mismatch a bdist_dumb archive (named like an sdist of version ``1.0.linux-x86_64``) used to
get; nothing is stored.
"""

from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import basic, call
from tests.support.devpi import DevpiClient
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-pw-1")
_PKG_INFO = b"Metadata-Version: 2.1\nName: oldfmt\nVersion: 1.0\nSummary: legacy\n"


def _egg(dest: Path) -> Path:
    """What ``setup.py bdist_egg`` makes: a zip with the package and EGG-INFO/PKG-INFO."""
    path = dest / "oldfmt-1.0-py3.11.egg"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("oldfmt/__init__.py", "")
        archive.writestr("EGG-INFO/PKG-INFO", _PKG_INFO)
    return path


def _dumb(dest: Path) -> Path:
    """What ``setup.py bdist_dumb`` makes: the installed tree, as a tarball."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "oldfmt-1.0.linux-x86_64.tar.gz"
    site = "./usr/lib/python3.11/site-packages"
    members = {
        f"{site}/oldfmt/__init__.py": b"",
        f"{site}/oldfmt-1.0-py3.11.egg-info/PKG-INFO": _PKG_INFO,
        # pkginfo and twine read an sdist's PKG-INFO one level down: give them one to read, so
        # that the clients send the upload and the server decides.
        "oldfmt-1.0.linux-x86_64/PKG-INFO": _PKG_INFO,
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("legacy"))
    try:
        started = factory.start("http://127.0.0.1:9/simple/")
        status, body = call(started.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)
        assert status == 201, body
        status, body = call(started.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)
        assert status == 200, body
        yield started
    finally:
        factory.stop_all()


def _form_upload(server: CheeseboardServer, path: Path, filetype: str) -> tuple[int, str]:
    """The upload form devpi-client sends for ``path`` (its filetype for it, Basic auth)."""
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "oldfmt",
        "version": "1.0",
        "filetype": filetype,
        "pyversion": "source" if filetype == "sdist" else "3.11",
    }
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        server.url + "alice/dev/",
        data=body,
        method="POST",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": basic(*ALICE),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def _nothing_stored(server: CheeseboardServer) -> None:
    status, body = call(server.url, "GET", "/alice/dev/oldfmt")
    assert status == 404, body


@pytest.mark.parametrize(("build", "fmt"), [(_egg, "bdist_egg"), (_dumb, "bdist_dumb")])
def test_devpi_upload_is_refused_naming_the_format(
    server: CheeseboardServer, tmp_path: Path, build: object, fmt: str
) -> None:
    assert callable(build)
    dist = build(tmp_path)
    devpi = DevpiClient(tmp_path / "client", server_log=server.log)
    devpi.use(server.url + "alice/dev")
    devpi.login(*ALICE)
    out = devpi.fails("upload", dist)
    assert f"400 FAIL file_upload of {dist.name}" in out, out
    _nothing_stored(server)
    # devpi-client prints the reason phrase only; the message is the body's (the same form).
    status, message = _form_upload(server, dist, "sdist" if fmt == "bdist_dumb" else fmt)
    assert status == 400 and fmt in message and "legacy format" in message, message
    assert "has version" not in message, message
