"""store/audit_rows.py over a real (migrated SQLite) store: bounded entries, filters, order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cheeseboard.store import audit_rows
from cheeseboard.store.audit_rows import AuditEntry
from cheeseboard.store.db import engine_for, migrate


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    migrate(url)
    engine = engine_for(url, write=True)
    yield engine
    engine.dispose()


def test_a_long_detail_and_target_are_cut(engine: Engine) -> None:
    """A detail past MAX_DETAIL_BYTES is kept as a cut text; target and actor are bounded."""
    huge = {"exempt": [f"pkg-{i}" for i in range(5000)]}
    with engine.begin() as conn:
        audit_rows.append(conn, AuditEntry("a" * 100, "index-modify", "t" * 5000, huge, "c" * 99))
    with engine.connect() as conn:
        (row,) = audit_rows.read(conn)
    assert set(row.detail) == {"truncated"}
    assert len(str(row.detail["truncated"]).encode()) <= audit_rows.MAX_DETAIL_BYTES
    assert row.target == "t" * audit_rows.MAX_TARGET
    assert row.actor == "a" * 64 and row.client == "c" * 64


def test_filters_order_and_limits(engine: Engine) -> None:
    """Newest first by default; actor, action, after and since filter; limit is bounded."""
    with engine.begin() as conn:
        for number in range(6):
            actor = "root" if number % 2 else "alice"
            entry = AuditEntry(actor, f"act-{number % 3}", f"t{number}", {"n": number})
            audit_rows.append(conn, entry, at=1000.0 + number)
    with engine.connect() as conn:
        assert [r.target for r in audit_rows.read(conn)] == [f"t{n}" for n in range(5, -1, -1)]
        assert [r.target for r in audit_rows.read(conn, actor="root")] == ["t5", "t3", "t1"]
        assert [r.target for r in audit_rows.read(conn, action="act-0")] == ["t3", "t0"]
        assert [r.target for r in audit_rows.read(conn, since=1004.0)] == ["t5", "t4"]
        first = audit_rows.read(conn, newest_first=False, limit=2)
        assert [r.target for r in first] == ["t0", "t1"]
        after = audit_rows.read(conn, after_id=first[-1].id, newest_first=False)
        assert [r.target for r in after] == ["t2", "t3", "t4", "t5"]
        assert len(audit_rows.read(conn, limit=0)) == 1  # at least one, at most MAX_READ
        assert audit_rows.count(conn) == 6
        assert [r.target for r in audit_rows.every(conn)] == [f"t{n}" for n in range(6)]
        shown = audit_rows.read(conn, limit=1)[0].to_json()
    assert shown["at"] == "1970-01-01T00:16:45Z" and shown["detail"] == {"n": 5}
