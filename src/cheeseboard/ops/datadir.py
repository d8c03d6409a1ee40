"""Creating and checking a data directory.

``init`` builds the whole directory beside its final place and renames it in, so a crash during init
never leaves a half-initialised directory that ``serve`` would accept.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import Connection

from cheeseboard import __version__
from cheeseboard.core.changes import ChangeKind
from cheeseboard.services.indexes import DEFAULT_MIRROR_URL
from cheeseboard.services.users import hash_password
from cheeseboard.settings import DataDirLayout, staging_dir
from cheeseboard.store import accounts, changelog_rows, info
from cheeseboard.store.db import Database, migrate


class DataDirError(Exception):
    """Raised when a data directory cannot be created or used; the message says what to do."""


def is_initialised(datadir: Path) -> bool:
    return DataDirLayout(datadir).marker.is_file()


def _check_target(datadir: Path) -> None:
    if is_initialised(datadir):
        raise DataDirError(f"{datadir} is already initialised")
    if datadir.exists() and (not datadir.is_dir() or any(datadir.iterdir())):
        raise DataDirError(f"{datadir} exists and is not an empty directory; refusing to use it")


def _fill(conn: Connection, root_pwhash: str, mirror_url: str | None) -> bool:
    """Create root and root/pypi; False if the database is filled already (another node's)."""
    if info.get_info(conn, "uuid") is not None:
        return False
    root_id = accounts.create_user(conn, "root", root_pwhash)
    if mirror_url is not None:
        config = {
            "type": "mirror",
            "volatile": False,
            "title": "PyPI",
            "mirror_url": mirror_url,
            "mirror_web_url_fmt": "https://pypi.org/project/{name}/",
        }
        accounts.create_index(conn, root_id, "pypi", "mirror", config)
    changelog_rows.log_change(conn, None, None, ChangeKind.INDEX_CREATED)
    info.set_info(conn, "uuid", secrets.token_hex(16))
    return True


async def _fill_database(url: str, root_pwhash: str, mirror_url: str | None) -> bool:
    db = Database(url)
    try:
        return await db.write(_fill, root_pwhash, mirror_url)
    finally:
        await db.close()


def init_datadir(
    datadir: Path,
    root_password: str,
    mirror_url: str | None = DEFAULT_MIRROR_URL,
    database_url: str | None = None,
) -> bool:
    """Create ``datadir`` with database, blobs, secret, user root and (unless None) root/pypi.

    A node joining a PostgreSQL database that another node initialised gets its local directory
    only: users, indexes and the shared secret are already in the database. Returns False then.
    """
    if not root_password:
        raise DataDirError("the root password must not be empty")
    filled = True

    def populate(_staging: Path, url: str) -> None:
        nonlocal filled
        # The hash was computed while the schema was created (argon2 releases the GIL); it is
        # ready before the write transaction starts, which therefore never waits for it.
        filled = asyncio.run(_fill_database(url, hashing.result(), mirror_url))

    _check_target(datadir.absolute())  # refuse before hashing (build_datadir checks again)
    # The root password's argon2 hash (argon2-cffi's default cost, about 0.1 s of CPU on a quiet
    # core: a security parameter, kept) overlaps the migrations instead of following them.
    with ThreadPoolExecutor(1, thread_name_prefix="init-hash") as pool:
        hashing: Future[str] = pool.submit(hash_password, root_password)
        try:
            build_datadir(datadir, populate, database_url)
        except OSError as exc:  # a parent not writable, a file in the way, a full disk
            where = exc.filename or datadir
            raise DataDirError(f"cannot create {datadir}: {exc.strerror or exc} ({where})") from exc
    return filled


def build_datadir(
    datadir: Path, populate: Callable[[Path, str], None], database_url: str | None = None
) -> None:
    """Create a data directory beside ``datadir``, let ``populate(staging, database_url)`` fill
    it (the schema is there already), then rename it in; on any error nothing is left behind."""
    datadir = datadir.absolute()
    _check_target(datadir)
    datadir.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(datadir, "init")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    layout = DataDirLayout(staging)
    try:
        layout.blobs.mkdir()
        layout.locks.mkdir()
        fd = os.open(layout.secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        # A database elsewhere (PostgreSQL) is filled directly; SQLite lives in the staging dir
        # and moves with it.
        final_sqlite = DataDirLayout(datadir).sqlite_url
        url = database_url or layout.sqlite_url
        migrate(url)
        populate(staging, url)
        marker = {"version": __version__, "created": time.time()}
        if database_url and database_url != final_sqlite:
            marker["database_url"] = "external"
        layout.marker.write_text(json.dumps(marker))
        os.replace(staging, datadir)  # replaces an empty directory atomically
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
