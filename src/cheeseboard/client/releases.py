"""Commands on the releases of the current index: list, remove, push, refresh, getjson."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

from cheeseboard.client.commands import client, qualify, result_of
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError

_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*?)(?:==|-)(?P<version>[0-9][^\s/]*)$")


def split_spec(spec: str) -> tuple[str, str]:
    """``name==version`` (or devpi's ``name-version``) as a pair; anything else is an error."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ClientError(f"expected NAME==VERSION, got {spec!r}", "e.g. cheeseboard push pkg==1.0")
    return match["name"], match["version"]


def list_projects(config: ClientConfig, out: Output, project: str | None) -> None:
    """Projects of the current index, or the versions and files of one project."""
    index = config.require_index()
    api = client(config)
    if project is None:
        cfg = result_of(api.json("GET", index))
        title = index
        if cfg.get("type") == "mirror":
            # devpi lists a mirror's whole upstream; the server lists what it has cached.
            title = f"{index} (mirror: cached projects only, not upstream's list)"
            out.info(
                f"{index} is a mirror: listing the projects cached here; "
                f"'cheeseboard list NAME' asks upstream for any other"
            )
        out.table(title, ["project"], [[name] for name in cfg.get("projects", [])])
        return
    versions = result_of(api.json("GET", f"{index}/{project}"))
    rows = [
        [version, link["href"].rsplit("/", 1)[-1]]
        for version, data in sorted(versions.items())
        for link in data.get("+links", [])
        if link.get("rel") == "releasefile"
    ]
    out.table(f"{index}/{project}", ["version", "file"], rows)


def remove(config: ClientConfig, out: Output, spec: str, force: bool) -> None:
    """Delete a project (``name``) or one version (``name==version``)."""
    index = config.require_index()
    name, _, version = spec.partition("==")
    path = f"{index}/{name}" + (f"/{version}" if version else "")
    try:
        client(config).json("DELETE", path + ("?force=" if force else ""))
    except ClientError as error:
        if error.status == 403 and not force and "volatile" in error.message:
            raise ClientError(
                f"{index} is non-volatile, {spec} was not removed", "pass -f to force the removal"
            ) from None
        raise
    out.success(f"removed {spec} from {index}", {"index": index, "removed": spec})


def pypirc_target(repository: str, pypirc: Path) -> dict[str, str]:
    """``posturl``/``username``/``password`` of one ``[repository]`` section of a .pypirc."""
    parser = configparser.RawConfigParser()
    if not parser.read(pypirc):
        raise ClientError(f"no {pypirc} to read the repository {repository!r} from")
    if not parser.has_section(repository):
        raise ClientError(
            f"no section [{repository}] in {pypirc}", "add repository, username and password there"
        )
    section = dict(parser.items(repository))
    url = section.get("repository") or (
        "https://upload.pypi.org/legacy/" if repository == "pypi" else ""
    )
    if not url:
        raise ClientError(f"[{repository}] in {pypirc} has no repository URL")
    target = {"posturl": url}
    for key in ("username", "password"):
        if section.get(key):
            target[key] = section[key]
    return target


def push(
    config: ClientConfig, out: Output, spec: str, target: str, source: str | None, pypirc: Path
) -> None:
    """Copy a release to another index (``user/index``) or upload it to ``pypi:REPOSITORY``."""
    name, version = split_spec(spec)
    index = qualify(config, source) if source else config.require_index()
    body: dict[str, Any] = {"name": name, "version": version}
    if target.startswith("pypi:"):
        body.update(pypirc_target(target[len("pypi:") :], pypirc))
        where = target
    else:
        where = qualify(config, target)
        body["targetindex"] = where
    reply = client(config).json("POST", index, body)
    for entry in result_of(reply) or []:
        if isinstance(entry, list | tuple) and entry:
            out.info(" ".join(str(part) for part in entry))
    out.success(
        f"pushed {name}=={version} from {index} to {where}",
        {"name": name, "version": version, "source": index, "target": where},
    )


def refresh(config: ClientConfig, out: Output, names: list[str]) -> None:
    """Make a mirror (or a stage's mirror bases) fetch the named projects from upstream now."""
    index = config.require_index()
    api = client(config)
    for name in names:
        api.send("POST", f"{index}/+simple/{name}/refresh", b"", api.headers())
        out.info(f"refreshed {name}")
    out.success(f"refreshed {len(names)} project(s) on {index}", {"projects": names})


def getjson(config: ClientConfig, out: Output, path: str | None) -> None:
    """The JSON the server answers for a path (``/user/index``; relative to the current index)."""
    if path is None:
        path = "/" + config.require_index()
    elif not path.startswith("/"):
        path = f"/{config.require_index()}/{path}"
    out.emit(client(config).json("GET", path))


PROJECT_STATUSES = ("active", "archived", "deprecated", "quarantined")


def project_status(
    config: ClientConfig, out: Output, project: str, status: str | None, reason: str | None
) -> None:
    """Show or set (index owner or root) a project's PEP 792 status on the current index."""
    index = config.require_index()
    path = f"{index}/{project}/+status"
    api = client(config)
    if status is None:
        if reason is not None:
            raise ClientError("--reason goes with a STATUS", "e.g. archived --reason 'use bar'")
        current = result_of(api.json("GET", path))
        shown = current["status"] + (f": {current['reason']}" if current.get("reason") else "")
        out.success(f"{current['project']} on {index} is {shown}", current)
        return
    body: dict[str, Any] = {"status": status}
    if reason is not None:
        body["reason"] = reason
    changed = result_of(api.json("POST", path, body))
    out.success(f"{changed['project']} on {index} is now {changed['status']}", changed)
