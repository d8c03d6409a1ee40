"""Build small, real, installable distributions on the fly, fully offline.

Integration tests need wheels and sdists that pip and uv will actually install, with
stable hashes so assertions can name them.  Everything here is stdlib-only and
deterministic: the same arguments always produce the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import random
import re
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "Dist",
    "build_sdist",
    "build_wheel",
    "dist_name",
    "installer_env",
    "normalize",
]

# 1980-01-01 is the earliest timestamp a zip file can hold; tar uses the epoch.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_TAR_MTIME = 315532800  # 1980-01-01T00:00:00Z, same instant as the zip entries


@dataclass(frozen=True)
class Dist:
    """A built distribution file plus the facts tests assert against."""

    path: Path
    filename: str
    name: str
    version: str
    kind: Literal["wheel", "sdist"]
    sha256: str
    size: int
    metadata: bytes
    requires_python: str | None


def normalize(name: str) -> str:
    """PEP 503 normalized project name (``My.Pkg_x`` -> ``my-pkg-x``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(name: str) -> str:
    """Name as it appears in wheel/sdist filenames and import paths (``my_pkg``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def installer_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return os.environ without pip/uv configuration, so installers only see our index.

    This machine's global pip config adds find-links and file:// indexes that would
    let pip succeed without ever touching the server under test.  Also pass
    ``--isolated --no-cache-dir --disable-pip-version-check`` to pip (``--isolated``
    ignores PIP_* env vars, so without the flag pip asks the index for ``pip``) and
    ``--no-cache`` to uv.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    if extra:
        env.update(extra)
    return env


def _metadata(
    name: str,
    version: str,
    summary: str,
    requires_python: str | None,
    requires_dist: Sequence[str],
    headers: Sequence[str] = (),
    description: str | None = None,
) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    lines.extend(headers)
    text = "\n".join(lines) + "\n"
    if description is not None:
        text += "\n" + description  # the body of the message is the long description
    return text.encode()


def _payload(name: str, version: str, size: int) -> bytes:
    """Seeded random bytes: incompressible (big files stay big) yet reproducible."""
    return random.Random(f"{name}=={version}").randbytes(size)


def _module_files(name: str, version: str, payload_size: int) -> dict[str, bytes]:
    mod = dist_name(name)
    files = {f"{mod}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    if payload_size > 0:
        files[f"{mod}/payload.bin"] = _payload(name, version, payload_size)
    return files


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _wheel_bytes(files: Mapping[str, bytes], dist_info: str) -> bytes:
    """Zip ``files`` plus a correct RECORD, deterministically (sorted, fixed times)."""
    record_path = f"{dist_info}/RECORD"
    record_lines = [f"{p},{_record_hash(d)},{len(d)}" for p, d in sorted(files.items())]
    record_lines.append(f"{record_path},,")
    entries = dict(files)
    entries[record_path] = ("\n".join(record_lines) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        # RECORD goes last, as the wheel spec recommends.
        for path in [*sorted(files), record_path]:
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            compress = zipfile.ZIP_STORED if path.endswith(".bin") else zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[path], compress_type=compress)
    return buf.getvalue()


def _write(dest: Path, filename: str, data: bytes) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / filename
    path.write_bytes(data)
    return path


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    summary: str = "A test package",
    python_tag: str = "py3",
    abi_tag: str = "none",
    platform_tag: str = "any",
    payload_size: int = 0,
    headers: Sequence[str] = (),
    description: str | None = None,
) -> Dist:
    """Write a pure-Python wheel into ``dest`` that pip and uv install.

    ``headers`` are extra metadata lines (``Keywords: …``, ``Classifier: …``,
    ``Description-Content-Type: text/markdown``); ``description`` is the README."""
    base = f"{dist_name(name)}-{version}"
    tag = f"{python_tag}-{abi_tag}-{platform_tag}"
    dist_info = f"{base}.dist-info"
    metadata = _metadata(
        name, version, summary, requires_python, requires_dist, headers, description
    )
    wheel_file = (
        f"Wheel-Version: 1.0\nGenerator: cheeseboard-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()
    files = _module_files(name, version, payload_size)
    files[f"{dist_info}/METADATA"] = metadata
    files[f"{dist_info}/WHEEL"] = wheel_file
    data = _wheel_bytes(files, dist_info)
    filename = f"{base}-{tag}.whl"
    return Dist(
        path=_write(dest, filename, data),
        filename=filename,
        name=name,
        version=version,
        kind="wheel",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        metadata=metadata,
        requires_python=requires_python,
    )


# The in-tree PEP 517 backend shipped in every sdist.  It copies PKG-INFO to METADATA
# and zips the package directory, so building needs nothing from any index.
_BACKEND = '''\
"""Minimal offline PEP 517 backend for cheeseboard test sdists (stdlib only)."""

import base64
import hashlib
import os
import re
import tarfile
import zipfile
from email.parser import BytesParser

_TAG = "py3-none-any"


def _project():
    with open("PKG-INFO", "rb") as f:
        raw = f.read()
    msg = BytesParser().parsebytes(raw)
    base = re.sub(r"[-_.]+", "_", msg["Name"]).lower() + "-" + msg["Version"]
    return raw, base


def _files(base):
    mod = base.rsplit("-", 1)[0]
    out = {}
    for root, dirs, names in os.walk(mod):
        dirs.sort()
        for n in sorted(names):
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                out[path.replace(os.sep, "/")] = f.read()
    return out


def _dist_info(raw, base):
    wheel = "Wheel-Version: 1.0\\nGenerator: cb_test_backend\\nRoot-Is-Purelib: true\\n"
    return {
        base + ".dist-info/METADATA": raw,
        base + ".dist-info/WHEEL": (wheel + "Tag: " + _TAG + "\\n").encode(),
    }


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    raw, base = _project()
    for path, data in _dist_info(raw, base).items():
        target = os.path.join(metadata_directory, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
    return base + ".dist-info"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raw, base = _project()
    files = _files(base)
    files.update(_dist_info(raw, base))
    record = base + ".dist-info/RECORD"
    lines = []
    for path, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        lines.append("%s,sha256=%s,%d" % (path, digest.decode(), len(data)))
    lines.append(record + ",,")
    files[record] = ("\\n".join(lines) + "\\n").encode()
    filename = base + "-" + _TAG + ".whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path in sorted(files):
            zf.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), files[path])
    return filename


def build_sdist(sdist_directory, config_settings=None):
    _, base = _project()
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tf:
        for entry in sorted(os.listdir(".")):
            if entry not in ("build", "dist") and not entry.startswith("."):
                tf.add(entry, arcname=base + "/" + entry)
    return filename
'''

_PYPROJECT = b"""\
[build-system]
requires = []
build-backend = "cb_test_backend"
backend-path = ["."]
"""


def _tar_gz(files: Mapping[str, bytes]) -> bytes:
    """Deterministic .tar.gz: sorted entries, fixed mtime/owner, no gzip name/time."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = _TAR_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)


def build_sdist(
    dest: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    summary: str = "A test package",
    payload_size: int = 0,
) -> Dist:
    """Write an sdist into ``dest`` whose in-tree backend builds without any index."""
    base = f"{dist_name(name)}-{version}"
    metadata = _metadata(name, version, summary, requires_python, requires_dist)
    tree = _module_files(name, version, payload_size)
    tree["PKG-INFO"] = metadata
    tree["pyproject.toml"] = _PYPROJECT
    tree["cb_test_backend.py"] = _BACKEND.encode()
    data = _tar_gz({f"{base}/{path}": content for path, content in tree.items()})
    filename = f"{base}.tar.gz"
    return Dist(
        path=_write(dest, filename, data),
        filename=filename,
        name=name,
        version=version,
        kind="sdist",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        metadata=metadata,
        requires_python=requires_python,
    )
