"""A small client for the management API and uploads in tests (stdlib only)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from tests.support.packages import Dist, installer_env


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def status_of(request: urllib.request.Request | str) -> int:
    """The HTTP status a request gets (an error status is returned, not raised); the body is
    read and dropped."""
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def call(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, Any]:
    """One JSON request; returns (status, parsed body or text)."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    request = urllib.request.Request(
        base_url.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


def twine_upload(
    repository_url: str,
    user: str,
    password: str,
    *files: Path,
    skip_existing: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Real ``twine upload`` to ``repository_url``."""
    command = [
        sys.executable,
        "-m",
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        repository_url,
        "-u",
        user,
        "-p",
        password,
        *(["--skip-existing"] if skip_existing else []),
        *map(str, files),
    ]
    env = installer_env({"TWINE_NON_INTERACTIVE": "1", "HOME": str(files[0].parent)})
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def doc_zip(files: dict[str, str | bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A documentation zip with ``files`` (name -> content)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload_docs(
    base_url: str,
    index: str,
    project: str,
    version: str,
    archive: bytes,
    auth: tuple[str, str],
) -> tuple[int, str]:
    """devpi's ``:action=doc_upload`` of ``archive`` for ``project`` ``version`` on ``index``."""
    boundary = "cbdocsboundary"
    body = b""
    for key, value in ((":action", "doc_upload"), ("name", project), ("version", version)):
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        ).encode()
    body += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
            f'filename="{project}-{version}.doc.zip"\r\nContent-Type: application/zip\r\n\r\n'
        ).encode()
        + archive
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/{index}/",
        data=body,
        method="POST",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": basic(*auth),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


UPLOAD_BOUNDARY = "cbuploadboundary"


def upload_body(dist: Dist, **extra: str) -> tuple[bytes, str]:
    """The legacy-upload multipart body for ``dist`` (the fields twine sends, ``extra`` fields,
    then the file) and its Content-Type."""
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": dist.name,
        "version": dist.version,
        "filetype": "bdist_wheel" if dist.kind == "wheel" else "sdist",
        "pyversion": "py3" if dist.kind == "wheel" else "source",
        "sha256_digest": dist.sha256,
        **extra,
    }
    boundary = UPLOAD_BOUNDARY
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{dist.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += dist.path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload_dist(
    base_url: str,
    index: str,
    dist: Dist,
    auth: tuple[str, str],
    timeout: float = 60,
) -> tuple[int, str]:
    """One legacy-API upload of ``dist`` to ``index`` (``user/name``), as twine sends it."""
    body, content_type = upload_body(dist)
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/{index}/",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": basic(*auth)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def reset_accounts(base_url: str, root_auth: tuple[str, str]) -> None:
    """Back to a new server's users and indexes, for a server shared by a module's tests.

    Every index but root/pypi is deleted (``?force``: one may be another's base; a non-volatile
    one is made volatile first), then every user but root, with what they own. Mirror caches of
    root/pypi are kept.
    """
    status, body = call(base_url, "GET", "/", auth=root_auth)
    assert status == 200, body
    for user, config in body["result"].items():
        for index in config.get("indexes", {}):
            if (user, index) != ("root", "pypi"):
                path = f"/{user}/{index}"
                status, answer = call(base_url, "DELETE", f"{path}?force", auth=root_auth)
                if status == 403:  # non-volatile: made volatile first, as an admin would
                    patched = call(base_url, "PATCH", path, ["volatile=True"], auth=root_auth)
                    assert patched[0] == 200, (path, patched)
                    status, answer = call(base_url, "DELETE", f"{path}?force", auth=root_auth)
                assert status in (200, 201, 404), (path, status, answer)
    for user in body["result"]:
        if user != "root":
            status, answer = call(base_url, "DELETE", f"/{user}", auth=root_auth)
            assert status in (200, 404), (user, status, answer)
