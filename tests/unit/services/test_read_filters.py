"""The read services leave out what their reader may not read (issue 20): bases hidden from the
reader are not merged into versions, devpi's projectconfig or the PyPI JSON API, and search
neither finds nor counts projects of indexes the reader may not read."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.core.pages import ProjectPage
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import NotFound
from cheeseboard.store.records import IndexRecord
from tests.support.packages import Dist, build_wheel
from tests.unit.services.support import stage, upload

BASE = "http://testserver/"


async def _private_base_and_child(
    services: AppServices, tmp_path: Path, project: str, child_bases: str = "alice/priv"
) -> tuple[IndexRecord, IndexRecord, Dist]:
    """alice/priv (read by alice and root only) holding ``project`` 1.0, and the public
    alice/pub inheriting from it."""
    private = await stage(services, "priv", acl_read=[])
    child = await stage(services, "pub", bases=child_bases)
    wheel = build_wheel(tmp_path, project, "1.0")
    await upload(services, private, wheel)
    return private, child, wheel


def _unreadable(services: AppServices, user: str | None) -> frozenset[str]:
    return frozenset(
        index.fullname
        for index in services.indexes.all()
        if not services.reads.may_read(user, index)
    )


async def test_hidden_bases_are_left_out_of_versions_config_and_json(
    services: AppServices, tmp_path: Path
) -> None:
    _, child, wheel = await _private_base_and_child(services, tmp_path, "secret-pkg")
    hidden = services.reads.hidden_bases(None, child)
    assert hidden == {"alice/priv"}
    assert services.reads.hidden_bases("alice", child) == frozenset()
    releases, documents = services.releases, services.pypi_json
    with pytest.raises(NotFound, match="no project 'secret-pkg' on alice/pub"):
        await releases.project_versions(child, "secret-pkg", None, hidden)
    with pytest.raises(NotFound, match="no project 'secret-pkg' on alice/pub"):
        await releases.project_config(child, "secret-pkg", BASE, False, hidden)
    with pytest.raises(NotFound, match="no project 'secret-pkg' on alice/pub"):
        await documents.document(child, "secret-pkg", None, BASE, hidden)
    # The owner (nothing hidden) sees it through the child, and the anonymous view is not
    # what the owner's requests are answered from afterwards.
    seen = await releases.project_versions(child, "secret-pkg", None)
    assert [v.version for v in seen.versions] == ["1.0"] and seen.selected.source == "alice/priv"
    config = await releases.project_config(child, "secret-pkg", BASE, False)
    assert list(config) == ["1.0"]
    _, rendered = await documents.document(child, "secret-pkg", None, BASE)
    assert wheel.filename.encode() in rendered.body
    with pytest.raises(NotFound):
        await documents.document(child, "secret-pkg", None, BASE, hidden)


async def test_the_mirror_guard_decides_without_hidden_bases(
    services: AppServices, tmp_path: Path, dists: dict[str, list[Dist]]
) -> None:
    """A hidden base holding lib-a keeps the mirror's lib-a from its owner (dependency-confusion
    guard) but not from a reader who cannot see that base: for them devpi's JSON shows what
    their simple page shows, the mirror's releases, as for any name no visible stage holds."""
    _, child, _ = await _private_base_and_child(
        services, tmp_path, "lib-a", child_bases="alice/priv,root/pypi"
    )
    hidden = services.reads.hidden_bases(None, child)
    page = (await services.pages.project_page(child, "lib-a", hidden)).page
    assert isinstance(page, ProjectPage)
    assert {link.filename for link in page.files} == {d.filename for d in dists["lib-a"]}
    config = await services.releases.project_config(child, "lib-a", BASE, False, hidden)
    assert all(
        not data["+links"] or "root/pypi/" in data["+links"][0]["href"] for data in config.values()
    )
    assert set(config) == {link.version for link in page.files}
    owners = await services.releases.project_config(child, "lib-a", BASE, False)
    assert list(owners) == ["1.0"]
    assert "alice/priv/" in owners["1.0"]["+links"][0]["href"]


async def test_search_neither_finds_nor_counts_unreadable_indexes(
    services: AppServices, tmp_path: Path
) -> None:
    _, child, _ = await _private_base_and_child(services, tmp_path, "secret-pkg")
    for index in (None, child):
        found = await services.search.search("secret", index=index)
        assert [r.index_fullname for r in found.hits] == ["alice/priv"] and found.total == 1
        hidden = await services.search.search(
            "secret", index=index, hidden=_unreadable(services, None)
        )
        assert hidden.hits == [] and hidden.total == 0
    assert _unreadable(services, "alice") == frozenset()
