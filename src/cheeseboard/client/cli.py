"""``cheeseboard``: the command-line client; ``main`` is the single error boundary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cheeseboard import __version__
from cheeseboard.client import commands, groups, guard, publish, publishers, releases, tokens
from cheeseboard.client import install as installer
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError


class Session:
    """What every command gets: the loaded configuration and the output."""

    def __init__(self, json_mode: bool) -> None:
        self.out = Output(json_mode=json_mode)
        self.config = ClientConfig.load()
        self.config.prompt = lambda text: str(click.prompt(text, hide_input=True, err=True))

    def ask_secret(self, text: str, hint: str) -> str:
        """A hidden prompt on a terminal; without one, an error saying what to pass instead."""
        if not self.config.interactive:
            raise ClientError(f"no terminal to ask for the {text}", hint)
        return str(click.prompt(text, hide_input=True, err=True))

    def confirm(self, question: str, yes: bool) -> None:
        """Ask before destroying something; without a terminal, ``-y`` is required."""
        if yes:
            return
        if not self.config.interactive:
            raise ClientError(f"not confirmed: {question}", "pass -y to confirm without a prompt")
        if not click.confirm(question, err=True):
            raise click.exceptions.Abort


pass_session = click.make_pass_decorator(Session)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="cheeseboard")
@click.option("--json", "json_mode", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def cli(ctx: click.Context, json_mode: bool) -> None:
    """Talk to a cheeseboard (or devpi) server: users, indexes, uploads."""
    ctx.obj = Session(json_mode)


@cli.command(short_help="Show or set the server and current index; -l lists indexes.")
@click.argument("target", required=False)
@click.option("-l", "--list", "list_", is_flag=True, help="List the server's indexes.")
@pass_session
def use(session: Session, target: str | None, list_: bool) -> None:
    """Use a server URL, optionally with /user/index (or just user/index); no TARGET shows
    the current one."""
    if target:
        commands.use(session.config, session.out, target)
    if list_:
        commands.index_list(session.config, session.out, None)
    elif not target:
        commands.show_current(session.config, session.out)


@cli.command(short_help="Log in and store a token (never the password).")
@click.argument("user", required=False)
@click.option("--password", help="Password (prompted for on a terminal if omitted).")
@click.option("--sso", is_flag=True, help="Sign in through the server's single sign-on (OIDC).")
@click.option("--no-browser", is_flag=True, help="With --sso: only print the URL to open.")
@click.option(
    "--timeout", type=click.FloatRange(1, 3600), default=300, help="With --sso: seconds to wait."
)
@pass_session
def login(
    session: Session,
    user: str | None,
    password: str | None,
    sso: bool,
    no_browser: bool,
    timeout: float,
) -> None:
    """Log in and store a token: USER with a password, or --sso through a browser."""
    if sso:
        from cheeseboard.client import sso as single_sign_on

        single_sign_on.login_sso(session.config, session.out, timeout, not no_browser)
        return
    if user is None:
        raise ClientError("which user?", "pass USER (and --password), or --sso")
    if password is None:
        password = session.config.password if session.config.user == user else None
    if password is None:
        password = session.ask_secret(
            f"password for {user}", "pass --password or set CHEESEBOARD_PASSWORD"
        )
    commands.login(session.config, session.out, user, password)


@cli.command(short_help="Forget the stored login.")
@pass_session
def logoff(session: Session) -> None:
    """Forget the stored login."""
    commands.logoff(session.config, session.out)


@cli.command(short_help="Create, modify, delete or list users.")
@click.option("-c", "--create", "create", metavar="NAME", help="Create user NAME.")
@click.option("-m", "--modify", "modify", metavar="NAME", help="Modify user NAME.")
@click.option("--delete", "delete", metavar="NAME", help="Delete user NAME and their indexes.")
@click.option("-l", "--list", "list_", is_flag=True, help="List users.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@click.argument("pairs", nargs=-1)
@pass_session
def user(
    session: Session,
    create: str | None,
    modify: str | None,
    delete: str | None,
    list_: bool,
    yes: bool,
    pairs: tuple[str, ...],
) -> None:
    """Create (-c NAME password=… email=…), modify (-m NAME key=value…), delete or list users."""
    config, out = session.config, session.out
    if create:
        commands.user_create(config, out, create, commands.parse_pairs(pairs))
    elif modify:
        commands.user_modify(config, out, modify, commands.parse_pairs(pairs))
    elif delete:
        session.confirm(f"delete user {delete} and all their indexes?", yes)
        commands.user_delete(config, out, delete)
    elif list_:
        commands.user_list(config, out)
    else:
        raise click.UsageError("pass -c NAME, -m NAME, --delete NAME or -l")


@cli.command(short_help="Manage local groups (root): :group:NAME in ACLs.")
@click.argument("name", required=False)
@click.option("-c", "--create", is_flag=True, help="Create NAME (or set its --description).")
@click.option("--description", metavar="TEXT", help="What the group is for.")
@click.option("-a", "--add", "add", metavar="USER", multiple=True, help="Add a member.")
@click.option("-r", "--remove", "remove", metavar="USER", multiple=True, help="Remove one.")
@click.option("--delete", is_flag=True, help="Delete group NAME.")
@click.option("-l", "--list", "list_", is_flag=True, help="List groups.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@pass_session
def group(
    session: Session,
    name: str | None,
    create: bool,
    description: str | None,
    add: tuple[str, ...],
    remove: tuple[str, ...],
    delete: bool,
    list_: bool,
    yes: bool,
) -> None:
    """List (-l), show NAME, create (-c NAME), change members (NAME -a USER -r USER) or
    delete (NAME --delete) local groups; `:group:NAME` in acl_upload, acl_read and
    --restrict-modify names their members."""
    config, out = session.config, session.out
    if list_:
        groups.group_list(config, out)
        return
    if name is None:
        raise click.UsageError("pass -l, or a group NAME")
    if delete:
        session.confirm(f"delete group {name}?", yes)
        groups.group_delete(config, out, name)
        return
    if create or description is not None:
        groups.group_create(config, out, name, description)
    if add or remove:
        groups.group_members(config, out, name, list(add), list(remove))
    if not (create or description is not None or add or remove):
        groups.group_show(config, out, name)


@cli.command(short_help="Change a password (yours by default).")
@click.argument("name", required=False)
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
@pass_session
def passwd(session: Session, name: str | None, password_stdin: bool) -> None:
    """Change the password of NAME (default: the logged-in user)."""
    who = name or session.config.user
    if not who:
        raise ClientError("whose password?", "log in first or pass a user NAME")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif session.config.interactive:
        password = str(
            click.prompt(
                f"new password for {who}", hide_input=True, confirmation_prompt=True, err=True
            )
        )
    else:
        raise ClientError("no terminal to ask for the new password", "pass --password-stdin")
    commands.passwd(session.config, session.out, who, password)


@cli.command(short_help="Create, modify, show, delete or list indexes.")
@click.option("-c", "--create", "create", is_flag=True, help="Create the index NAME.")
@click.option("--delete", "delete", is_flag=True, help="Delete the index NAME.")
@click.option("-l", "--list", "list_", is_flag=True, help="List indexes [of USER].")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@click.argument("args", nargs=-1)
@pass_session
def index(
    session: Session, create: bool, delete: bool, list_: bool, yes: bool, args: tuple[str, ...]
) -> None:
    """Create (-c NAME k=v…), modify (NAME k=v k+=v k-=v…), show (NAME), delete (--delete NAME)
    or list (-l [USER]) indexes."""
    config, out = session.config, session.out
    if list_:
        commands.index_list(config, out, args[0] if args else None)
        return
    if not args:
        raise click.UsageError("pass an index NAME (or -l)")
    name, rest = args[0], list(args[1:])
    if create:
        commands.index_create(config, out, name, commands.parse_pairs(rest))
    elif delete:
        if rest:
            raise click.UsageError("--delete takes only the index NAME")
        session.confirm(f"delete index {commands.qualify(config, name)} and all its files?", yes)
        commands.index_delete(config, out, name)
    elif rest:
        commands.index_modify(config, out, name, rest)
    else:
        commands.index_show(config, out, name)


@cli.command(short_help="Upload files, or build the current project and upload it.")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--project",
    type=click.Path(path_type=Path, file_okay=False),
    help="Build this project directory (default: the current one) when no PATHS are given.",
)
@click.option("--no-isolation", is_flag=True, help="Build without an isolated environment.")
@pass_session
def upload(
    session: Session, paths: tuple[Path, ...], project: Path | None, no_isolation: bool
) -> None:
    """Upload wheels, sdists and NAME-VERSION.doc.zip files (or directories of them) to the
    current index; without PATHS, build the project with `python -m build` and upload that."""
    publish.upload(session.config, session.out, list(paths), project, not no_isolation)


@cli.command(name="list", short_help="List projects, or the files of one project.")
@click.argument("project", required=False)
@pass_session
def list_(session: Session, project: str | None) -> None:
    """List the projects of the current index, or the files of PROJECT."""
    releases.list_projects(session.config, session.out, project)


@cli.command(short_help="Remove a project or one version.")
@click.argument("spec")
@click.option("-f", "--force", is_flag=True, help="Remove from a non-volatile index too.")
@pass_session
def remove(session: Session, spec: str, force: bool) -> None:
    """Remove a project (NAME) or a version (NAME==VERSION) from the current index."""
    releases.remove(session.config, session.out, spec, force)


@cli.command(name="project-status", short_help="Show or set a project's PEP 792 status.")
@click.argument("project")
@click.argument("status", required=False, type=click.Choice(releases.PROJECT_STATUSES))
@click.option("--reason", metavar="TEXT", help="Why (shown to installers with the status).")
@pass_session
def project_status(session: Session, project: str, status: str | None, reason: str | None) -> None:
    """Show the status of PROJECT on the current index, or set it to STATUS (the index owner or
    root): archived and deprecated are shown to installers; quarantined also hides its files
    and refuses their downloads; active clears it."""
    releases.project_status(session.config, session.out, project, status, reason)


@cli.command(short_help="Exempt a release from the cooldown; -l lists exemptions.")
@click.argument("args", nargs=-1)
@click.option("--reason", metavar="TEXT", help="Why (required to add; kept with the entry).")
@click.option("--expires", metavar="TIME|AGE", help="When it ends: 2026-12-31T00:00:00Z or 2d.")
@click.option("--remove", "remove_", metavar="PROJECT[==VERSION]", help="Remove this exemption.")
@click.option("-l", "--list", "list_", is_flag=True, help="List the exemptions.")
@pass_session
def exempt(
    session: Session,
    args: tuple[str, ...],
    reason: str | None,
    expires: str | None,
    remove_: str | None,
    list_: bool,
) -> None:
    """Let PROJECT (every version) or PROJECT==VERSION through the cooldown (min_release_age,
    release_cutoff) of INDEX (default: the current one): `exempt [INDEX] PROJECT[==VERSION]
    --reason TEXT [--expires TIME|AGE]`, `exempt [INDEX] --remove PROJECT[==VERSION]`,
    `exempt [INDEX] -l`. The index owner or root; the server records who added it and when."""
    config, out = session.config, session.out
    if list_ or remove_:
        if len(args) > 1:
            raise click.UsageError("-l and --remove take at most an INDEX")
        index_name = args[0] if args else None
        if remove_:
            guard.exempt_remove(config, out, index_name, remove_)
        else:
            guard.exempt_list(config, out, index_name)
        return
    if not 1 <= len(args) <= 2:
        raise click.UsageError("pass [INDEX] PROJECT[==VERSION] (or -l, or --remove)")
    if reason is None:
        raise click.UsageError("an exemption needs --reason TEXT")
    index_name, entry = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    guard.exempt_add(config, out, index_name, entry, reason, expires)


@cli.command(short_help="Block a project, version range or file; -l lists blocks.")
@click.argument("spec", required=False)
@click.option("--reason", metavar="TEXT", help="Why (required; shown to whoever is refused).")
@click.option("--filename", metavar="NAME", help="Block the file of this name.")
@click.option("--sha256", metavar="HEX", help="Block the file with this SHA256 digest.")
@click.option("--index", "index_name", metavar="USER/INDEX", help="Not the current index.")
@click.option("--server-wide", is_flag=True, help="Block on every index (root only).")
@click.option("-l", "--list", "list_", is_flag=True, help="List the blocks.")
@pass_session
def block(
    session: Session,
    spec: str | None,
    reason: str | None,
    filename: str | None,
    sha256: str | None,
    index_name: str | None,
    server_wide: bool,
    list_: bool,
) -> None:
    """Block SPEC (PROJECT, PROJECT==VERSION or a range such as 'PROJECT<2,>=1'), a --filename
    or a --sha256 on the current index and every index inheriting it (the owner or root), or on
    the whole server (--server-wide, root). Blocked files leave the index pages and their
    downloads get 403 with the reason."""
    config, out = session.config, session.out
    if list_:
        if spec or filename or sha256:
            raise click.UsageError("-l takes no SPEC, --filename or --sha256")
        guard.block_list(config, out, index_name, server_wide)
        return
    if reason is None:
        raise click.UsageError("a block needs --reason TEXT")
    body = guard.block_body(spec, filename, sha256, reason)
    guard.block(config, out, body, index_name, server_wide)


@cli.command(short_help="Remove a block by its id.")
@click.argument("block_id", metavar="ID")
@click.option("--index", "index_name", metavar="USER/INDEX", help="Not the current index.")
@click.option("--server-wide", is_flag=True, help="A server-wide block (root only).")
@pass_session
def unblock(session: Session, block_id: str, index_name: str | None, server_wide: bool) -> None:
    """Remove the block ID (see `cheeseboard block -l`) from the current index, or from the
    server-wide ones."""
    guard.unblock(session.config, session.out, block_id, index_name, server_wide)


@cli.command(short_help="Copy a release to another index or to a .pypirc repository.")
@click.argument("spec")
@click.argument("target")
@click.option("--index", "source", metavar="USER/INDEX", help="Push from here, not the current.")
@click.option(
    "--pypirc",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path.home() / ".pypirc",
    show_default=True,
    help="Where pypi:REPOSITORY targets are looked up.",
)
@pass_session
def push(session: Session, spec: str, target: str, source: str | None, pypirc: Path) -> None:
    """Push NAME==VERSION to another index (USER/INDEX) or to pypi:REPOSITORY from .pypirc."""
    releases.push(session.config, session.out, spec, target, source, pypirc)


@cli.command(short_help="Fetch projects from upstream now.")
@click.argument("names", nargs=-1, required=True)
@pass_session
def refresh(session: Session, names: tuple[str, ...]) -> None:
    """Fetch the named projects from upstream now instead of waiting for the cache to expire."""
    releases.refresh(session.config, session.out, list(names))


@cli.command(short_help="Print the server's JSON for a path.")
@click.argument("path", required=False)
@pass_session
def getjson(session: Session, path: str | None) -> None:
    """Print the server's JSON for PATH (/user/index/..., or relative to the current index)."""
    releases.getjson(session.config, session.out, path)


@cli.command(
    context_settings={"ignore_unknown_options": True},
    short_help="Install packages from the current index with pip or uv.",
)
@click.option("--uv", "use_uv", is_flag=True, help="Install with uv instead of pip.")
@click.option("--python", metavar="PATH", help="Install into this interpreter's environment.")
@click.option("-l", "--list", "list_", is_flag=True, help="List installed packages.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_session
def install(
    session: Session, use_uv: bool, python: str | None, list_: bool, args: tuple[str, ...]
) -> None:
    """Install packages from the current index with pip (or uv); other options go to it."""
    code = installer.install(session.config, session.out, list(args), use_uv, python, list_)
    if code:
        raise ClientError(f"the installer exited with status {code}", "", status=code)


@cli.command(short_help="Create, list or revoke scoped tokens (upload or read-only).")
@click.option("-c", "--create", "create", is_flag=True, help="Create a token.")
@click.option("-l", "--list", "list_", is_flag=True, help="List tokens (never their secrets).")
@click.option("--delete", "delete", metavar="ID", help="Revoke the token ID.")
@click.option(
    "--index",
    "indexes",
    multiple=True,
    metavar="USER/INDEX",
    help="An index the token may use (repeat; default: the current index).",
)
@click.option(
    "--scope",
    type=click.Choice(["upload", "read"]),
    default="upload",
    show_default=True,
    help="upload: read and upload to the indexes; read: only read them (installs in CI).",
)
@click.option("--expires", default="90d", show_default=True, help="Lifetime: 30d, 12h, 3600.")
@click.option("-d", "--description", default="", help="What the token is for.")
@click.option("--user", metavar="NAME", help="Whose tokens (root only; default: you).")
@pass_session
def token(
    session: Session,
    create: bool,
    list_: bool,
    delete: str | None,
    indexes: tuple[str, ...],
    expires: str,
    scope: str,
    description: str,
    user: str | None,
) -> None:
    """Create (-c), list (-l) or revoke (--delete ID) tokens that may read and upload to the
    given indexes (--scope read: only read them), nothing else; the server keeps no copy of a
    token, so it is printed once."""
    config, out = session.config, session.out
    if create:
        tokens.create(config, out, list(indexes), expires, description, user, scope)
    elif list_:
        tokens.list_tokens(config, out, user)
    elif delete:
        tokens.revoke(config, out, delete, user)
    else:
        raise click.UsageError("pass -c, -l or --delete ID")


@cli.group(short_help="Trusted publishers: CI runs that may upload with their OIDC token.")
def publisher() -> None:
    """Add, list and remove an index's trusted publishers: GitHub Actions or GitLab CI runs
    that exchange their OIDC ID token for a 15-minute upload token (no stored secret)."""


_PUBLISHER_INDEX = click.option(
    "--index", metavar="USER/INDEX", help="The index (default: the current index)."
)


@publisher.command("add")
@_PUBLISHER_INDEX
@click.option("--repository", metavar="OWNER/REPO", help="GitHub: the repository.")
@click.option("--project-path", metavar="GROUP/PROJECT", help="GitLab: the project path.")
@click.option(
    "--workflow", required=True, help="Workflow file (release.yml; GitLab: .gitlab-ci.yml)."
)
@click.option("--ref", help="Only this ref (refs/tags/v1.0; GitLab: main).")
@click.option("--environment", help="Only jobs in this deployment environment.")
@click.option("--repository-owner-id", metavar="ID", help="GitHub: the owner's numeric id.")
@click.option("--issuer", metavar="URL", help="Issuer (default: GitHub's or gitlab.com's).")
@click.option("--audience", help="Audience (default: the server's).")
@click.option("-d", "--description", default="", help="What the publisher is.")
@pass_session
def publisher_add(
    session: Session,
    index: str | None,
    repository: str | None,
    project_path: str | None,
    workflow: str,
    ref: str | None,
    environment: str | None,
    repository_owner_id: str | None,
    issuer: str | None,
    audience: str | None,
    description: str,
) -> None:
    """Trust a GitHub (--repository) or GitLab (--project-path) CI workflow to publish."""
    if bool(repository) == bool(project_path):
        raise click.UsageError("pass --repository (GitHub) or --project-path (GitLab)")
    values = {
        "repository": repository,
        "project_path": project_path,
        "workflow": workflow,
        "ref": ref,
        "environment": environment,
        "repository_owner_id": repository_owner_id,
    }
    claims = {key: value for key, value in values.items() if value}
    publishers.add(session.config, session.out, index, issuer, claims, audience, description)


@publisher.command("list")
@_PUBLISHER_INDEX
@pass_session
def publisher_list(session: Session, index: str | None) -> None:
    """List the index's trusted publishers."""
    publishers.list_publishers(session.config, session.out, index)


@publisher.command("remove")
@_PUBLISHER_INDEX
@click.argument("publisher_id", metavar="ID")
@pass_session
def publisher_remove(session: Session, index: str | None, publisher_id: str) -> None:
    """Stop trusting publisher ID."""
    publishers.remove(session.config, session.out, index, publisher_id)


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
