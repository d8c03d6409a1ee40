"""Start-up cost (issue 19): what ``init`` and ``serve`` import, and the migration check.

Speed targets live in the benchmark (``make bench``), not in timed tests. These tests hold the
causes instead: each heavy module below costs tens of milliseconds to import on the shared
2-core machine, and a start that needs none of them must not import them.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from cheeseboard.settings import DataDirLayout
from cheeseboard.store.db import SchemaTooNew, head_revision, migrate, schema_is_current

# Used only by some commands or requests; ``init`` needs none of them. (It needs alembic to
# create the schema, and alembic imports pygments through mako: not on this list.)
NOT_FOR_INIT = {
    "aiohttp",  # upstream and S3 clients
    "granian",
    "starlette",
    "jinja2",  # web UI
    "readme_renderer",
    "docutils",
    "nh3",
    "yaml",  # --config only
    "multipart",
}
# What the serving parent imports before it forks the workers (they inherit it): the app, but
# not the migration machinery on a current schema, nor README rendering or YAML, nor what only
# a request for something uncached (aiohttp: the upstream and S3 clients) or a browser (Jinja2:
# the web UI) needs. aiohttp alone was about a fifth of the start (issue 19).
NOT_FOR_SERVE = {
    "alembic",
    "mako",
    "readme_renderer",
    "docutils",
    "nh3",
    "yaml",
    "aiohttp",
    "yarl",
    "multidict",
    "jinja2",
}

_REPORT_MODULES = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted({m.split(".")[0] for m in sys.modules}))))
"""


def _modules_after(code: str) -> set[str]:
    """Top-level packages imported by a fresh interpreter that runs ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES + code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return set(loaded)


def _init(datadir: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cheeseboard.server.cli",
            "init",
            "--datadir",
            str(datadir),
            "--root-password",
            "pw",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_init_imports_neither_the_http_stack_nor_the_clients(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    loaded = _modules_after(
        "from cheeseboard.server.cli import main\n"
        f"main(['init', '--datadir', {str(datadir)!r}, '--root-password', 'pw'],"
        " standalone_mode=False)\n"
    )
    assert DataDirLayout(datadir).marker.is_file()
    assert "sqlalchemy" in loaded  # the probe sees what init really used
    assert not loaded & NOT_FOR_INIT, sorted(loaded & NOT_FOR_INIT)


def test_serve_parent_on_a_current_schema_skips_alembic(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    _init(datadir)
    url = DataDirLayout(datadir).sqlite_url
    loaded = _modules_after(
        "import cheeseboard.server.cli, cheeseboard.server.runner\n"
        "from cheeseboard.store.db import migrate\n"
        f"migrate({url!r})\n"
    )
    assert "starlette" in loaded  # the app is imported before the fork, as the workers need
    assert not loaded & NOT_FOR_SERVE, sorted(loaded & NOT_FOR_SERVE)


def test_the_entry_point_pauses_the_collector_only_for_imports() -> None:
    """server/start.py: the collector is off while the command line is imported, on again
    before any command runs, and left off if it was off before (an embedding program's choice).
    What was made meanwhile is frozen: the collector's first run does not walk it."""
    import gc

    from cheeseboard.server.start import collector_paused

    assert gc.isenabled()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            assert not gc.isenabled()
            made = [[i] for i in range(10_000)]  # tracked containers, as imports make
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(made)
        assert gc.get_count()[0] < len(made)  # nothing left for the next collection to walk
        gc.disable()
        try:
            with collector_paused():
                pass
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        gc.unfreeze()  # this test process's objects go back to the collector
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc, sys\n"
            "from cheeseboard.server import start\n"
            "sys.argv = ['cheeseboard-server', '--version']\n"
            "try:\n    start.main()\nexcept SystemExit:\n    pass\n"
            "print(gc.isenabled())",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "cheeseboard-server" in probe.stdout
    assert probe.stdout.strip().splitlines()[-1] == "True"


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("cheeseboard.store") / "migrations")
    )
    return config


def test_head_revision_is_alembics_head() -> None:
    assert ScriptDirectory.from_config(_alembic_config()).get_heads() == [head_revision()]


def test_migrate_creates_an_empty_database_then_finds_it_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert not schema_is_current(url)  # no alembic_version table yet
    migrate(url)
    assert schema_is_current(url)
    migrate(url)  # a no-op now
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(),)
        ]


def test_migrate_upgrades_an_older_revision(tmp_path: Path) -> None:
    """A stored revision below the head is not current: alembic runs the rest."""
    from alembic import command
    from sqlalchemy import create_engine

    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_revision(head_revision())
    assert isinstance(head.down_revision, str)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    with engine.begin() as connection:  # the schema as the previous release left it
        config.attributes["connection"] = connection
        command.upgrade(config, head.down_revision)
    engine.dispose()
    assert not schema_is_current(url)
    migrate(url)
    assert schema_is_current(url)


def test_migrate_refuses_a_newer_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfacecafe'")
    assert not schema_is_current(url)
    with pytest.raises(SchemaTooNew):
        migrate(url)
