"""``token``: create, list and revoke scoped tokens (upload, or read-only) on the server."""

from __future__ import annotations

import re
import time

from cheeseboard.client.commands import client, qualify, result_of
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError, unsupported

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"^(\d+)([smhdw]?)$")


def parse_duration(text: str) -> int:
    """``90d``, ``12h``, ``3600`` -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ClientError(f"not a duration: {text!r}", "use e.g. 30d, 12h or a number of seconds")
    return int(match[1]) * _UNITS[match[2] or "s"]


def _owner(config: ClientConfig, user: str | None) -> str:
    owner = user or config.user
    if not owner:
        raise ClientError("whose tokens?", "log in first or pass --user NAME")
    return owner


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _unsupported(error: ClientError) -> ClientError:
    """A server without scoped tokens (devpi) answers 404 or 405 on ``+tokens``."""
    return unsupported(error, ("no user", "no token"), "scoped tokens", "use cheeseboard login")


def create(
    config: ClientConfig,
    out: Output,
    indexes: list[str],
    expires: str,
    description: str,
    user: str | None,
    scope: str = "upload",
) -> None:
    """Create a token that may read and upload to ``indexes`` (``scope`` "upload") or only
    read them ("read"); print it once."""
    owner = _owner(config, user)
    targets = [qualify(config, name) for name in indexes] or [config.require_index()]
    body: dict[str, object] = {
        "indexes": targets,
        "expires_in": parse_duration(expires),
        "description": description,
    }
    if scope != "upload":  # the server's default; a server before scopes refuses the key
        body["scope"] = scope
    try:
        made = result_of(client(config).json("POST", f"{owner}/+tokens", body))
    except ClientError as error:
        raise _unsupported(error) from None
    if out.json_mode:
        out.emit(made)
        return
    out.info(made["token"])
    if made.get("scope", "upload") == "read":
        what, how = "read", "in the index URL (pip, uv: http://__token__:TOKEN@host/…/+simple/)"
    else:
        what, how = "read and upload to", "(twine, uv publish)"
    out.errors.print(
        f"[dim]token {made['id']} of {owner}: {what} {', '.join(made['indexes'])} until "
        f"{_when(made['expires'])}. It is shown only this once. Use it as the password with "
        f"the user name __token__ {how} or your own user name.[/dim]"
    )


def list_tokens(config: ClientConfig, out: Output, user: str | None) -> None:
    owner = _owner(config, user)
    try:
        found = result_of(client(config).json("GET", f"{owner}/+tokens")) or []
    except ClientError as error:
        raise _unsupported(error) from None
    rows = [
        [
            t["id"],
            t.get("scope", "upload"),
            ", ".join(t["indexes"]),
            _when(t["expires"]),
            t.get("description", ""),
        ]
        for t in found
    ]
    if out.json_mode:
        out.emit(found)
        return
    columns = ["id", "scope", "indexes", "expires", "description"]
    out.table(f"tokens of {owner}", columns, rows)


def revoke(config: ClientConfig, out: Output, token_id: str, user: str | None) -> None:
    owner = _owner(config, user)
    try:
        client(config).json("DELETE", f"{owner}/+tokens/{token_id}")
    except ClientError as error:
        raise _unsupported(error) from None
    out.success(f"token {token_id} revoked", {"id": token_id})
