"""``cheeseboard``: the command-line client; ``main`` is the single error boundary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cheeseboard.client import commands
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError


class Session:
    """What every command gets: the loaded configuration and the output."""

    def __init__(self, json_mode: bool) -> None:
        self.out = Output(json_mode=json_mode)
        self.config = ClientConfig.load()
        self.config.prompt = lambda text: str(click.prompt(text, hide_input=True, err=True))


pass_session = click.make_pass_decorator(Session)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "json_mode", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def cli(ctx: click.Context, json_mode: bool) -> None:
    """Talk to a cheeseboard (or devpi) server: users, indexes, uploads."""
    ctx.obj = Session(json_mode)


@cli.command()
@click.argument("target")
@pass_session
def use(session: Session, target: str) -> None:
    """Use a server URL, optionally with /user/index (or just user/index)."""
    commands.use(session.config, session.out, target)


@cli.command()
@click.argument("user")
@click.option("--password", help="Password (prompted for on a terminal if omitted).")
@pass_session
def login(session: Session, user: str, password: str | None) -> None:
    """Log in and store a token."""
    if password is None:
        password = session.config.password if session.config.user == user else None
    if password is None:
        if not session.config.interactive:
            raise ClientError("no password given", "pass --password or set CHEESEBOARD_PASSWORD")
        password = str(click.prompt("password", hide_input=True, err=True))
    commands.login(session.config, session.out, user, password)


@cli.command()
@pass_session
def logoff(session: Session) -> None:
    """Forget the stored login."""
    commands.logoff(session.config, session.out)


@cli.command()
@click.option("-c", "--create", "create", metavar="NAME", help="Create user NAME.")
@click.option("-l", "--list", "list_", is_flag=True, help="List users.")
@click.argument("pairs", nargs=-1)
@pass_session
def user(session: Session, create: str | None, list_: bool, pairs: tuple[str, ...]) -> None:
    """Create (password=… email=…) or list users."""
    if create:
        commands.user_create(session.config, session.out, create, commands.parse_pairs(pairs))
    elif list_:
        commands.user_list(session.config, session.out)
    else:
        raise click.UsageError("pass -c NAME or -l")


@cli.command()
@click.option("-c", "--create", "create", is_flag=True, help="Create the index NAME.")
@click.option("-l", "--list", "list_", is_flag=True, help="List indexes [of USER].")
@click.argument("args", nargs=-1)
@pass_session
def index(session: Session, create: bool, list_: bool, args: tuple[str, ...]) -> None:
    """Create (-c NAME k=v…), modify (NAME k=v k+=v k-=v…), show (NAME) or list (-l) indexes."""
    config, out = session.config, session.out
    if list_:
        commands.index_list(config, out, args[0] if args else None)
        return
    if not args:
        raise click.UsageError("pass an index NAME (or -l)")
    name, rest = args[0], list(args[1:])
    if create:
        commands.index_create(config, out, name, commands.parse_pairs(rest))
    elif rest:
        commands.index_modify(config, out, name, rest)
    else:
        commands.index_show(config, out, name)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_session
def upload(session: Session, paths: tuple[Path, ...]) -> None:
    """Upload wheels and sdists (files or directories) to the current index."""
    commands.upload(session.config, session.out, list(paths))


@cli.command(name="list")
@click.argument("project", required=False)
@pass_session
def list_(session: Session, project: str | None) -> None:
    """List the projects of the current index, or the files of PROJECT."""
    commands.list_projects(session.config, session.out, project)


@cli.command()
@click.argument("spec")
@click.option("-f", "--force", is_flag=True, help="Remove from a non-volatile index too.")
@pass_session
def remove(session: Session, spec: str, force: bool) -> None:
    """Remove a project (NAME) or a version (NAME==VERSION) from the current index."""
    commands.remove(session.config, session.out, spec, force)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; a ClientError becomes a red message and a hint, exit code 1."""
    json_mode = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="cheeseboard", standalone_mode=False)
    except ClientError as error:
        Output(json_mode=json_mode).error(error.message, error.hint)
        sys.exit(1)
    except click.exceptions.Abort:
        Output().error("aborted")
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    return 0
