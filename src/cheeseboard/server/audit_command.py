"""``cheeseboard-server audit``: the newest audit log entries, read from the database directly
(issue 21), so an operator can read the log with the server stopped, or broken.

One line per entry, oldest first (the newest is last, as in ``tail``): time (UTC), actor (``-``
for anonymous or the server itself), action, target, detail as compact JSON, and the client
address in brackets. ``--json`` prints each entry as one JSON object per line instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from cheeseboard.store.audit_rows import AuditRow


def _fail(message: str) -> None:
    click.echo(f"cheeseboard-server: error: {message}", err=True)
    sys.exit(2)


def entry_line(row: AuditRow) -> str:
    """One entry as a line of text."""
    from cheeseboard.services.audit import compact
    from cheeseboard.store.audit_rows import rfc3339

    parts = [rfc3339(row.at), row.actor or "-", row.action, row.target or "-"]
    detail = compact(row.detail)
    if detail:
        parts.append(detail)
    if row.client:
        parts.append(f"[{row.client}]")
    return "  ".join(parts)


@click.command(name="audit")
@click.option(
    "--datadir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory whose audit log to read (the server may be running)",
)
@click.option("--database-url", envvar="CHEESEBOARD_DATABASE_URL", default=None)
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=1000),
    default=50,
    show_default=True,
    help="the newest this many entries",
)
@click.option("--actor", default=None, help="only entries by this user")
@click.option("--action", default=None, help="only this action (e.g. index-modify)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per entry")
def audit_command(
    datadir: Path,
    database_url: str | None,
    limit: int,
    actor: str | None,
    action: str | None,
    as_json: bool,
) -> None:
    """Show who changed what and when: users, indexes, tokens, releases, blocks, failed
    sign-ins."""
    from sqlalchemy.exc import SQLAlchemyError

    from cheeseboard.ops.datadir import is_initialised
    from cheeseboard.settings import DataDirLayout
    from cheeseboard.store import audit_rows
    from cheeseboard.store.db import engine_for

    if not is_initialised(datadir):
        _fail(f"{datadir} is not a cheeseboard data directory")
    engine = engine_for(database_url or DataDirLayout(datadir).sqlite_url)
    try:
        with engine.connect() as conn, conn.begin():
            rows = audit_rows.read(conn, limit=limit, actor=actor, action=action)
    except SQLAlchemyError as exc:
        _fail(f"cannot read the audit log of {datadir}: {exc}")
        return
    finally:
        engine.dispose()
    for row in reversed(rows):
        if as_json:
            click.echo(json.dumps(row.to_json(), sort_keys=True))
        else:
            click.echo(entry_line(row))
