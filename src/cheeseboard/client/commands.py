"""The client's commands as plain functions of (config, output, arguments)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cheeseboard.client.config import ClientConfig, split_url
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError, HttpClient


def client(config: ClientConfig, auth: bool = True) -> HttpClient:
    """An HTTP client for the configured server, with credentials if a user is set."""
    return HttpClient(config.require_url(), config.credentials() if auth else None)


def result_of(reply: Any) -> Any:
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


LIST_KEYS = ("bases", "acl_upload", "acl_toxresult_upload", "mirror_whitelist")


def index_config(pairs: dict[str, str]) -> dict[str, Any]:
    """``key=value`` pairs of a new index; list-valued keys split on commas as devpi does."""
    config: dict[str, Any] = dict(pairs)
    for key in LIST_KEYS:
        if key in config:
            config[key] = [item for item in config[key].split(",") if item]
    return config


def qualify(config: ClientConfig, name: str) -> str:
    """``index`` -> ``me/index``; ``user/index`` stays."""
    if "/" in name:
        return name.strip("/")
    if not config.user:
        raise ClientError(f"index {name!r} needs an owner", "use user/index or log in first")
    return f"{config.user}/{name}"


def show_current(config: ClientConfig, out: Output) -> None:
    """What ``use`` without arguments prints: server, index, user."""
    data = {"url": config.url, "index": config.index, "user": config.user}
    if out.json_mode:
        out.emit(data)
        return
    if not config.url:
        raise ClientError("no server set", "run: cheeseboard use URL")
    out.info(f"server: {config.url}")
    out.info(f"index:  {config.url + config.index if config.index else '(none)'}")
    out.info(f"user:   {config.user or '(not logged in)'}")


def use(config: ClientConfig, out: Output, target: str) -> None:
    """Point the client at a server (and optionally an index) after checking ``/+api``."""
    if urlsplit(target).scheme:
        url, index = split_url(target)
    else:
        url, index = config.require_url(), target.strip("/")
    same_server = url == config.url
    # On the same server, the signed-in user checks the index: a private one answers only them.
    api = HttpClient(url, config.credentials() if same_server else None)
    result_of(api.json("GET", "+api"))
    if index:
        result_of(api.json("GET", f"{index}/+api"))
    if not same_server:
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
    token = result_of(reply).get("password")
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


def user_modify(config: ClientConfig, out: Output, name: str, pairs: dict[str, str]) -> None:
    """``PATCH /name`` with email, title, description or password."""
    if not pairs:
        raise ClientError("nothing to change", f"cheeseboard user -m {name} email=…")
    reply = client(config).json("PATCH", name, pairs)
    _adopt_new_token(config, name, reply)
    out.success(f"user {name} modified", {"user": name, "changed": sorted(pairs)})


def _adopt_new_token(config: ClientConfig, name: str, reply: Any) -> None:
    """After our own password change the old token is dead; keep the fresh one sent back."""
    token = (result_of(reply) or {}).get("password") if isinstance(reply, dict) else None
    if name == config.user and isinstance(token, str):
        config.token, config.password = token, None
        config.save()


def user_delete(config: ClientConfig, out: Output, name: str) -> None:
    """``DELETE /name``: the user and all their indexes."""
    client(config).json("DELETE", name)
    if name == config.user:
        config.user = config.token = None
        config.save()
    out.success(f"user {name} deleted", {"user": name})


def passwd(config: ClientConfig, out: Output, name: str, password: str) -> None:
    """Change a password (``PATCH /name``); our own login survives with the new token."""
    if not password:
        raise ClientError("the new password is empty")
    reply = client(config).json("PATCH", name, {"password": password})
    _adopt_new_token(config, name, reply)
    out.success(f"password of {name} changed", {"user": name})


def user_list(config: ClientConfig, out: Output) -> None:
    """All users with their indexes."""
    users = result_of(client(config).json("GET", "")) or {}
    rows = [
        [name, ", ".join(sorted(cfg.get("indexes", {})))] for name, cfg in sorted(users.items())
    ]
    out.table("users", ["user", "indexes"], rows)


def index_create(config: ClientConfig, out: Output, name: str, pairs: dict[str, str]) -> None:
    """``PUT /user/index`` with the given configuration."""
    full = qualify(config, name)
    result = result_of(client(config).json("PUT", full, index_config(pairs)))
    out.success(f"index {full} created", result)


def index_delete(config: ClientConfig, out: Output, name: str) -> None:
    """``DELETE /user/index`` with everything on it."""
    full = qualify(config, name)
    try:
        client(config).json("DELETE", full)
    except ClientError as error:
        if error.status == 403 and "volatile" in error.message:
            error.hint = f"make it volatile first: cheeseboard index {full} volatile=True"
        raise
    if config.index == full:
        config.index = None
        config.save()
    out.success(f"index {full} deleted", {"index": full})


def index_modify(config: ClientConfig, out: Output, name: str, changes: list[str]) -> None:
    """``PATCH /user/index`` with devpi's list form (``k=v``, ``k+=v``, ``k-=v``)."""
    full = qualify(config, name)
    for change in changes:
        if "=" not in change:
            raise ClientError(f"expected key=value, key+=value or key-=value, got {change!r}")
    result = result_of(client(config).json("PATCH", full, changes))
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
    cfg = result_of(client(config).json("GET", f"{full}?no_projects="))
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
        users = {owner: result_of(api.json("GET", owner))}
    else:
        users = result_of(api.json("GET", "")) or {}
    rows = [
        _index_row(f"{name}/{index}", cfg)
        for name, ucfg in sorted(users.items())
        for index, cfg in sorted(ucfg.get("indexes", {}).items())
    ]
    out.table("indexes", ["index", "type", "bases", "volatile"], rows)
