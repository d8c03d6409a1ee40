"""The client's commands as plain functions of (config, output, arguments)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cheeseboard.client.config import ClientConfig, split_url
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError, HttpClient
from cheeseboard.client.upload import MultipartBody, collect, sha256_of, upload_form


def client(config: ClientConfig, auth: bool = True) -> HttpClient:
    """An HTTP client for the configured server, with credentials if a user is set."""
    return HttpClient(config.require_url(), config.credentials() if auth else None)


def _result(reply: Any) -> Any:
    """The ``result`` of a devpi envelope."""
    return reply.get("result") if isinstance(reply, dict) else reply


def parse_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``key=value`` arguments as a dict."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClientError(f"expected key=value, got {pair!r}")
        result[key] = value
    return result


def qualify(config: ClientConfig, name: str) -> str:
    """``index`` -> ``me/index``; ``user/index`` stays."""
    if "/" in name:
        return name.strip("/")
    if not config.user:
        raise ClientError(f"index {name!r} needs an owner", "use user/index or log in first")
    return f"{config.user}/{name}"


def use(config: ClientConfig, out: Output, target: str) -> None:
    """Point the client at a server (and optionally an index) after checking ``/+api``."""
    if urlsplit(target).scheme:
        url, index = split_url(target)
    else:
        url, index = config.require_url(), target.strip("/")
    api = HttpClient(url)
    _result(api.json("GET", "+api"))
    if index:
        _result(api.json("GET", f"{index}/+api"))
    if url != config.url:
        config.user = config.token = None
    config.url, config.index = url, index
    config.save()
    where = url + (index or "")
    out.success(f"using {where}", {"url": url, "index": index})


def login(config: ClientConfig, out: Output, user: str, password: str) -> None:
    """Trade a password for a token and store it."""
    reply = HttpClient(config.require_url()).json(
        "POST", "+login", {"user": user, "password": password}
    )
    token = _result(reply).get("password")
    if not isinstance(token, str):
        raise ClientError("server sent no token on login")
    config.user, config.token, config.password = user, token, None
    config.save()
    out.success(f"logged in as {user}", {"user": user})


def logoff(config: ClientConfig, out: Output) -> None:
    """Forget the stored user and token."""
    config.user = config.token = None
    config.save()
    out.success("logged off")


def user_create(config: ClientConfig, out: Output, name: str, pairs: dict[str, str]) -> None:
    """``PUT /name`` with password, email, ..."""
    if "password" not in pairs:
        raise ClientError("a new user needs a password", f"cheeseboard user -c {name} password=…")
    client(config).json("PUT", name, pairs)
    out.success(f"user {name} created", {"user": name})


def user_list(config: ClientConfig, out: Output) -> None:
    """All users with their indexes."""
    users = _result(client(config).json("GET", "")) or {}
    rows = [
        [name, ", ".join(sorted(cfg.get("indexes", {})))] for name, cfg in sorted(users.items())
    ]
    out.table("users", ["user", "indexes"], rows)


def index_create(config: ClientConfig, out: Output, name: str, pairs: dict[str, str]) -> None:
    """``PUT /user/index`` with the given configuration."""
    full = qualify(config, name)
    result = _result(client(config).json("PUT", full, pairs))
    out.success(f"index {full} created", result)


def index_modify(config: ClientConfig, out: Output, name: str, changes: list[str]) -> None:
    """``PATCH /user/index`` with devpi's list form (``k=v``, ``k+=v``, ``k-=v``)."""
    full = qualify(config, name)
    for change in changes:
        if "=" not in change:
            raise ClientError(f"expected key=value, key+=value or key-=value, got {change!r}")
    result = _result(client(config).json("PATCH", full, changes))
    out.success(f"index {full} modified", result)


def _index_row(name: str, cfg: dict[str, Any]) -> list[str]:
    bases = cfg.get("bases", [])
    return [
        name,
        str(cfg.get("type", "")),
        ",".join(bases) if isinstance(bases, list) else str(bases),
        str(cfg.get("volatile", "")),
    ]


def index_show(config: ClientConfig, out: Output, name: str) -> None:
    """One index's configuration."""
    full = qualify(config, name)
    cfg = _result(client(config).json("GET", f"{full}?no_projects="))
    if out.json_mode:
        out.emit(cfg)
        return
    rows = [[key, str(value)] for key, value in sorted(cfg.items())]
    out.table(full, ["key", "value"], rows)


def index_list(config: ClientConfig, out: Output, user: str | None) -> None:
    """Indexes of one user, or of every user."""
    api = client(config)
    owner = user or config.user
    if owner:
        users = {owner: _result(api.json("GET", owner))}
    else:
        users = _result(api.json("GET", "")) or {}
    rows = [
        _index_row(f"{name}/{index}", cfg)
        for name, ucfg in sorted(users.items())
        for index, cfg in sorted(ucfg.get("indexes", {}).items())
    ]
    out.table("indexes", ["index", "type", "bases", "volatile"], rows)


def list_projects(config: ClientConfig, out: Output, project: str | None) -> None:
    """Projects of the current index, or the versions and files of one project."""
    index = config.require_index()
    api = client(config)
    if project is None:
        cfg = _result(api.json("GET", index))
        out.table(index, ["project"], [[name] for name in cfg.get("projects", [])])
        return
    versions = _result(api.json("GET", f"{index}/{project}"))
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


def upload(config: ClientConfig, out: Output, paths: list[Path]) -> None:
    """Upload wheels and sdists to the current index, one multipart POST per file."""
    index = config.require_index()
    api = client(config)
    artifacts = collect(paths)
    for artifact in artifacts:
        form = upload_form(artifact, sha256_of(artifact.path))
        if out.interactive:
            from rich.progress import Progress

            with Progress(console=out.console, transient=True) as progress:
                task = progress.add_task(artifact.path.name, total=artifact.path.stat().st_size)
                advance = functools.partial(progress.advance, task)
                _post(api, index, MultipartBody(form, "content", artifact.path, advance))
        else:
            _post(api, index, MultipartBody(form, "content", artifact.path))
        out.info(f"uploaded {artifact.path.name}")
    names = [a.path.name for a in artifacts]
    out.success(f"uploaded {len(names)} file(s) to {index}", {"index": index, "files": names})


def _post(api: HttpClient, index: str, body: MultipartBody) -> None:
    headers = api.headers()
    headers["Content-Type"] = body.content_type
    headers["Content-Length"] = str(len(body))
    api.send("POST", f"{index}/", iter(body), headers)
