"""``exempt``, ``block`` and ``unblock``: the supply-chain guard's break-glass controls (issue 21).

Exemptions are index configuration, edited with devpi's list PATCH
(``release_age_exempt+=foo==1.0; reason=…; expires=…``) so the server records who added
them; blocks have their own API (``/+blocks`` server-wide, ``/<user>/<index>/+blocks``).
"""

from __future__ import annotations

import re
from typing import Any

from cheeseboard.client.commands import client, qualify, result_of
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError, unsupported

EXEMPT_KEY = "release_age_exempt"
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(.*?)\s*$")


def _index(config: ClientConfig, name: str | None) -> str:
    return qualify(config, name) if name else config.require_index()


def _option_text(value: str, what: str) -> str:
    """A value that goes into one ``; key=value`` option: ``;`` would end it early."""
    if ";" in value:
        raise ClientError(f"the {what} may not contain ';'", "use ',' instead")
    return " ".join(value.split())


def _exemptions(config: ClientConfig, index: str) -> tuple[dict[str, Any], list[Any]]:
    cfg = result_of(client(config).json("GET", f"{index}?no_projects=")) or {}
    if not isinstance(cfg, dict):
        raise ClientError(f"no configuration for {index}")
    listed = cfg.get(EXEMPT_KEY) or []
    return cfg, listed if isinstance(listed, list) else []


def _unsupported_key(error: ClientError) -> ClientError:
    """A server without the guard (devpi) refuses the key it does not know."""
    if error.status == 400 and EXEMPT_KEY in error.message and "unexpected" in error.message:
        return ClientError("this server does not offer release cooldowns", "")
    return error


def exempt_add(
    config: ClientConfig,
    out: Output,
    index_name: str | None,
    entry: str,
    reason: str,
    expires: str | None,
) -> None:
    """Let ``entry`` (``project`` or ``project==version``) through the index's cooldown."""
    index = _index(config, index_name)
    if not reason.strip():
        raise ClientError("an exemption needs a reason", "pass --reason TEXT")
    item = f"{EXEMPT_KEY}+={_option_text(entry, 'entry')}; reason={_option_text(reason, 'reason')}"
    if expires:
        item += f"; expires={_option_text(expires, 'expiry')}"
    try:
        cfg = result_of(client(config).json("PATCH", index, [item]))
    except ClientError as error:
        raise _unsupported_key(error) from None
    added = [e for e in cfg.get(EXEMPT_KEY) or [] if isinstance(e, dict)][-1:]
    shown = added[0]["entry"] if added else entry
    out.success(f"{shown} exempt from the cooldown of {index}", added[0] if added else None)


def exempt_remove(config: ClientConfig, out: Output, index_name: str | None, entry: str) -> None:
    index = _index(config, index_name)
    item = f"{EXEMPT_KEY}-={_option_text(entry, 'entry')}"
    try:
        client(config).json("PATCH", index, [item])
    except ClientError as error:
        raise _unsupported_key(error) from None
    out.success(f"exemption {entry} removed from {index}", {"index": index, "removed": entry})


def exempt_list(config: ClientConfig, out: Output, index_name: str | None) -> None:
    """The index's exemptions, with its cooldown and cut-off in the title."""
    index = _index(config, index_name)
    cfg, listed = _exemptions(config, index)
    if out.json_mode:
        out.emit(listed)
        return
    rules = [f"{key} {cfg[key]}" for key in ("min_release_age", "release_cutoff") if cfg.get(key)]
    title = f"exemptions of {index}" + (f" ({', '.join(rules)})" if rules else "")
    columns = ["entry", "author", "reason", "added", "expires"]
    rows = [
        [str(item.get(column) or "") for column in columns]
        for item in listed
        if isinstance(item, dict)
    ]
    out.table(title, columns, rows)


def _blocks_path(config: ClientConfig, index_name: str | None, server_wide: bool) -> str:
    if server_wide:
        if index_name:
            raise ClientError("--server-wide and --index exclude each other")
        return "+blocks"
    return f"{_index(config, index_name)}/+blocks"


def _scope(path: str) -> str:
    return "the whole server" if path == "+blocks" else path.removesuffix("/+blocks")


def _unsupported(error: ClientError) -> ClientError:
    """A server without blocks (devpi) answers 404 or 405 on ``+blocks``."""
    return unsupported(error, ("no block", "no index", "no user"), "blocks")


def block_body(
    spec: str | None, filename: str | None, sha256: str | None, reason: str
) -> dict[str, str]:
    """``project``, ``project==1.0`` or ``project<2,>=1`` plus the file options, as the API's
    JSON body (a version becomes the specifier ``==version``)."""
    body: dict[str, str] = {}
    if spec:
        match = _NAME.match(spec)
        if match is None:
            raise ClientError(f"not a project name: {spec!r}", "e.g. pkg, pkg==1.0 or 'pkg<2'")
        body["project"] = match[1]
        if match[2]:
            body["specifier"] = match[2]
    if filename:
        body["filename"] = filename
    if sha256:
        body["sha256"] = sha256
    if not body:
        raise ClientError("what to block?", "pass PROJECT[SPECIFIER], --filename or --sha256")
    if not reason.strip():
        raise ClientError("a block needs a reason", "pass --reason TEXT")
    body["reason"] = reason
    return body


def block(
    config: ClientConfig,
    out: Output,
    body: dict[str, str],
    index_name: str | None,
    server_wide: bool,
) -> None:
    path = _blocks_path(config, index_name, server_wide)
    try:
        made = result_of(client(config).json("POST", path, body))
    except ClientError as error:
        raise _unsupported(error) from None
    out.success(f"block {made['id']} on {_scope(path)}: {_what(made)}", made)


def _what(block: dict[str, Any]) -> str:
    parts = []
    if block.get("project"):
        parts.append(f"{block['project']}{block.get('specifier') or ''}")
    if block.get("filename"):
        parts.append(f"file {block['filename']}")
    if block.get("sha256"):
        parts.append(f"sha256 {block['sha256']}")
    return ", ".join(parts)


def block_list(
    config: ClientConfig, out: Output, index_name: str | None, server_wide: bool
) -> None:
    path = _blocks_path(config, index_name, server_wide)
    try:
        found = result_of(client(config).json("GET", path)) or []
    except ClientError as error:
        raise _unsupported(error) from None
    if out.json_mode:
        out.emit(found)
        return
    rows = [
        [
            str(b["id"]),
            _what(b),
            str(b.get("reason") or ""),
            str(b.get("author") or ""),
            str(b.get("source") or ""),
            str(b.get("created") or ""),
        ]
        for b in found
    ]
    columns = ["id", "blocks", "reason", "author", "source", "created"]
    out.table(f"blocks on {_scope(path)}", columns, rows)


def unblock(
    config: ClientConfig, out: Output, block_id: str, index_name: str | None, server_wide: bool
) -> None:
    path = _blocks_path(config, index_name, server_wide)
    if not block_id.isdigit():
        raise ClientError(f"not a block id: {block_id!r}", "see cheeseboard block --list")
    try:
        removed = result_of(client(config).json("DELETE", f"{path}/{block_id}"))
    except ClientError as error:
        raise _unsupported(error) from None
    out.success(f"block {block_id} removed from {_scope(path)}", removed)
