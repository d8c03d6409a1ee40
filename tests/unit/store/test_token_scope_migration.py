"""Migration 0007: tokens made before scopes existed keep doing what they did (``upload``).

A SQLite store at revision 0006 (made by the migrations themselves, rows written through the
tables as the database describes them), then ``migrate`` as ``serve`` runs it at start.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, insert

from cheeseboard.services.users import hash_password
from cheeseboard.store.db import head_revision, migrate
from cheeseboard.store.tokens import TokenRecord, create_token, load_tokens


def _at_0006(url: str) -> None:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("cheeseboard.store") / "migrations")
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0006")
    with engine.begin() as conn:
        meta = MetaData()
        meta.reflect(bind=conn)
        assert "scope" not in meta.tables["tokens"].columns
        now = time.time()
        user_id = conn.execute(
            insert(meta.tables["users"]).values(
                name="ci", pwhash=hash_password("ci-password"), uid="u" * 32, created=now
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            insert(meta.tables["tokens"]).values(
                id="old0000000000000",
                user_id=user_id,
                description="made before scopes",
                indexes=["ci/stable"],
                created=now,
                expires=now + 3600,
            )
        )
    engine.dispose()


def test_tokens_made_before_0007_keep_the_upload_scope(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    _at_0006(url)
    migrate(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            assert revision == head_revision()
            (old,) = load_tokens(conn)
            assert (old.id, old.indexes) == ("old0000000000000", ("ci/stable",))
            assert old.scope == "upload"
            user_id = conn.exec_driver_sql("SELECT id FROM users WHERE name = 'ci'").scalar()
            assert isinstance(user_id, int)
            now = time.time()
            new = TokenRecord("new0000000000000", "ci", "", ("ci/stable",), now, now + 60, "read")
            create_token(conn, new, user_id)
            scopes = {token.id: token.scope for token in load_tokens(conn)}
        assert scopes == {"old0000000000000": "upload", "new0000000000000": "read"}
    finally:
        engine.dispose()
