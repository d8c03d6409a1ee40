"""Helpers for the in-process service tests: identities, a user with a stage, uploads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from argon2 import PasswordHasher

from cheeseboard.core.pages import ProjectPage
from cheeseboard.core.uploads import parse_upload_form
from cheeseboard.services.auth import Identity
from cheeseboard.services.container import AppServices
from cheeseboard.services.pages import CachedPage
from cheeseboard.services.uploads import Uploaded
from cheeseboard.store.records import IndexRecord
from tests.support.packages import Dist

ROOT = Identity("root")
ALICE = Identity("alice")
ALICE_PASSWORD = "alice-password"
# The users stage() creates get a cheap argon2 hash (set by root as ``pwhash``): a default one
# costs about 0.2 s to make and to check on this machine.
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(ALICE_PASSWORD)
EXPIRY = 0.2
"""Seconds mirrored pages stay fresh under the ``expiring_services`` fixture (an index's own
setting must be a whole number of seconds; the server-wide default is a float)."""


def mirror(app: AppServices) -> IndexRecord:
    index = app.indexes.get("root", "pypi")
    assert index is not None
    return index


async def new_user(app: AppServices, name: str) -> Identity:
    """A user created by root, with the password ALICE_PASSWORD (a cheap hash of it)."""
    await app.accounts.create_user(ROOT, name, {"pwhash": CHEAP_HASH})
    return Identity(name)


async def stage(
    app: AppServices, name: str = "dev", user: str = "alice", **config: Any
) -> IndexRecord:
    """``user/name`` (volatile, no bases unless given), created by root; the user too if new."""
    if app.auth.user(user) is None:
        await new_user(app, user)
    body: dict[str, Any] = {"type": "stage", "bases": "", "volatile": True, **config}
    return await app.accounts.create_index(ROOT, user, name, body)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


def _form(dist: Dist, fields: Mapping[str, str]) -> dict[str, list[str]]:
    form = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": dist.name,
        "version": dist.version,
        "filetype": "bdist_wheel" if dist.kind == "wheel" else "sdist",
        "pyversion": "py3" if dist.kind == "wheel" else "source",
        "metadata_version": "2.1",
        "sha256_digest": dist.sha256,
        **fields,
    }
    return {key: [value] for key, value in form.items()}


async def upload(
    app: AppServices,
    index: IndexRecord,
    dist: Dist,
    identity: Identity = ALICE,
    data: bytes | None = None,
    **fields: str,
) -> Uploaded:
    """Upload ``dist`` (or other bytes under its name) as twine would, through UploadService."""
    form = parse_upload_form(_form(dist, fields))
    body = dist.path.read_bytes() if data is None else data
    return await app.uploads.upload(identity, index, form, dist.filename, _chunks(body))


def filenames(cached: CachedPage) -> list[str]:
    """The file names a project page lists, in its order."""
    page = cached.page
    assert isinstance(page, ProjectPage), "a project page, not a project list"
    return [link.filename for link in page.files]
