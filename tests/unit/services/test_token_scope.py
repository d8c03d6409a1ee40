"""Token scopes over the real services: what ``identify`` (and the hot path's ``identify_known``)
make of a ``read`` or ``upload`` token on its own indexes and on any other.

On its own indexes a token names its owner (a ``read`` token for reads only); on any other index
it grants nothing: a read there is answered as to an anonymous caller, an upload is refused.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from starlette.datastructures import Headers

from cheeseboard.services.auth import ANONYMOUS, Forbidden, Identity, Unauthorized
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import BadRequest
from tests.unit.services.support import ALICE, stage


def _basic(user: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


async def _token(app: AppServices, indexes: list[str], **body: Any) -> dict[str, Any]:
    return await app.tokens.create(ALICE, "alice", {"indexes": indexes, **body})


async def _identify(app: AppServices, token: str, action: Any, index: str | None) -> Identity:
    return await app.auth.identify(Headers(_basic("__token__", token)), action, index)


async def test_a_read_token_reads_its_indexes_as_its_owner_and_uploads_nowhere(
    services: AppServices,
) -> None:
    await stage(services, "dev")
    await stage(services, "other")
    made = await _token(services, ["alice/dev"], scope="read")
    assert made["scope"] == "read"
    token = str(made["token"])

    assert await _identify(services, token, "read", "alice/dev") == Identity(
        "alice", frozenset({"alice/dev"})
    )
    with pytest.raises(Forbidden, match="read-only token: it may only read alice/dev"):
        await _identify(services, token, "upload", "alice/dev")
    with pytest.raises(Forbidden, match="read-only"):
        await _identify(services, token, "upload", "alice/other")
    with pytest.raises(Forbidden, match="read-only"):
        await _identify(services, token, "manage", "alice/dev")


async def test_any_token_grants_nothing_on_other_indexes(services: AppServices) -> None:
    """Reading another index (even one of the owner's) reads as anonymous; uploading there is
    refused; a read that names no index (``/+api``'s login status) still names the owner."""
    await stage(services, "dev")
    await stage(services, "other")
    for scope in ("read", "upload"):
        token = str((await _token(services, ["alice/dev"], scope=scope))["token"])
        assert await _identify(services, token, "read", "alice/other") == ANONYMOUS, scope
        assert await _identify(services, token, "read", "root/pypi") == ANONYMOUS, scope
        assert (await _identify(services, token, "read", None)).user == "alice", scope
        with pytest.raises(Forbidden):
            await _identify(services, token, "upload", "alice/other")


async def test_an_upload_token_reads_and_uploads_its_indexes(services: AppServices) -> None:
    await stage(services, "dev")
    await stage(services, "other")
    made = await _token(services, ["alice/dev", "alice/other"])
    assert made["scope"] == "upload"  # the default: what every token could do before scopes
    token = str(made["token"])
    for index in ("alice/dev", "alice/other"):
        assert (await _identify(services, token, "read", index)).user == "alice"
        assert (await _identify(services, token, "upload", index)).user == "alice"
    with pytest.raises(Forbidden, match="may only upload to alice/dev, alice/other"):
        await _identify(services, token, "manage", "alice/dev")


async def test_identify_known_agrees_with_identify(services: AppServices) -> None:
    """The hot path's answer from memory is identify's answer for a read; before the token was
    ever checked, or once it is revoked, memory cannot answer (None)."""
    await stage(services, "dev")
    await stage(services, "other")
    made = await _token(services, ["alice/dev"], scope="read")
    headers = _basic("__token__", str(made["token"]))
    auth = services.auth
    assert auth.identify_known(headers, "alice/dev") is None  # never checked: identify decides
    assert (await auth.identify(Headers(headers), "read", "alice/dev")).user == "alice"
    for index in ("alice/dev", "alice/other", "root/pypi", None):
        expected = await auth.identify(Headers(headers), "read", index)
        assert auth.identify_known(headers, index) == expected, index
    assert auth.identify_known(headers, "alice/other") == ANONYMOUS
    assert auth.identify_known({}, "alice/dev") == ANONYMOUS

    await services.tokens.revoke(ALICE, "alice", str(made["id"]))
    assert auth.identify_known(headers, "alice/dev") is None
    assert auth.identify_known(headers, "alice/other") is None
    with pytest.raises(Unauthorized, match="revoked"):
        await auth.identify(Headers(headers), "read", "alice/dev")


async def test_check_scope_decides_each_action(services: AppServices) -> None:
    """``_check_scope`` itself: True (the owner), False (nothing here) or a refusal."""
    await stage(services, "dev")
    read = await _token(services, ["alice/dev"], scope="read")
    upload = await _token(services, ["alice/dev"], scope="upload")
    check = services.auth._check_scope
    assert check(str(read["id"]), "read", "alice/dev") is True
    assert check(str(read["id"]), "read", "root/pypi") is False
    assert check(str(upload["id"]), "read", "root/pypi") is False
    assert check(str(upload["id"]), "upload", "alice/dev") is True
    with pytest.raises(Forbidden):
        check(str(read["id"]), "upload", "alice/dev")
    with pytest.raises(Forbidden):
        check(str(upload["id"]), "upload", "root/pypi")
    with pytest.raises(Unauthorized, match="revoked"):
        check("0000000000000000", "read", "alice/dev")


async def test_scope_is_stored_listed_and_checked(services: AppServices) -> None:
    await stage(services, "dev")
    made = await _token(services, ["alice/dev"], scope="read", description="installs")
    await _token(services, ["alice/dev"], description="releases")
    await services.auth.load()  # from the database again, as another worker would
    assert services.auth.scoped[str(made["id"])].scope == "read"
    listed = {t["description"]: t["scope"] for t in services.tokens.list(ALICE, "alice")}
    assert listed == {"installs": "read", "releases": "upload"}
    for bad in ("all", "READ", "", None, ["read"]):
        with pytest.raises(BadRequest, match="'scope' is 'upload'"):
            await _token(services, ["alice/dev"], scope=bad)
