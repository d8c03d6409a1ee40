"""A zero-byte doc zip (devpi stores it): an empty doc set whose pages say so, not a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.http.ui.docs import DocZipUnreadable, find_member, load_table
from cheeseboard.services.errors import NotFound
from cheeseboard.services.uploads import _doc_zip_problem


def test_zero_bytes_are_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "empty.doc.zip"
    path.write_bytes(b"")
    table = load_table(path, "0" * 64)
    assert not table.members and not table.directories
    with pytest.raises(NotFound, match="is empty: it has no documents"):
        find_member(table, "index.html", "p-1.0.doc.zip on alice/dev")


def test_zero_bytes_are_a_valid_upload_but_other_non_zips_are_not(tmp_path: Path) -> None:
    empty = tmp_path / "empty.doc.zip"
    empty.write_bytes(b"")
    assert _doc_zip_problem(empty) is None
    one_byte = tmp_path / "one.doc.zip"
    one_byte.write_bytes(b"\n")
    assert _doc_zip_problem(one_byte) is not None
    with pytest.raises(DocZipUnreadable):
        load_table(one_byte, "1" * 64)
