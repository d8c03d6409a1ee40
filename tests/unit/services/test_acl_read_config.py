"""``acl_read`` through AccountService (issue 20): stored, shown, and inheritance that can't widen
access (a new base must be readable by the index's owner)."""

from __future__ import annotations

import pytest

from cheeseboard.core.changes import ChangeKind
from cheeseboard.services.changes import Transaction
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import BadRequest, NotFound
from cheeseboard.store import accounts
from tests.support.packages import Dist
from tests.unit.services.support import ALICE, ROOT, filenames, mirror, new_user, stage, upload


async def _private(app: AppServices, acl_read: str | list[str] | None = None) -> None:
    """alice/secret, readable by alice and root only (unless ``acl_read`` says otherwise)."""
    await stage(app, "secret", acl_read=[] if acl_read is None else acl_read)


async def test_private_stage_is_stored_and_shown(services: AppServices) -> None:
    await _private(services)
    secret = services.accounts.get_index("alice", "secret")
    assert secret.config["acl_read"] == []
    view = await services.accounts.index_view(secret, with_projects=False)
    assert view["acl_read"] == []
    user = services.accounts.user_view(services.accounts.get_user("alice"), ROOT)
    assert user["indexes"]["secret"]["acl_read"] == []
    assert not services.reads.may_read(None, secret)


async def test_new_stage_and_mirror_show_the_default(services: AppServices) -> None:
    dev = await stage(services)
    assert (await services.accounts.index_view(dev, False))["acl_read"] == [":ANONYMOUS:"]
    view = await services.accounts.index_view(mirror(services), False)
    assert view["acl_read"] == [":ANONYMOUS:"]


async def test_root_makes_the_mirror_private(services: AppServices) -> None:
    pypi = await services.accounts.patch_index(ROOT, "root", "pypi", ["acl_read=:AUTHENTICATED:"])
    assert pypi.config["acl_read"] == [":AUTHENTICATED:"]
    assert pypi.config["mirror_url"] == mirror(services).config["mirror_url"]
    assert not services.reads.may_read(None, pypi)
    assert services.reads.may_read("alice", pypi)


def _strip_acl_read(tx: Transaction, index_id: int) -> None:
    """Store an index's config as a server from before acl_read did."""
    index = next(ix for ix in accounts.load_indexes(tx.conn) if ix.id == index_id)
    config = {key: value for key, value in index.config.items() if key != "acl_read"}
    accounts.update_index_config(tx.conn, index_id, config)
    tx.log(index_id, None, ChangeKind.INDEX_MODIFIED)


async def test_old_index_without_the_key_shows_the_default(services: AppServices) -> None:
    dev = await stage(services)
    await services.changes.write(_strip_acl_read, dev.id)
    old = services.accounts.get_index("alice", "dev")
    assert "acl_read" not in old.config
    assert (await services.accounts.index_view(old, False))["acl_read"] == [":ANONYMOUS:"]
    # Storing the default it meant changes nothing: a no-op PATCH is still one.
    with pytest.raises(BadRequest, match="would not change anything"):
        await services.accounts.patch_index(ALICE, "alice", "dev", ["acl_read=:ANONYMOUS:"], True)
    narrowed = await services.accounts.patch_index(ALICE, "alice", "dev", ["acl_read-=:ANONYMOUS:"])
    assert narrowed.config["acl_read"] == []


async def test_root_may_not_give_bob_a_base_bob_may_not_read(services: AppServices) -> None:
    await _private(services)
    await new_user(services, "bob")
    with pytest.raises(BadRequest) as info:
        await stage(services, "dev", user="bob", bases="alice/secret")
    message = str(info.value)
    assert "alice/secret" in message and "bob, the owner of bob/dev" in message
    assert services.indexes.get("bob", "dev") is None


async def test_a_base_the_editor_may_not_read_looks_missing(services: AppServices) -> None:
    """bob adding alice's private stage learns no more than for an index that doesn't exist."""
    await _private(services)
    bob = await new_user(services, "bob")
    await stage(services, "dev", user="bob")
    with pytest.raises(BadRequest) as hidden:
        await services.accounts.patch_index(bob, "bob", "dev", ["bases+=alice/secret"])
    with pytest.raises(BadRequest) as missing:
        await services.accounts.patch_index(bob, "bob", "dev", ["bases+=alice/nothing"])
    assert str(hidden.value) == str(missing.value).replace("nothing", "secret")
    assert services.accounts.get_index("bob", "dev").config["bases"] == []


async def test_owner_and_root_may_inherit_a_private_stage(services: AppServices) -> None:
    await _private(services)
    own = await stage(services, "dev", bases="alice/secret")
    assert own.config["bases"] == ["alice/secret"]
    await services.accounts.create_index(ROOT, "root", "all", {"bases": "alice/secret"})
    assert services.accounts.get_index("root", "all").config["bases"] == ["alice/secret"]


async def test_acl_read_entries_decide_who_may_inherit(services: AppServices) -> None:
    await _private(services, acl_read="bob")
    bob = await new_user(services, "bob")
    await new_user(services, "carol")
    await stage(services, "dev", user="bob", bases="alice/secret")
    with pytest.raises(BadRequest, match="carol, the owner of carol/dev"):
        await stage(services, "dev", user="carol", bases="alice/secret")
    await services.accounts.patch_index(ALICE, "alice", "secret", ["acl_read=:AUTHENTICATED:"])
    carol = await stage(services, "dev", user="carol", bases="alice/secret")
    assert carol.config["bases"] == ["alice/secret"]
    assert services.reads.may_read(bob.user, services.accounts.get_index("alice", "secret"))


async def test_narrowing_a_base_later_is_allowed_and_filtered_at_read_time(
    services: AppServices, dists: dict[str, list[Dist]]
) -> None:
    """alice may shut bob out of her stage after bob built on it: bob's stage keeps the base
    (and bob can still edit it), but its pages no longer merge the base for bob."""
    secret = await stage(services, "secret", acl_read="bob")
    await upload(services, secret, dists["lib-a"][0])
    bob = await new_user(services, "bob")
    bob_dev = await stage(services, "dev", user="bob", bases="alice/secret")
    hidden = services.reads.hidden_bases(bob.user, bob_dev)
    page = await services.pages.project_page(bob_dev, "lib-a", hidden)
    assert filenames(page) == [dists["lib-a"][0].filename]

    await services.accounts.patch_index(ALICE, "alice", "secret", ["acl_read-=bob"])
    bob_dev = await services.accounts.patch_index(bob, "bob", "dev", ["title=still mine"])
    assert bob_dev.config["bases"] == ["alice/secret"] and bob_dev.config["title"] == "still mine"
    hidden = services.reads.hidden_bases(bob.user, bob_dev)
    assert hidden == frozenset({"alice/secret"})
    with pytest.raises(NotFound):
        await services.pages.project_page(bob_dev, "lib-a", hidden)
