"""``cheeseboard-server export`` and ``import``: dumps for backups, moves and migration.

Errors end in one line naming the dump file and record, exit code 2, and change nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cheeseboard.ops.dump.format import HEADER, DumpError

if TYPE_CHECKING:
    from cheeseboard.ops.dump.importer import DumpSource, ImportReport

_DEVPI_INDEX = "dataindex.json"


def _fail(message: str) -> None:
    click.echo(f"cheeseboard-server: error: {message}", err=True)
    sys.exit(2)


class _Progress:
    """Bytes copied so far: a line every few seconds on stderr (a pipe or a terminal)."""

    def __init__(self, verb: str, every: float = 5.0) -> None:
        self.verb = verb
        self.every = every
        self.total = 0
        self.started = self.last = time.monotonic()

    def __call__(self, what: str, size: int) -> None:
        self.total += size
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = self.total / max(now - self.started, 1e-6) / 1e6
            done = f"{self.verb} {self.total / 1e6:,.1f} MB ({rate:.1f} MB/s)"
            click.echo(f"{done}, at {what}", err=True)


def open_dump(path: Path) -> DumpSource:
    """Our own dump, or a devpi-server export directory (``dataindex.json``)."""
    from cheeseboard.ops.dump.importer import CheeseboardDump  # aiohttp: not at start-up

    if (path / HEADER).exists():
        return CheeseboardDump(path)
    if (path / _DEVPI_INDEX).exists():
        from cheeseboard.ops.dump.devpi import DevpiExport

        return DevpiExport(path)
    if not path.is_dir():
        raise DumpError(f"{path} is not a directory")
    raise DumpError(f"{path} holds neither {HEADER} (cheeseboard) nor {_DEVPI_INDEX} (devpi)")


@click.command(name="export")
@click.option(
    "--datadir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory to export",
)
@click.option("--database-url", envvar="CHEESEBOARD_DATABASE_URL", default=None)
@click.option(
    "--include-mirrored-files",
    is_flag=True,
    help="also carry the mirror cache (pages and files of mirror indexes)",
)
@click.argument("out", type=click.Path(path_type=Path))
def export_command(
    datadir: Path, database_url: str | None, include_mirrored_files: bool, out: Path
) -> None:
    """Write the store as a dump directory OUT (users, indexes, releases, files, docs)."""
    from cheeseboard.ops.datadir import is_initialised
    from cheeseboard.ops.dump.export import export_store

    if not is_initialised(datadir):
        _fail(f"{datadir} is not a cheeseboard data directory")
    try:
        header = export_store(
            datadir,
            out,
            database_url=database_url,
            mirrored_files=include_mirrored_files,
            progress=_Progress("exported"),
        )
    except (DumpError, OSError) as error:
        _fail(str(error))
        return
    click.echo(
        f"exported {header.records} records and {header.blobs} files "
        f"({header.blob_bytes / 1e6:,.1f} MB) to {out}"
    )


@click.command(name="import")
@click.option(
    "--datadir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory to create (or to merge into, with --merge)",
)
@click.option("--database-url", envvar="CHEESEBOARD_DATABASE_URL", default=None)
@click.option(
    "--blob-url",
    envvar="CHEESEBOARD_BLOB_URL",
    default=None,
    help="S3 bucket the server keeps files in (s3://bucket/prefix?endpoint=...)",
)
@click.option("--merge", is_flag=True, help="add to an existing store instead of a new one")
@click.option(
    "--allow-upstream-names",
    is_flag=True,
    help="import stage projects whose names a base mirror has (refused otherwise); listed",
)
@click.argument("source", type=click.Path(path_type=Path))
def import_command(
    datadir: Path,
    database_url: str | None,
    blob_url: str | None,
    merge: bool,
    allow_upstream_names: bool,
    source: Path,
) -> None:
    """Load a dump (from export, or a devpi-server export directory) into DATADIR."""
    from cheeseboard.ops.dump.importer import import_dump

    try:
        dump = open_dump(source)
        report = import_dump(
            dump,
            datadir,
            merge=merge,
            database_url=database_url,
            blob_url=blob_url,
            progress=_Progress("imported"),
            allow_upstream_names=allow_upstream_names,
        )
    except (DumpError, OSError) as error:
        _fail(str(error))
        return
    for message in report.shadowing:
        click.echo(f"cheeseboard-server: warning: {message} (--allow-upstream-names)", err=True)
    click.echo(_summary(report, datadir))


def _summary(report: ImportReport, datadir: Path) -> str:
    parts = [f"{count} {kind}(s)" for kind, count in sorted(report.created.items())]
    line = f"imported {', '.join(parts) or 'nothing'} into {datadir} in {report.seconds:.1f} s"
    if report.kept:
        line += f"; kept {len(report.kept)} existing: " + ", ".join(report.kept[:10])
        if len(report.kept) > 10:
            line += ", ..."
    return line
