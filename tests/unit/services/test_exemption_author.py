"""An exemption records who added it: the acting user of the index PATCH (or PUT), not the
index's owner, so root's break-glass entries on an owner's index say root."""

from __future__ import annotations

from cheeseboard.services.container import AppServices
from tests.unit.services.support import ALICE, ROOT, stage


async def test_the_acting_user_is_the_author(services: AppServices) -> None:
    await stage(services, "held", min_release_age="1h")
    patched = await services.accounts.patch_index(
        ROOT, "alice", "held", ["release_age_exempt+=pkg==1.0; reason=root's call"]
    )
    patched = await services.accounts.patch_index(
        ALICE, "alice", "held", ["release_age_exempt+=other; reason=alice's call"]
    )
    listed = patched.config["release_age_exempt"]
    assert isinstance(listed, list)
    authors = {entry["entry"]: entry["author"] for entry in listed}
    assert authors == {"pkg==1.0": "root", "other": "alice"}
    made = await services.accounts.create_index(
        ROOT, "alice", "made", {"release_age_exempt": ["pkg; reason=from the start"]}
    )
    assert made.config["release_age_exempt"][0]["author"] == "root"
