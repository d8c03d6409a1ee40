"""Hostile data that got in before today's upload checks (or through an import)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from cheeseboard.http.ui.docs import load_table
from cheeseboard.services.pypi_json import latest_version


def test_a_doc_zip_member_without_a_name_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "docs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("index.html", "<h1>docs</h1>")
        archive.writestr(zipfile.ZipInfo(""), b"x")  # ZipInfo("").is_dir() raises IndexError
    table = load_table(path, "0" * 64)
    assert "index.html" in table.members
    assert "" not in table.members


def test_latest_version_survives_hostile_versions() -> None:
    huge = "1" * 5000  # past int()'s digit limit: packaging would raise ValueError
    assert latest_version(["1.0", huge, "2.0rc1"], set()) == "1.0"
