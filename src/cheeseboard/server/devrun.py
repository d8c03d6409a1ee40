"""``make run``: initialise a local data directory on first use, then serve it.

The first run creates the directory with a random root password and prints it once; later runs
serve the existing directory. Any other option is passed to ``serve`` as usual.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

import click

from cheeseboard.ops.datadir import DataDirError, init_datadir, is_initialised
from cheeseboard.server.cli import main as server_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__)
    parser.add_argument("--datadir", type=Path, default=Path(".data"))
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", default="3141")
    known, rest = parser.parse_known_args(argv)
    if not is_initialised(known.datadir):
        password = secrets.token_urlsafe(12)
        try:
            init_datadir(known.datadir, password)
        except DataDirError as exc:
            sys.exit(f"make run: {exc}")
        click.echo(
            f"Initialised {known.datadir} with root/pypi mirroring https://pypi.org/simple/.\n"
            f"The root password is: {password}\n"
            "It is shown only this once; keep it (change it later with the client)."
        )
    host = "127.0.0.1" if known.host == "localhost" else known.host
    click.echo(f"Web UI: http://{known.host}:{known.port}/")
    click.echo(f"pip install --index-url http://{known.host}:{known.port}/root/pypi/+simple/ ...")
    server_main(
        ["serve", "--datadir", str(known.datadir), "--host", host, "--port", known.port, *rest]
    )


if __name__ == "__main__":
    main()
