"""PEP 792 statuses of stage projects through ProjectStatusService: what the simple pages show
(through inheritance too), quarantine hiding files and refusing downloads (the hot path
included), who may set a status, and the audit entry each change leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cheeseboard.http.app import create_app
from cheeseboard.http.hot import HotPath
from cheeseboard.services.auth import ANONYMOUS, Forbidden, Unauthorized
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.services.project_status import MAX_REASON, parse_request
from cheeseboard.settings import Settings
from cheeseboard.store import audit_rows
from cheeseboard.store.records import IndexRecord
from tests.support.packages import Dist, build_wheel
from tests.unit.services.support import ALICE, ROOT, filenames, mirror, new_user, stage, upload
from tests.unit.services.test_hot_path_answers import _scope

PROJECT = "status-pkg"


async def _dev(services: AppServices, tmp_path: Path) -> tuple[IndexRecord, Dist]:
    dev = await stage(services)
    wheel = build_wheel(tmp_path, PROJECT, "1.0")
    await upload(services, dev, wheel)
    return dev, wheel


async def test_status_and_reason_are_served_and_audited(
    services: AppServices, tmp_path: Path
) -> None:
    dev, wheel = await _dev(services, tmp_path)
    await services.pages.project_page(dev, PROJECT)  # cached before the change
    changed = await services.project_status.set(ALICE, dev, "Status_Pkg", "archived", "use x")
    assert changed.as_json() == {"project": PROJECT, "status": "archived", "reason": "use x"}
    cached = await services.pages.project_page(dev, PROJECT)
    assert filenames(cached) == [wheel.filename]  # archived: files stay
    document = json.loads(cached.render("json", False).body)
    assert document["project-status"] == {"status": "archived", "reason": "use x"}
    html = cached.render("html", False).body
    assert b'<meta name="pypi:project-status" content="archived">' in html
    assert b'<meta name="pypi:project-status-reason" content="use x">' in html
    assert (await services.project_status.get(dev, PROJECT)).status == "archived"

    await services.project_status.set(ROOT, dev, PROJECT, "active")
    cached = await services.pages.project_page(dev, PROJECT)
    assert "project-status" not in json.loads(cached.render("json", False).body)
    assert (await services.project_status.get(dev, PROJECT)).as_json() == {
        "project": PROJECT,
        "status": "active",
    }
    entries = await services.db.read(audit_rows.read, action="project-status", newest_first=False)
    assert [(e.actor, e.target) for e in entries] == [
        ("alice", f"alice/dev/{PROJECT}"),
        ("root", f"alice/dev/{PROJECT}"),
    ]
    assert entries[0].detail == {
        "old": {"status": "active", "reason": None},
        "new": {"status": "archived", "reason": "use x"},
    }
    assert entries[1].detail["new"] == {"status": "active", "reason": None}
    # Setting what is already set changes nothing and records nothing.
    await services.project_status.set(ROOT, dev, PROJECT, "active")
    assert len(await services.db.read(audit_rows.read, action="project-status")) == 2


async def test_quarantine_hides_files_and_refuses_downloads(
    services: AppServices, settings: Settings, tmp_path: Path
) -> None:
    dev, wheel = await _dev(services, tmp_path)
    app = create_app(settings)
    app.state.services = services
    hot = HotPath(app)
    path = f"/alice/dev/+f/{wheel.sha256[:3]}/{wheel.sha256[3:16]}/{wheel.filename}"
    record = await services.files.lookup(dev, wheel.filename)
    assert hot.answer(_scope(path, {}), services) is not None  # served from memory

    await services.project_status.set(ALICE, dev, PROJECT, "quarantined", "malware")
    cached = await services.pages.project_page(dev, PROJECT)
    assert filenames(cached) == []
    document = json.loads(cached.render("json", False).body)
    assert document["files"] == [] and document["project-status"]["status"] == "quarantined"
    assert services.project_status.is_quarantined(record.project_id)
    with pytest.raises(Forbidden, match="quarantined"):
        services.project_status.check_download(dev, record)
    record = await services.files.lookup(dev, wheel.filename)  # the row in memory again
    assert hot.answer(_scope(path, {}), services) is None  # left to the route, which refuses

    await services.project_status.set(ALICE, dev, PROJECT, "deprecated")
    assert not services.project_status.is_quarantined(record.project_id)
    assert filenames(await services.pages.project_page(dev, PROJECT)) == [wheel.filename]
    await services.files.lookup(dev, wheel.filename)
    assert hot.answer(_scope(path, {}), services) is not None


async def test_inheritance_shows_the_stages_own_status(
    services: AppServices, tmp_path: Path
) -> None:
    dev, wheel = await _dev(services, tmp_path)
    child = await stage(services, "child", bases="alice/dev")
    own = build_wheel(tmp_path, PROJECT, "2.0")
    await upload(services, child, own)
    both = sorted([wheel.filename, own.filename])
    await services.project_status.set(ALICE, dev, PROJECT, "deprecated", "base says so")
    page = (await services.pages.project_page(child, PROJECT)).page
    assert page.status is None  # type: ignore[union-attr]
    assert sorted(filenames(await services.pages.project_page(child, PROJECT))) == both

    await services.project_status.set(ALICE, child, PROJECT, "archived")
    page = (await services.pages.project_page(child, PROJECT)).page
    assert (page.status, page.status_reason) == ("archived", None)  # type: ignore[union-attr]

    # The base's quarantine takes its files off the child's page too; the child's own stay.
    await services.project_status.set(ALICE, dev, PROJECT, "quarantined")
    assert filenames(await services.pages.project_page(child, PROJECT)) == [own.filename]
    # The child's quarantine takes every file off its own page, inherited ones included.
    await services.project_status.set(ALICE, dev, PROJECT, "active")
    await services.project_status.set(ALICE, child, PROJECT, "quarantined")
    assert filenames(await services.pages.project_page(child, PROJECT)) == []
    assert filenames(await services.pages.project_page(dev, PROJECT)) == [wheel.filename]


async def test_who_may_set_a_status_and_what_is_refused(
    services: AppServices, tmp_path: Path
) -> None:
    dev, _ = await _dev(services, tmp_path)
    bob = await new_user(services, "bob")
    with pytest.raises(Forbidden):
        await services.project_status.set(bob, dev, PROJECT, "archived")
    with pytest.raises(Unauthorized):
        await services.project_status.set(ANONYMOUS, dev, PROJECT, "archived")
    with pytest.raises(BadRequest, match="mirror"):
        await services.project_status.set(ROOT, mirror(services), "lib-a", "archived")
    with pytest.raises(BadRequest, match="mirror"):
        await services.project_status.get(mirror(services), "lib-a")
    with pytest.raises(NotFound):
        await services.project_status.set(ALICE, dev, "no-such-project", "archived")
    with pytest.raises(BadRequest, match="unknown status"):
        await services.project_status.set(ALICE, dev, PROJECT, "yanked")
    assert (await services.project_status.get(dev, PROJECT)).status == "active"
    assert await services.db.read(audit_rows.read, action="project-status") == []

    assert parse_request({"status": "archived"}) == ("archived", None)
    assert parse_request({"status": "deprecated", "reason": "old"}) == ("deprecated", "old")
    bodies: list[object] = [{}, [], {"status": "gone"}, {"status": "archived", "reason": 3}]
    for bad in bodies:
        with pytest.raises(BadRequest):
            parse_request(bad)
    with pytest.raises(BadRequest, match="longer"):
        parse_request({"status": "archived", "reason": "x" * (MAX_REASON + 1)})


async def test_archived_and_quarantined_projects_take_no_uploads(
    services: AppServices, tmp_path: Path
) -> None:
    dev, wheel = await _dev(services, tmp_path)
    for status in ("archived", "quarantined"):
        await services.project_status.set(ALICE, dev, PROJECT, status)
        with pytest.raises(Forbidden, match=f"{status} on alice/dev"):
            await upload(services, dev, build_wheel(tmp_path / status, PROJECT, "2.0"))
    await services.project_status.set(ALICE, dev, PROJECT, "deprecated")
    await upload(services, dev, build_wheel(tmp_path / "deprecated", PROJECT, "2.0"))
    assert len(filenames(await services.pages.project_page(dev, PROJECT))) == 2
    assert wheel.filename in filenames(await services.pages.project_page(dev, PROJECT))
