"""``cheeseboard group``: root manages local groups (``/+groups``, http/groups.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cheeseboard.client.commands import client, result_of
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError


def _path(name: str) -> str:
    if not name or "/" in name:
        raise ClientError(f"not a group name: {name!r}")
    return "+groups/" + quote(name, safe="")


def group_list(config: ClientConfig, out: Output) -> None:
    groups: dict[str, Any] = result_of(client(config).json("GET", "+groups")) or {}
    rows = [
        [name, ", ".join(group.get("members", [])), group.get("description") or ""]
        for name, group in sorted(groups.items())
    ]
    out.table("groups", ["group", "members", "description"], rows)


def group_show(config: ClientConfig, out: Output, name: str) -> None:
    group = result_of(client(config).json("GET", _path(name))) or {}
    if out.json_mode:
        out.emit(group)
        return
    out.info(f"group {group.get('name')}: {group.get('description') or ''}".rstrip(": "))
    out.info("members: " + (", ".join(group.get("members", [])) or "(none)"))


def group_create(config: ClientConfig, out: Output, name: str, description: str | None) -> None:
    body = {} if description is None else {"description": description}
    client(config).json("PUT", _path(name), body)
    out.success(f"group {name} saved", {"group": name})


def group_members(
    config: ClientConfig, out: Output, name: str, add: list[str], remove: list[str]
) -> None:
    reply = client(config).json("PATCH", _path(name), {"add": add, "remove": remove})
    members = (result_of(reply) or {}).get("members", [])
    out.success(f"members of {name}: {', '.join(members) or '(none)'}", {"members": members})


def group_delete(config: ClientConfig, out: Output, name: str) -> None:
    client(config).json("DELETE", _path(name))
    out.success(f"group {name} deleted", {"group": name})
