"""Retention inside ``cheeseboard-server gc``: the cache cap and the indexes' cleanup policies,
run with the server's own services (services/retention.py), so removals go through the release
service and the audit log exactly as in the server's scheduled runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cheeseboard.core.release_policy import parse_time
from cheeseboard.settings import resolve

if TYPE_CHECKING:  # the services (aiohttp, the HTTP stack) load only when gc runs
    from cheeseboard.services.retention import RetentionReport


def retention_options(func: click.decorators.FC) -> click.decorators.FC:
    """The options ``gc`` takes for retention."""
    options = [
        click.option(
            "--retention/--no-retention",
            default=True,
            show_default=True,
            help="also evict cached mirror files beyond --mirror-cache-size and remove the "
            "releases that indexes' cleanup policies (keep_dev_releases, max_release_age) name",
        ),
        click.option(
            "--mirror-cache-size",
            envvar="CHEESEBOARD_MIRROR_CACHE_SIZE",
            default=None,
            help="cap on cached mirror bytes (500M, 20G; default: the server's setting, else none)",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            default=None,
            help="the server's YAML config (for mirror_cache_size)",
        ),
        click.option(
            "--as-of",
            default=None,
            metavar="TIME",
            help="apply max_release_age as if it were this RFC 3339 time (preview with --dry-run)",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_retention(
    datadir: Path,
    database_url: str | None,
    blob_url: str | None,
    cache_size: str | None,
    config_file: Path | None,
    as_of: str | None,
    dry_run: bool,
) -> RetentionReport:
    """One retention run over the data directory (the server may be running); raises
    SettingsError, PolicyError or the store's errors."""
    from cheeseboard.services.container import open_services
    from cheeseboard.services.retention import RetentionService
    from cheeseboard.store.db import migrate

    now = parse_time(as_of, "--as-of") if as_of else None
    cli = {
        "datadir": datadir,
        "database-url": database_url,
        "blob-url": blob_url,
        "mirror-cache-size": cache_size,
    }
    settings = resolve(cli, config_file=config_file)
    migrate(settings.db_url)  # a data directory the server has not upgraded yet

    async def run() -> RetentionReport:
        async with open_services(settings) as services:
            return await RetentionService.of(services).run(dry_run=dry_run, now=now)

    return asyncio.run(run())
