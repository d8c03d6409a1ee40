"""Real distributions for a local upstream, offline: wheels repacked from what this interpreter has
installed (the files its RECORD lists, the same METADATA), so a test can install a real
dependency tree (the client's: click, rich, build...) without reaching PyPI."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.packages import Dist, _wheel_bytes, dist_name, normalize

# dist-info files an installer writes (pip regenerates them; RECORD is rebuilt by _wheel_bytes).
_INSTALLER_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


def requirement_closure(requirements: list[str]) -> list[str]:
    """The installed distributions ``requirements`` need, transitively, for this interpreter
    with no extras (markers evaluated as pip would)."""
    seen: dict[str, None] = {}
    pending = list(requirements)
    while pending:
        requirement = Requirement(pending.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen[name] = None
        pending.extend(metadata.distribution(name).requires or [])
    return sorted(seen)


def repack(name: str, dest: Path) -> Dist:
    """A py3-none-any wheel of the installed pure-Python distribution ``name``, written to
    ``dest``."""
    dist = metadata.distribution(name)
    wheel_text = dist.read_text("WHEEL") or ""
    assert "Root-Is-Purelib: true" in wheel_text, f"{name} is not pure Python"
    files: dict[str, bytes] = {}
    for record in dist.files or []:
        path = record.as_posix()
        parts = path.split("/")
        if parts[0] == ".." or "__pycache__" in parts:
            continue  # console scripts (pip makes them from entry_points.txt), bytecode
        if parts[0].endswith(".dist-info") and parts[-1] in _INSTALLER_FILES:
            continue
        files[path] = Path(str(dist.locate_file(record))).read_bytes()
    dist_info = next(p.split("/")[0] for p in files if p.split("/")[0].endswith(".dist-info"))
    data = _wheel_bytes(files, dist_info)
    filename = f"{dist_name(dist.metadata['Name'])}-{dist.version}-py3-none-any.whl"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / filename).write_bytes(data)
    return Dist(
        path=dest / filename,
        filename=filename,
        name=normalize(dist.metadata["Name"]),
        version=dist.version,
        kind="wheel",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        metadata=files[f"{dist_info}/METADATA"],
        requires_python=dist.metadata["Requires-Python"],
    )
