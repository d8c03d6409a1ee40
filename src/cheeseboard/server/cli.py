"""``cheeseboard-server``: ``init`` a data directory, ``serve`` it.

All errors end here with a one-line message and a non-zero exit, never a traceback.

Start-up time counts (issue 19): what only some commands use is imported inside them. ``init``
needs neither the HTTP stack, nor aiohttp (the S3 client, export/import), nor alembic when the
schema is current; tests/unit/server/test_startup.py holds the line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from cheeseboard import __version__
from cheeseboard.ops.blob_gc import DEFAULT_MIN_AGE
from cheeseboard.ops.datadir import DataDirError, init_datadir, is_initialised
from cheeseboard.server.advisory_commands import advisories_group
from cheeseboard.server.audit_command import audit_command
from cheeseboard.server.dump_commands import export_command, import_command
from cheeseboard.server.passwd_command import passwd_command
from cheeseboard.server.retention_command import retention_options, run_retention
from cheeseboard.services.indexes import DEFAULT_MIRROR_URL
from cheeseboard.settings import OPTIONS, DataDirLayout, Settings, SettingsError, resolve

ROOT_PASSWORD_ENV = "CHEESEBOARD_ROOT_PASSWORD"  # noqa: S105 - a variable name
log = logging.getLogger("cheeseboard.server")


def _fail(message: str) -> None:
    click.echo(f"cheeseboard-server: error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cheeseboard-server")
def main() -> None:
    """Cheeseboard package index server."""


@main.command()
@click.option(
    "--datadir",
    type=click.Path(path_type=Path),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory to create",
)
@click.option(
    "--root-password",
    envvar=ROOT_PASSWORD_ENV,
    help=f"password of the root user (or ${ROOT_PASSWORD_ENV})",
)
@click.option(
    "--mirror-url",
    default=DEFAULT_MIRROR_URL,
    show_default=True,
    envvar="CHEESEBOARD_MIRROR_URL",
    help="upstream simple index of root/pypi",
)
@click.option("--no-root-pypi", is_flag=True, help="do not create the root/pypi mirror")
@click.option(
    "--database-url",
    envvar="CHEESEBOARD_DATABASE_URL",
    default=None,
    help="metadata database (default: SQLite in the data directory)",
)
@click.option(
    "--blob-url",
    envvar="CHEESEBOARD_BLOB_URL",
    default=None,
    help="S3 bucket serve will keep files in (checked here; give it to serve too)",
)
def init(
    datadir: Path,
    root_password: str | None,
    mirror_url: str,
    no_root_pypi: bool,
    database_url: str | None,
    blob_url: str | None,
) -> None:
    """Create a data directory with user root and the root/pypi mirror."""
    from cheeseboard.server.storage_options import checked_blob_url, checked_database_url

    if not root_password:
        _fail(f"--root-password (or ${ROOT_PASSWORD_ENV}) is required")
        return
    if not no_root_pypi and not mirror_url.startswith(("http://", "https://")):
        _fail(f"--mirror-url must be an http(s) URL, got {mirror_url!r}")
    try:
        database_url = checked_database_url(database_url)
        checked_blob_url(blob_url)
    except SettingsError as exc:
        _fail(str(exc))
    try:
        filled = init_datadir(
            datadir, root_password, None if no_root_pypi else mirror_url, database_url
        )
    except DataDirError as exc:
        _fail(str(exc))
        return
    if not filled:
        click.echo(
            f"initialised {datadir}, joining the database another node initialised "
            "(its users, indexes and root password are kept)"
        )
        return
    click.echo(f"initialised {datadir}" + ("" if no_root_pypi else f" (root/pypi -> {mirror_url})"))


def _serve_options(func: Any) -> Any:
    for option in reversed(OPTIONS):
        is_flag = option.default is False or option.default is True
        decl = f"--{option.name}/--no-{option.name}" if is_flag else f"--{option.name}"
        default = shown_default(option.default)
        shown = f" [default: {default}]" if default else ""
        func = click.option(
            decl, default=None, metavar=_metavar(option.default), help=f"{option.help}{shown}"
        )(func)
    return func


def _metavar(default: object) -> str | None:
    """What ``--help`` names an option's value by: the kind of its default (the values stay
    strings for settings.py to convert, with its messages)."""
    if isinstance(default, bool) or default is None:
        return None
    if isinstance(default, int):
        return "INTEGER"
    if isinstance(default, float):
        return "NUMBER"
    return "LIST" if isinstance(default, tuple | list) else None


def shown_default(value: object) -> str:
    """A default as ``--help`` shows it: lists comma-joined, whole floats as integers, nothing
    for None or an empty list."""
    if value is None:
        return ""
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@main.command()
@click.option("--datadir", type=click.Path(path_type=Path), default=None, help="data directory")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    envvar="CHEESEBOARD_CONFIG",
    help="YAML file with option: value pairs",
)
@_serve_options
def serve(datadir: Path | None, config_file: Path | None, **cli: Any) -> None:
    """Serve a data directory (initialising it first if $CHEESEBOARD_ROOT_PASSWORD is set)."""
    given = {name.replace("_", "-"): value for name, value in cli.items()}
    given["datadir"] = datadir
    try:
        settings = resolve(given, config_file=config_file)
        if settings.blob_url:
            _check_blob_url(settings)
    except SettingsError as exc:
        _fail(str(exc))
        return
    run_server(settings)


def _check_blob_url(settings: Settings) -> None:
    """Endpoint, region and credentials of ``--blob-url`` must all be there before serving."""
    from cheeseboard.store.s3 import S3Location  # aiohttp: only for a bucket

    assert settings.blob_url is not None
    try:
        S3Location.from_url(settings.blob_url)
    except ValueError as exc:
        source = settings.sources.get("blob-url", "the settings")
        raise SettingsError(f"--blob-url from {source}: {exc}") from None


def run_server(settings: Settings) -> None:
    """Prepare the data directory (init if asked, migrate) and run the HTTP server."""
    from cheeseboard.server.start import collector_paused

    with collector_paused():  # the app, which the workers inherit (server/start.py)
        from cheeseboard.server.runner import StorageError, run
        from cheeseboard.store.db import SchemaTooNew

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not is_initialised(settings.datadir):
        password = os.environ.get(ROOT_PASSWORD_ENV)
        if not password:
            _fail(
                f"{settings.datadir} is not initialised: run 'cheeseboard-server init --datadir "
                f"{settings.datadir} --root-password ...' or set ${ROOT_PASSWORD_ENV} to let "
                "serve initialise it"
            )
        try:
            init_datadir(settings.datadir, password or "", database_url=settings.database_url)
        except DataDirError as exc:
            _fail(str(exc))
        log.info("initialised %s", settings.datadir)
    for name, source in sorted(settings.sources.items()):
        log.info("setting %s from %s", name, source)
    try:
        run(settings)
    except (StorageError, SchemaTooNew) as exc:
        _fail(str(exc))


@main.command()
@click.option(
    "--datadir",
    type=click.Path(path_type=Path),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory to back up (the server may be running)",
)
@click.option(
    "--copy", "always_copy", is_flag=True, help="copy blobs even where hard links would do"
)
@click.argument("out", type=click.Path(path_type=Path))
def backup(datadir: Path, out: Path, always_copy: bool) -> None:
    """Write a consistent copy of a data directory to OUT, while the server runs."""
    from cheeseboard.ops.backup import BackupError, backup_datadir, progress_on, sigterm_raises

    try:
        with sigterm_raises(), progress_on(sys.stderr) as progress:
            summary = backup_datadir(datadir, out, link=not always_copy, progress=progress)
    except BackupError as exc:
        _fail(str(exc))
        return
    click.echo(f"backed up {datadir} to {out}: {summary.describe()}")


@main.command()
@click.option(
    "--datadir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory to collect (the server may be running)",
)
@click.option("--database-url", envvar="CHEESEBOARD_DATABASE_URL", default=None)
@click.option(
    "--min-age",
    type=click.FloatRange(min=0),
    default=DEFAULT_MIN_AGE,
    show_default=True,
    help="seconds: younger blobs are kept (an upload may be committing); 0 only when stopped",
)
@click.option(
    "--blob-url",
    envvar="CHEESEBOARD_BLOB_URL",
    default=None,
    help="collect this S3 bucket (s3://bucket/prefix?endpoint=...) instead of DATADIR/blobs",
)
@click.option("--dry-run", is_flag=True, help="report what would be removed, remove nothing")
@retention_options
def gc(
    datadir: Path,
    database_url: str | None,
    blob_url: str | None,
    min_age: float,
    dry_run: bool,
    retention: bool,
    mirror_cache_size: str | None,
    config_file: Path | None,
    as_of: str | None,
) -> None:
    """Remove stored files that nothing names (left by crashes, removals, deleted indexes),
    after retention: evict cached mirror files beyond --mirror-cache-size (least recently
    used first) and remove what indexes' cleanup policies name.

    Exits 1 if uploaded files are missing their bytes (they are named in the report).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from cheeseboard.core.release_policy import PolicyError
    from cheeseboard.ops.blob_gc import BlobCollector
    from cheeseboard.store.blobs import BlobStoreError, FileBlobStore
    from cheeseboard.store.db import engine_for
    from cheeseboard.store.s3 import S3Error

    if not is_initialised(datadir):
        _fail(f"{datadir} is not a cheeseboard data directory")
    if retention:
        try:
            kept = run_retention(
                datadir, database_url, blob_url, mirror_cache_size, config_file, as_of, dry_run
            )
        except (SettingsError, PolicyError, OSError, SQLAlchemyError, BlobStoreError) as exc:
            _fail(f"retention in {datadir} stopped: {exc}")
            return
        click.echo(kept.describe(dry_run))
    layout = DataDirLayout(datadir)
    engine = engine_for(database_url or layout.sqlite_url, write=True)
    try:
        if blob_url:
            report = asyncio.run(_collect_bucket(blob_url, engine, min_age, dry_run))
        else:
            collector = BlobCollector(FileBlobStore(layout.blobs), engine, min_age)
            report = collector.run(dry_run=dry_run)
    except (OSError, SQLAlchemyError, S3Error, ValueError) as exc:
        _fail(f"gc of {datadir} stopped: {exc}")
        return
    finally:
        engine.dispose()
    click.echo(f"gc {datadir}: {report.describe(dry_run)}")
    if report.lost_uploads:
        sys.exit(1)


async def _collect_bucket(url: str, engine: Any, min_age: float, dry_run: bool) -> Any:
    from cheeseboard.ops.bucket_gc import BucketCollector
    from cheeseboard.store.s3 import S3Client, S3Location

    async with S3Client(S3Location.from_url(url)) as client:
        return await BucketCollector(client, engine, min_age).run(dry_run=dry_run)


main.add_command(export_command)
main.add_command(import_command)
main.add_command(audit_command)
main.add_command(passwd_command)
main.add_command(advisories_group)

if __name__ == "__main__":
    main()
