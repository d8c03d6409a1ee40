"""services/advisories.py: advisories read per project on demand, dropped on ADVISORIES changes."""

from __future__ import annotations

import json
from pathlib import Path

from cheeseboard.core.changes import ChangeKind
from cheeseboard.ops.advisories import import_offline
from cheeseboard.services.advisories import AdvisoryService
from cheeseboard.settings import Settings
from cheeseboard.store.db import Database
from cheeseboard.store.records import Change


def _advisory(modified: str, fixed: str) -> dict[str, object]:
    return {
        "id": "PYSEC-2024-1",
        "modified": modified,
        "details": "d",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Some.Lib"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


async def test_cached_until_an_advisories_change(settings: Settings, tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(_advisory("2024-01-01T00:00:00Z", "2.0")))
    import_offline(str(feed), settings.db_url, None)
    db = Database(settings.db_url)
    try:
        service = AdvisoryService(db, max_projects=2)
        (entry,) = await service.affecting("some-lib", "1.5")
        assert entry["id"] == "PYSEC-2024-1" and entry["fixed_in"] == ["2.0"]
        assert await service.affecting("some-lib", "2.0") == []
        assert await service.affecting("other", "1.0") == []

        feed.write_text(json.dumps(_advisory("2024-02-01T00:00:00Z", "1.5")))
        import_offline(str(feed), settings.db_url, None)
        assert len(await service.affecting("some-lib", "1.5")) == 1  # cached: not told yet
        service.on_change(Change(1, None, "other", ChangeKind.UPLOAD))
        assert len(await service.affecting("some-lib", "1.5")) == 1  # not an advisories change
        generation = service.generation
        service.on_change(Change(2, None, "some-lib", ChangeKind.ADVISORIES))
        assert service.generation > generation
        assert await service.affecting("some-lib", "1.5") == []  # 1.5 fixes it now
        assert len(await service.affecting("some-lib", "1.4")) == 1
    finally:
        await db.close()
