"""A wheel of the running ``cheeseboard`` package, so that a server can hand out its own client
(``/+client/``, issue 23) to machines that cannot reach PyPI.

It is the package exactly as the process imported it (every file under its directory but
bytecode) plus a dist-info made from the installed distribution's METADATA and entry points:
the same wheel ``make dist`` builds, installed with no extra it pulls in the client's
dependencies only (click, rich, packaging, build). The bytes depend on the files alone (sorted
names, fixed timestamps and modes), so every worker and every restart of the same code serve
the same sha256.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cheeseboard

DISTRIBUTION = "cheeseboard"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_MAX_PACKAGE_BYTES = 64 * 1024 * 1024  # a package this large is not ours: refuse, do not serve
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


class ClientWheelError(Exception):
    """Raised when no wheel can be made of the running package; the message says why."""


@dataclass(frozen=True)
class ClientWheel:
    """A built wheel: its file name, bytes and their sha256 (hex)."""

    filename: str
    data: bytes
    sha256: str


def build_client_wheel() -> ClientWheel:
    """The wheel of the ``cheeseboard`` package this process runs."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ClientWheelError(
            "the server runs from a source tree without package metadata; "
            "install it (pip install -e .) to serve the client wheel"
        ) from None
    meta = dist.read_text("METADATA")
    if meta is None:
        raise ClientWheelError("the installed cheeseboard has no METADATA")
    entry_points = dist.read_text("entry_points.txt") or ""
    package_dir = Path(cheeseboard.__file__).parent
    return build_wheel(package_dir, dist.version, meta, entry_points)


def build_wheel(package_dir: Path, version: str, meta: str, entry_points: str) -> ClientWheel:
    """A pure-Python wheel of the package in ``package_dir`` with the given dist-info texts."""
    if not re.fullmatch(r"[0-9A-Za-z.+!]+", version):
        raise ClientWheelError(f"version {version!r} cannot name a wheel")
    dist_info = f"{DISTRIBUTION}-{version}.dist-info"
    files = [(f"{package_dir.name}/{name}", data) for name, data in _package_files(package_dir)]
    files.append((f"{dist_info}/METADATA", meta.encode()))
    files.append((f"{dist_info}/WHEEL", _WHEEL.encode()))
    if entry_points:
        files.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{dist_info}/RECORD", f"{record}{dist_info}/RECORD,,\n".encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            archive.writestr(info, data, compresslevel=9)
    data = buffer.getvalue()
    filename = f"{DISTRIBUTION}-{version}-py3-none-any.whl"
    return ClientWheel(filename, data, hashlib.sha256(data).hexdigest())


_WHEEL = "Wheel-Version: 1.0\nGenerator: cheeseboard\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _package_files(package_dir: Path) -> list[tuple[str, bytes]]:
    """Every file of the package (relative POSIX name, bytes), sorted; bytecode left out."""
    if not (package_dir / "__init__.py").is_file():
        raise ClientWheelError(f"{package_dir} is not a package")
    found: list[tuple[str, bytes]] = []
    total = 0
    for path in sorted(package_dir.rglob("*")):
        relative = path.relative_to(package_dir)
        if _SKIPPED_DIRS & set(relative.parts) or path.suffix in _SKIPPED_SUFFIXES:
            continue
        if path.is_symlink() or not path.is_file():
            continue  # directories, and nothing outside the package through a link
        data = path.read_bytes()
        total += len(data)
        if total > _MAX_PACKAGE_BYTES:
            raise ClientWheelError(f"{package_dir} holds over {_MAX_PACKAGE_BYTES} bytes")
        found.append((relative.as_posix(), data))
    return found


def _record_hash(data: bytes) -> str:
    """RECORD's hash form: ``sha256=`` and the urlsafe base64 digest without padding."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"
