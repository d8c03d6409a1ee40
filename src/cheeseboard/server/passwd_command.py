"""``cheeseboard-server passwd``: set a user's password on the server's host (issue 23), as
devpi's ``devpi-passwd`` does; the server may be running and picks the change up.

The password comes from a prompt (asked twice, not echoed), one line of standard input
(``--password-stdin``) or the first line of a file (``--password-file``): never from the
command line, where other users of the host could read it in the process list.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _fail(message: str) -> None:
    click.echo(f"cheeseboard-server: error: {message}", err=True)
    sys.exit(2)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _user_exists(db_url: str, user: str) -> bool:
    from cheeseboard.store import accounts
    from cheeseboard.store.db import engine_for

    engine = engine_for(db_url)
    try:
        with engine.connect() as conn, conn.begin():
            return accounts.user_id(conn, user) is not None
    finally:
        engine.dispose()


def _password(user: str, from_stdin: bool, from_file: Path | None) -> str:
    if from_stdin and from_file is not None:
        _fail("give one of --password-stdin and --password-file")
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if from_file is not None:
        try:
            return _first_line(from_file.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read --password-file {from_file}: {exc}")
    password: str = click.prompt(
        f"New password for {user}", hide_input=True, confirmation_prompt=True
    )
    return password


@click.command(name="passwd")
@click.option(
    "--datadir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="CHEESEBOARD_DATADIR",
    required=True,
    help="data directory of the user (the server may be running)",
)
@click.option("--database-url", envvar="CHEESEBOARD_DATABASE_URL", default=None)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="read the password from the first line of this file",
)
@click.argument("user")
def passwd_command(
    datadir: Path,
    database_url: str | None,
    password_stdin: bool,
    password_file: Path | None,
    user: str,
) -> None:
    """Set USER's password (e.g. root's, when it is lost); their login tokens and web sessions
    end, and running servers use the new password at once."""
    from sqlalchemy.exc import SQLAlchemyError

    from cheeseboard.ops.datadir import is_initialised
    from cheeseboard.ops.passwd import PasswordError, password_problem, set_password
    from cheeseboard.server.storage_options import checked_database_url
    from cheeseboard.settings import DataDirLayout, SettingsError

    if not is_initialised(datadir):
        _fail(f"{datadir} is not a cheeseboard data directory")
    layout = DataDirLayout(datadir)
    try:
        db_url = checked_database_url(database_url) or layout.sqlite_url
        if not _user_exists(db_url, user):  # before asking for a password in vain
            _fail(f"no user {user!r} in {datadir}")
        password = _password(user, password_stdin, password_file)
        problem = password_problem(password)
        if problem is not None:
            _fail(problem)
        set_password(db_url, user, password, layout.serial)
    except (SettingsError, PasswordError) as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(f"cannot set the password in {datadir}: {exc}")
    click.echo(f"password of {user} set; their earlier login tokens and sessions no longer work")
