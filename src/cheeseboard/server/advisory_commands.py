"""``cheeseboard-server advisories import``: load OSV advisories while the server runs or not.

Errors end in one line, exit code 2, and change nothing (the import is one transaction).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cheeseboard.settings import DataDirLayout
from cheeseboard.tls import CABundleError, check_ca_bundle


def _fail(message: str) -> None:
    click.echo(f"cheeseboard-server: error: {message}", err=True)
    sys.exit(2)


@click.group(name="advisories")
def advisories_group() -> None:
    """Security advisories (OSV): vulnerabilities shown, malicious packages blocked."""


@advisories_group.command(name="import")
@click.option(
    "--datadir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory to import into (the server may be running)",
)
@click.option("--database-url", envvar="CHEESEBOARD_DATABASE_URL", default=None)
@click.option(
    "--ca-bundle",
    envvar="CHEESEBOARD_CA_BUNDLE",
    default=None,
    help="PEM file of CAs to trust for an https SOURCE besides the system's",
)
@click.argument("source")
def import_advisories(
    datadir: Path, database_url: str | None, ca_bundle: str | None, source: str
) -> None:
    """Import OSV JSON from SOURCE: a directory, a zip (OSV's all.zip) or an http(s) URL.

    MAL- entries block the packages they name; the others fill the PyPI JSON API's
    vulnerabilities and the web pages. Importing the same feed again changes nothing.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from cheeseboard.ops.advisories import AdvisorySourceError, import_offline
    from cheeseboard.ops.datadir import is_initialised

    if not is_initialised(datadir):
        _fail(f"{datadir} is not a cheeseboard data directory")
    layout = DataDirLayout(datadir)
    try:
        if ca_bundle:
            ca_bundle = check_ca_bundle(ca_bundle)
    except CABundleError as error:
        _fail(f"--ca-bundle: {error}")
    try:
        report = import_offline(source, database_url or layout.sqlite_url, layout.serial, ca_bundle)
    except (AdvisorySourceError, OSError, SQLAlchemyError) as error:
        _fail(f"advisories import from {source} stopped: {error}")
        return
    click.echo(f"{report.describe()} ({report.seconds:.1f} s)")
