"""Client state: stored server URL, index, user and token, plus environment overrides."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cheeseboard.client.http import ClientError

STATE_FILE = "client.json"
_STORED = ("url", "index", "user", "token")


def default_dir(environ: Mapping[str, str]) -> Path:
    """``$CHEESEBOARD_CLIENTDIR`` or ``~/.config/cheeseboard``."""
    explicit = environ.get("CHEESEBOARD_CLIENTDIR")
    if explicit:
        return Path(explicit)
    return Path.home() / ".config" / "cheeseboard"


def split_url(url: str) -> tuple[str, str | None]:
    """``http://h/u/i`` -> (``http://h/``, ``u/i``); a URL without an index gives None."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    index = None
    if len(segments) >= 2 and not segments[-1].startswith("+"):
        index = "/".join(segments[-2:])
        segments = segments[:-2]
    path = "/" + "".join(s + "/" for s in segments)
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), index


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """``CHEESEBOARD_<name>``, else docker-devpi's ``DEVPI_<name>``."""
    return environ.get(f"CHEESEBOARD_{name}") or environ.get(f"DEVPI_{name}") or None


@dataclass
class ClientConfig:
    """Where the client talks to and as whom; only url/index/user/token are stored."""

    path: Path
    url: str | None = None
    index: str | None = None
    user: str | None = None
    token: str | None = None
    password: str | None = field(default=None, repr=False)
    interactive: bool = False
    prompt: Callable[[str], str] | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, interactive: bool | None = None
    ) -> ClientConfig:
        """Read the state file, then apply the environment (CHEESEBOARD_* beat DEVPI_*)."""
        env = os.environ if environ is None else environ
        path = default_dir(env) / STATE_FILE
        data: dict[str, object] = {}
        if path.exists():
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                raise ClientError(
                    f"cannot read client state {path}: {error}", "delete the file and run use"
                ) from error
            if isinstance(loaded, dict):
                data = loaded
        url, index, user, token = (
            value if isinstance(value, str) else None for value in map(data.get, _STORED)
        )
        config = cls(path, url, index, user, token)
        config.interactive = sys.stdin.isatty() if interactive is None else interactive
        url = _env(env, "URL")
        if url:
            config.url, index = split_url(url)
            config.index = index or config.index
        config.index = _env(env, "INDEX") or config.index
        user = _env(env, "USER")
        if user and user != config.user:
            config.user, config.token = user, None
        config.password = _env(env, "PASSWORD")
        return config

    def save(self) -> None:
        """Write url/index/user/token atomically, readable by the owner only (0600)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {key: getattr(self, key) for key in _STORED}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".client-", suffix=".json")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def require_url(self) -> str:
        """The server URL, or a ClientError telling the user to run ``use``."""
        if not self.url:
            raise ClientError("no server set", "run: cheeseboard use URL")
        return self.url

    def require_index(self) -> str:
        """The current ``user/index``."""
        if not self.index:
            raise ClientError("no index set", "run: cheeseboard use URL/user/index")
        return self.index

    def credentials(self) -> tuple[str, str] | None:
        """``(user, secret)`` for requests; prompts for a missing password on a terminal."""
        if not self.user:
            return None
        if self.password:
            return self.user, self.password
        if self.token:
            return self.user, self.token
        if self.interactive and self.prompt is not None:
            self.password = self.prompt(f"password for {self.user}")
            return self.user, self.password
        raise ClientError(
            f"user {self.user} is set but no password or token is available",
            "set CHEESEBOARD_PASSWORD or run: cheeseboard login USER --password P",
        )
