"""Users, passwords and tokens through AccountService, AuthService and TokenService."""

from __future__ import annotations

import base64

import pytest
from starlette.datastructures import Headers

from cheeseboard.services.accounts import Conflict
from cheeseboard.services.auth import ANONYMOUS, Forbidden, Unauthorized
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import BadRequest, NotFound
from tests.support.server import ROOT_PASSWORD
from tests.unit.services.support import ALICE, ALICE_PASSWORD, CHEAP_HASH, ROOT, new_user, stage


def _basic(user: str, secret: str) -> Headers:
    raw = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return Headers({"authorization": f"Basic {raw}"})


async def test_root_exists_with_the_init_password(services: AppServices) -> None:
    assert (await services.auth.identify(_basic("root", ROOT_PASSWORD))).user == "root"
    with pytest.raises(Unauthorized):
        await services.auth.identify(_basic("root", "not-it"))


async def test_create_user_then_log_in(services: AppServices) -> None:
    created = await services.accounts.create_user(
        ROOT, "carol", {"password": "carol-password", "email": "carol@example.test"}
    )
    assert created.name == "carol" and created.email == "carol@example.test"
    assert services.auth.user("carol") is not None
    token = await services.auth.login("carol", "carol-password")
    assert services.auth.check_token(token, "carol").user == "carol"
    with pytest.raises(Unauthorized):
        await services.auth.login("carol", "wrong")
    view = services.accounts.user_view(created, ANONYMOUS)
    assert view["username"] == "carol" and "email" not in view  # not for strangers


async def test_user_creation_is_checked(services: AppServices) -> None:
    await new_user(services, "alice")
    with pytest.raises(Conflict, match="user 'alice' already exists"):
        await services.accounts.create_user(ROOT, "alice", {"pwhash": CHEAP_HASH})
    with pytest.raises(BadRequest, match="password needs to be set"):
        await services.accounts.create_user(ROOT, "dave", {})
    with pytest.raises(BadRequest, match="Unknown keys in user config: colour"):
        await services.accounts.create_user(ROOT, "dave", {"password": "x", "colour": "red"})
    with pytest.raises((Unauthorized, Forbidden)):
        await services.accounts.create_user(ANONYMOUS, "dave", {"password": "x"})
    with pytest.raises(NotFound):
        services.accounts.get_user("dave")


async def test_changing_the_password(services: AppServices) -> None:
    alice = await new_user(services, "alice")
    old_token = await services.auth.login("alice", ALICE_PASSWORD)
    assert await services.accounts.modify_user(alice, "alice", {"password": "new-password"})
    with pytest.raises(Unauthorized):
        await services.auth.login("alice", ALICE_PASSWORD)
    assert await services.auth.login("alice", "new-password")
    # Login tokens are bound to the password they were issued under.
    assert services.auth.check_token(old_token, "alice").user is None


async def test_deleting_a_user_deletes_its_indexes(services: AppServices) -> None:
    await stage(services, "dev")
    assert services.indexes.get("alice", "dev") is not None
    await services.accounts.delete_user(ROOT, "alice")
    assert services.auth.user("alice") is None
    assert services.indexes.get("alice", "dev") is None
    with pytest.raises(Forbidden, match="root cannot be deleted"):
        await services.accounts.delete_user(ROOT, "root")


async def test_scoped_token_may_upload_to_its_index_only(services: AppServices) -> None:
    await stage(services, "dev")
    await stage(services, "other")
    created = await services.tokens.create(
        ALICE, "alice", {"indexes": ["alice/dev"], "description": "CI"}
    )
    token = created["token"]
    headers = _basic("alice", token)
    who = await services.auth.identify(headers, "upload", "alice/dev")
    assert who.user == "alice" and who.token_indexes == frozenset({"alice/dev"})
    with pytest.raises(Forbidden, match="may only upload to alice/dev"):
        await services.auth.identify(headers, "upload", "alice/other")
    listed = services.tokens.list(ALICE, "alice")
    assert [t["description"] for t in listed] == ["CI"]
    await services.tokens.revoke(ALICE, "alice", created["id"])
    assert services.tokens.list(ALICE, "alice") == []
    with pytest.raises(Unauthorized):
        await services.auth.identify(headers, "upload", "alice/dev")


async def test_tokens_are_checked(services: AppServices) -> None:
    await stage(services, "dev")
    with pytest.raises(BadRequest, match="no index 'alice/nope'"):
        await services.tokens.create(ALICE, "alice", {"indexes": ["alice/nope"]})
    with pytest.raises(BadRequest, match="'expires_in' must be between 60"):
        await services.tokens.create(ALICE, "alice", {"indexes": "alice/dev", "expires_in": 5})
    bob = await new_user(services, "bob")
    with pytest.raises(Forbidden):
        services.tokens.list(bob, "alice")
    with pytest.raises(Unauthorized):
        await services.tokens.create(ANONYMOUS, "alice", {"indexes": "alice/dev"})
    assert services.tokens.list(ROOT, "alice") == []  # root manages everyone's tokens
