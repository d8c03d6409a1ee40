#!/opt/cheeseboard/bin/python
"""Docker HEALTHCHECK of the server image: GET /-/health where the running server listens.

The server may listen anywhere its command line (``docker run IMAGE --port 8000``), environment
or config file says, so this finds the ``cheeseboard-server serve`` process in /proc and takes
host and port from the same sources in the same order. Exit 0 when the server answers 200, else 1.

It runs every 30 s for the life of the container and the image has no bytecode for the standard
library, so it imports little: a socket instead of urllib (0.2 s of compiling http and email), and
the server's settings module only when a config file is in play.
"""

from __future__ import annotations

import os
import socket
import sys

ADDRESS_OPTIONS = ("host", "port", "config")


def server_process() -> tuple[list[str], dict[str, str]] | None:
    """The arguments after ``serve`` and the environment of the server's main process."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:  # gone meanwhile, or not ours
            continue
        args = [arg.decode(errors="replace") for arg in argv]
        for i, arg in enumerate(args[:-1]):
            if arg.endswith("cheeseboard-server") and args[i + 1] == "serve":
                pairs = (item.decode(errors="replace").partition("=") for item in environ)
                return args[i + 2 :], {name: value for name, _, value in pairs if name}
    return None


def given_options(args: list[str]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` for the options that decide the address."""
    given: dict[str, str] = {}
    for i, arg in enumerate(args):
        name, eq, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in ADDRESS_OPTIONS:
            continue
        if eq:
            given[name] = value
        elif i + 1 < len(args):
            given[name] = args[i + 1]
    return given


def address(args: list[str], environ: dict[str, str]) -> tuple[str, int]:
    """Host and port as the server resolved them: command line > environment > file > default."""
    given = given_options(args)
    config = given.pop("config", None) or environ.get("CHEESEBOARD_CONFIG")
    if config:
        from pathlib import Path

        from cheeseboard.server.settings import resolve

        settings = resolve({**given, "datadir": "."}, environ, Path(config))
        return settings.host, settings.port
    # The server's defaults (cheeseboard.server.settings.OPTIONS); the image sets the host.
    host = given.get("host") or environ.get("CHEESEBOARD_HOST") or "127.0.0.1"
    port = given.get("port") or environ.get("CHEESEBOARD_PORT") or "3141"
    return host.strip(), int(port)


def main() -> int:
    found = server_process()
    if found is None:
        print("no cheeseboard-server serve process", file=sys.stderr)
        return 1
    try:
        host, port = address(*found)
    except (ValueError, OSError) as error:  # SettingsError is a ValueError
        print(f"cannot tell where the server listens: {error}", file=sys.stderr)
        return 1
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=4) as conn:
            request = (
                f"GET /-/health HTTP/1.0\r\nHost: {target}\r\nAccept: application/json\r\n\r\n"
            )
            conn.sendall(request.encode())
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
    except OSError as error:
        print(f"http://{target}/-/health: {error}", file=sys.stderr)
        return 1
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    print(status, body[:300].decode(errors="replace"))
    return 0 if status.split(" ")[1:2] == ["200"] else 1


if __name__ == "__main__":
    sys.exit(main())
