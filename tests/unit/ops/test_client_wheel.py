"""The client wheel the server builds of itself (ops/client_wheel.py): complete, installable by
the wheel spec's rules, reproducible, and asking for the client's dependencies only."""

from __future__ import annotations

import base64
import hashlib
import io
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import cheeseboard
from cheeseboard.ops.client_wheel import ClientWheelError, build_client_wheel, build_wheel

REPO = Path(__file__).resolve().parents[3]


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_same_code_gives_the_same_bytes() -> None:
    """Two builds of the running package are byte for byte equal, named by its version."""
    first, second = build_client_wheel(), build_client_wheel()
    assert first.data == second.data
    assert first.sha256 == hashlib.sha256(first.data).hexdigest() == second.sha256
    assert first.filename == f"cheeseboard-{cheeseboard.__version__}-py3-none-any.whl"


def test_record_lists_every_file_with_its_hash() -> None:
    """RECORD names every member with the right sha256 and size (pip checks them) and the
    package is complete: every source file, no bytecode."""
    wheel = build_client_wheel()
    members = _members(wheel.data)
    dist_info = f"cheeseboard-{cheeseboard.__version__}.dist-info"
    rows = [line.split(",") for line in members[f"{dist_info}/RECORD"].decode().splitlines()]
    assert {row[0] for row in rows} == set(members)
    for name, digest, size in rows:
        if name.endswith("/RECORD"):
            assert digest == size == ""
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(members[name]).digest()).rstrip(b"=")
        assert digest == f"sha256={expected.decode()}" and int(size) == len(members[name])
    package = Path(cheeseboard.__file__).parent
    sources = {f"cheeseboard/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert sources <= set(members)
    assert not [name for name in members if "__pycache__" in name or name.endswith(".pyc")]
    assert "Tag: py3-none-any" in members[f"{dist_info}/WHEEL"].decode()
    assert "cheeseboard = cheeseboard.client.cli:main" in (
        members[f"{dist_info}/entry_points.txt"].decode()
    )


def test_metadata_requires_the_client_dependencies_only() -> None:
    """Without extras the wheel pulls in exactly pyproject's ``dependencies`` (the client's);
    the server's stack stays behind the ``server`` extra."""
    members = _members(build_client_wheel().data)
    text = members[f"cheeseboard-{cheeseboard.__version__}.dist-info/METADATA"].decode()
    requirements = [Requirement(r) for r in Parser().parsestr(text).get_all("Requires-Dist", [])]
    unconditional = {canonicalize_name(r.name) for r in requirements if r.marker is None}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert unconditional == declared
    server = {
        canonicalize_name(r.name)
        for r in requirements
        if r.marker is not None and r.marker.evaluate({"extra": "server"})
    }
    assert {"granian", "sqlalchemy", "starlette"} <= server


def test_only_regular_files_inside_the_package(tmp_path: Path) -> None:
    """Bytecode and links (which could reach outside the package) are left out."""
    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    (package / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (package / "templates").mkdir()
    (package / "templates" / "page.html").write_text("<p>hi</p>\n")
    (tmp_path / "secret").write_text("not for the wheel\n")
    (package / "leak.txt").symlink_to(tmp_path / "secret")
    names = set(_members(build_wheel(package, "1.0", "Name: cheeseboard\n", "").data))
    assert names == {
        "pkg/__init__.py",
        "pkg/templates/page.html",
        "cheeseboard-1.0.dist-info/METADATA",
        "cheeseboard-1.0.dist-info/WHEEL",
        "cheeseboard-1.0.dist-info/RECORD",
    }


@pytest.mark.parametrize(
    ("version", "is_package", "message"),
    [("1.0/../x", True, "cannot name a wheel"), ("1.0", False, "is not a package")],
)
def test_refusals_say_why(tmp_path: Path, version: str, is_package: bool, message: str) -> None:
    """A version that cannot be a file name, or a directory that is not a package, is refused."""
    if is_package:
        (tmp_path / "__init__.py").write_text("")
    with pytest.raises(ClientWheelError, match=message):
        build_wheel(tmp_path, version, "Name: cheeseboard\n", "")
