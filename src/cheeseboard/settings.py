"""Server settings: read once from the command line, environment, YAML file and defaults.

Precedence is CLI > ``CHEESEBOARD_<OPTION>`` > ``--config`` YAML > default. The result is a frozen
object passed down to everything else; ``sources`` remembers where each value came from, for the
startup log (secrets are never logged).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cheeseboard.ldap_settings import LdapSettings, LdapSettingsError, parse_ldap
from cheeseboard.oidc_settings import OidcSettings, OidcSettingsError, parse_oidc
from cheeseboard.tls import check_ca_bundle

ENV_PREFIX = "CHEESEBOARD_"


class SettingsError(ValueError):
    """Raised for a bad option value or config file; the message names the option and source."""


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _to_positive_float(value: object) -> float:
    number = float(str(value))
    # NaN compares false with everything: a NaN expiry would never expire, a NaN timeout never end.
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"must be a positive number of seconds, got {value!r}")
    return number


def _to_expiry(value: object) -> float:
    """Seconds a mirrored page stays fresh; 0 revalidates on every request (devpi's meaning)."""
    number = float(str(value))
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"must be 0 or a positive number of seconds, got {value!r}")
    return number


def _to_port(value: object) -> int:
    number = int(str(value))
    if not 0 <= number <= 65535:
        raise ValueError(f"not a TCP port: {value!r}")
    return number


def _to_workers(value: object) -> int:
    number = int(str(value))
    if not 1 <= number <= 64:
        raise ValueError(f"workers must be 1..64, got {value!r}")
    return number


def _to_attempts(value: object) -> int:
    number = int(str(value))
    if not 1 <= number <= 1_000_000:
        raise ValueError(f"must be 1..1000000 attempts, got {value!r}")
    return number


def _to_max_age(value: object) -> int:
    number = int(str(value))
    if number < 0:
        raise ValueError(f"a max-age cannot be negative, got {value!r}")
    return number


def _to_principals(value: object) -> tuple[str, ...]:
    """A list or comma-separated string of user names, ``:group:NAME`` (or devpi's ``:NAME``)
    and the special principals."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    principals = tuple(str(item).strip() for item in items if str(item).strip())
    for principal in principals:
        if principal.lower() in (":anonymous:", ":authenticated:"):
            continue
        name = principal.removeprefix(":group:").removeprefix(":")
        if not name.replace("-", "").replace("_", "").replace(".", "").replace("@", "").isalnum():
            raise ValueError(f"not a user or group name: {principal!r}")
    return tuple(
        p.upper() if p.lower() in (":anonymous:", ":authenticated:") else p for p in principals
    )


def _to_url_prefixes(value: object) -> tuple[str, ...]:
    """A list or comma-separated string of http(s) URL prefixes."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    prefixes = tuple(str(item).strip() for item in items if str(item).strip())
    for prefix in prefixes:
        if not prefix.startswith(("http://", "https://")):
            raise ValueError(f"expected http:// or https:// URL prefixes, got {prefix!r}")
    return prefixes


def _to_networks(value: object) -> tuple[str, ...]:
    """A list or comma-separated string of IP addresses or networks (CIDR), checked here."""
    import ipaddress

    items = value if isinstance(value, list | tuple) else str(value).split(",")
    networks = tuple(str(item).strip() for item in items if str(item).strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or network: {network!r}") from None
    return networks


def _to_body_size(value: object) -> int:
    number = int(str(value))
    if number <= 0:
        raise ValueError(f"must be a positive number of bytes, got {value!r}")
    return number


def _to_optional_str(value: object) -> str | None:
    return None if value is None or str(value) == "" else str(value)


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_MAX_SIZE = 1024**6  # an exbibyte: beyond any disk, and far below where int() gets slow


def _to_cache_size(value: object) -> int | None:
    """Bytes from ``500M``, ``20G``, ``1.5T`` or a number; empty or ``0``: no cap."""
    text = "" if value is None else str(value).strip().upper().removesuffix("B")
    if text in ("", "0"):
        return None
    unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
    try:
        number = float(text[: len(text) - len(unit)] if unit else text)
    except ValueError:
        raise ValueError(
            f"expected a size such as 500M, 20G or a number of bytes, got {value!r}"
        ) from None
    if not 1 <= number * _SIZE_UNITS[unit] <= _MAX_SIZE:  # NaN fails this too
        raise ValueError(f"expected a size between 1 byte and 1E (exbibyte), got {value!r}")
    return int(number * _SIZE_UNITS[unit])


def _to_interval(value: object) -> float:
    number = float(str(value))
    if not 0 <= number < float("inf"):
        raise ValueError(f"must be 0 (off) or a positive number of seconds, got {value!r}")
    return number


def _to_database_url(value: object) -> str | None:
    url = _to_optional_str(value)
    if url is None:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme.startswith("sqlite"):
        return url
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        try:
            import psycopg  # noqa: F401 - only checking that the extra is installed
        except ImportError:
            raise ValueError(
                "PostgreSQL needs the postgres extra: pip install 'cheeseboard[server,postgres]'"
            ) from None
        return url
    raise ValueError(f"expected sqlite:///PATH or postgresql://..., got a {scheme or 'bare'} URL")


def _to_blob_url(value: object) -> str | None:
    url = _to_optional_str(value)
    if url is None:
        return None
    if not url.startswith("s3://"):
        raise ValueError(
            "expected s3://bucket/prefix (files are in DATADIR/blobs when no --blob-url is given)"
        )
    # The rest (bucket, endpoint, region, credentials) is checked where the bucket is opened,
    # by the store's own parser: server/cli.py before serving.
    return url


def _to_advisories_source(value: object) -> str | None:
    source = _to_optional_str(value)
    if source is None or source.startswith(("http://", "https://")) or "://" not in source:
        return source
    raise ValueError(f"expected an http(s) URL or a path, got {source!r}")


def _to_redirect_seconds(value: object) -> int:
    number = int(str(value))
    if not 0 <= number <= 7 * 24 * 3600:
        raise ValueError(f"expected 0 to 604800 seconds (S3's limit), got {value!r}")
    return number


MIN_SECRET_BYTES = 16


def _to_secret_file(value: object) -> str | None:
    path = _to_optional_str(value)
    if path is None:
        return None
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the secret file {path} holds {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
            "random ones (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return str(Path(path).absolute())


def _to_ca_bundle(value: object) -> str | None:
    path = _to_optional_str(value)
    return None if path is None else check_ca_bundle(path)


def _to_issuers(value: object) -> tuple[str, ...]:
    """OIDC issuers: https URLs (plain http only on loopback, for tests), no trailing slash."""
    from urllib.parse import urlsplit

    issuers = tuple(url.rstrip("/") for url in _to_url_prefixes(value))
    for url in issuers:
        host = urlsplit(url).hostname
        local = url.startswith("http://") and host in ("127.0.0.1", "localhost", "::1")
        if not (url.startswith("https://") or local):
            raise ValueError(f"an OIDC issuer must be an https:// URL, got {url!r}")
    return issuers


def _to_audience(value: object) -> str:
    text = str(value).strip()
    if not text or len(text) > 200 or not text.isprintable():
        raise ValueError(f"expected an audience of 1 to 200 printable characters, got {value!r}")
    return text


def _to_host(value: object) -> str:
    if value is None or not str(value).strip():
        raise ValueError(f"expected an address to listen on, got {value!r}")
    return str(value).strip()


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _to_log_level(value: object) -> str:
    level = str(value).strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its name (as in ``--name``), how to convert it, its default and help."""

    name: str
    convert: Callable[[object], Any]
    default: Any
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("host", _to_host, "127.0.0.1", "address to listen on"),
    Option("port", _to_port, 3141, "TCP port to listen on"),
    Option("workers", _to_workers, 1, "worker processes"),
    Option(
        "mirror-cache-expiry",
        _to_expiry,
        1800.0,
        "seconds before a mirrored project page is checked upstream again (0: every request)",
    ),
    Option("request-timeout", _to_positive_float, 5.0, "seconds to wait for upstream"),
    Option("offline", _to_bool, False, "never contact upstream; serve only what is cached"),
    Option(
        "database-url", _to_database_url, None, "metadata database (default: SQLite in datadir)"
    ),
    Option(
        "blob-url",
        _to_blob_url,
        None,
        "where files are kept: s3://bucket/prefix?endpoint=URL&region=R, credentials from "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default: DATADIR/blobs)",
    ),
    Option(
        "blob-cache-size",
        _to_body_size,
        10 * 1024**3,
        "with --blob-url, bytes of files each node keeps locally (least recently used go first)",
    ),
    Option(
        "blob-redirect",
        _to_redirect_seconds,
        0,
        "with --blob-url, answer downloads with a redirect to a presigned URL valid this many "
        "seconds (0: send the bytes through the server)",
    ),
    Option(
        "mirror-cache-size",
        _to_cache_size,
        None,
        "cap on the bytes of files cached from upstream (e.g. 500M, 20G; default: no cap); "
        "the least recently used go first, every --retention-interval and at gc",
    ),
    Option(
        "retention-interval",
        _to_interval,
        3600.0,
        "seconds between retention runs in the server (cache cap and indexes' cleanup "
        "policies, one process at a time); 0: only at cheeseboard-server gc",
    ),
    Option(
        "secret-file",
        _to_secret_file,
        None,
        "file with the secret that signs tokens and sessions (default: shared through a "
        "PostgreSQL database, else datadir/secret)",
    ),
    Option("outside-url", _to_optional_str, None, "URL clients use to reach the server"),
    Option("page-max-age", _to_max_age, 60, "Cache-Control max-age of pages of private indexes"),
    Option("mirror-page-max-age", _to_max_age, 600, "Cache-Control max-age of mirrored pages"),
    Option(
        "restrict-modify",
        _to_principals,
        ("root",),
        "who may create users and indexes (comma-separated users, :group:NAME, :AUTHENTICATED:); "
        "never rights over other users' accounts or indexes",
    ),
    Option(
        "open-registration",
        _to_bool,
        False,
        "devpi-server's default: anyone may create a user, and users create indexes under "
        "their own name (mirror indexes stay root's)",
    ),
    Option(
        "read-requires-auth",
        _to_bool,
        False,
        "every index, the mirror included, may be read by signed-in users only (an index's "
        "acl_read can narrow that further; :ANONYMOUS: in it then means :AUTHENTICATED:)",
    ),
    Option(
        "push-allow",
        _to_url_prefixes,
        (),
        "URL prefixes that external pushes may target although they are on loopback, "
        "link-local or private addresses (those are refused otherwise)",
    ),
    Option(
        "trusted-proxies",
        _to_networks,
        (),
        "addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For names the client",
    ),
    Option(
        "max-upload-size",
        _to_body_size,
        1024**3,
        "largest accepted upload body in bytes (413 beyond)",
    ),
    Option(
        "login-attempts",
        _to_attempts,
        10,
        "failed sign-ins allowed per user from one client address within --login-window, and "
        "5 times that per address over all names (429 beyond)",
    ),
    Option(
        "login-window",
        _to_positive_float,
        300.0,
        "seconds over which failed sign-ins are counted",
    ),
    Option(
        "advisories-url",
        _to_advisories_source,
        None,
        "OSV advisories to import every --advisories-interval seconds (an http(s) URL or a path "
        "of a zip such as OSV's PyPI all.zip, or a directory); one node at a time imports",
    ),
    Option(
        "advisories-interval",
        _to_positive_float,
        3600.0,
        "seconds between imports of --advisories-url",
    ),
    Option(
        "ca-bundle",
        _to_ca_bundle,
        None,
        "PEM file of CAs to trust for outbound HTTPS (upstreams, S3, advisories) besides the "
        "system's, e.g. a TLS-intercepting proxy's (SSL_CERT_FILE is honoured as well)",
    ),
    Option(
        "oidc-issuers",
        _to_issuers,
        (),
        "OpenID Connect issuers whose ID tokens trusted publishers may exchange for upload "
        "tokens (e.g. https://token.actions.githubusercontent.com,https://gitlab.com); none: "
        "trusted publishing is off",
    ),
    Option(
        "oidc-audience",
        _to_audience,
        "cheeseboard",
        "the audience (aud) CI ID tokens must be minted for; make it unique to this server",
    ),
    Option("access-log", _to_bool, True, "log one line per request"),
    Option("log-level", _to_log_level, "info", "logging level: debug, info, warning, error"),
)
_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True, slots=True)
class DataDirLayout:
    """Where things live in a data directory: the one place their names are spelled.

    ``init`` (ops/datadir.py) and ``backup`` (ops/backup.py) build a directory with this layout,
    ``serve`` and the offline tools read it. Here, not in store/, because settings (the bottom
    layer) names the default SQLite database and every layer above may need a path.
    """

    root: Path

    @property
    def marker(self) -> Path:
        """JSON written last by init and backup: its presence means "initialised"."""
        return self.root / ".cheeseboard"

    @property
    def database(self) -> Path:
        """The embedded SQLite metadata database (unless ``--database-url`` names another)."""
        return self.root / "cheeseboard.sqlite"

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def blobs(self) -> Path:
        """The filesystem blob store (store/blobs.py), or the local cache of a bucket's."""
        return self.root / "blobs"

    @property
    def secret(self) -> Path:
        """This node's signing secret (owner-only), unless ``--secret-file`` names one."""
        return self.root / "secret"

    @property
    def serial(self) -> Path:
        """The cross-process latest-serial counter (store/serial.py)."""
        return self.root / "serial"

    @property
    def locks(self) -> Path:
        """Per-project flock files shared by the worker processes (services/locks.py)."""
        return self.root / "locks"

    @property
    def cache_trim_lock(self) -> Path:
        """Held by the one process trimming the local cache of bucket blobs."""
        return self.root / "cache-trim.lock"


def staging_dir(target: Path, purpose: str) -> Path:
    """The hidden sibling of ``target`` that init, backup and export fill before renaming it to
    ``target``, so a crash never leaves a half-built directory under the final name."""
    return target.parent / f".{target.name}.{purpose}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved server settings."""

    datadir: Path
    host: str = "127.0.0.1"
    port: int = 3141
    workers: int = 1
    mirror_cache_expiry: float = 1800.0
    request_timeout: float = 5.0
    offline: bool = False
    database_url: str | None = None
    blob_url: str | None = None
    blob_cache_size: int = 10 * 1024**3
    blob_redirect: int = 0
    mirror_cache_size: int | None = None
    retention_interval: float = 3600.0
    secret_file: str | None = None
    outside_url: str | None = None
    page_max_age: int = 60
    mirror_page_max_age: int = 600
    restrict_modify: tuple[str, ...] = ("root",)
    open_registration: bool = False
    read_requires_auth: bool = False
    push_allow: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    max_upload_size: int = 1024**3
    login_attempts: int = 10
    login_window: float = 300.0
    advisories_url: str | None = None
    advisories_interval: float = 3600.0
    ca_bundle: str | None = None
    oidc_issuers: tuple[str, ...] = ()
    oidc_audience: str = "cheeseboard"
    access_log: bool = True
    log_level: str = "info"
    oidc: OidcSettings | None = None  # the config file's oidc: section (oidc_settings.py)
    ldap: LdapSettings | None = None  # the config file's ldap: section (ldap_settings.py)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def layout(self) -> DataDirLayout:
        return DataDirLayout(self.datadir)

    @property
    def db_url(self) -> str:
        return self.database_url or self.layout.sqlite_url

    def to_json(self) -> str:
        """Serialize for worker processes, which re-read it with ``from_json``."""
        data = asdict(self)
        data["datadir"] = str(self.datadir)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        data["datadir"] = Path(data["datadir"])
        data["oidc"] = OidcSettings.from_mapping(data["oidc"]) if data.get("oidc") else None
        data["ldap"] = LdapSettings.from_mapping(data["ldap"]) if data.get("ldap") else None
        for name in ("restrict_modify", "push_allow", "trusted_proxies", "oidc_issuers"):
            data[name] = tuple(data[name])
        return cls(**data)


def _read_config_file(path: Path) -> dict[str, object]:
    import yaml  # only with --config: not at every start

    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from exc
    except RecursionError:  # PyYAML composes nested collections recursively
        raise SettingsError(f"config file {path} is nested too deeply") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"config file {path} must hold a mapping of option: value")
    section = loaded.get("cheeseboard-server", loaded)
    if section is None:  # "cheeseboard-server:" with nothing under it
        return {}
    if not isinstance(section, dict):
        raise SettingsError(f"config file {path}: 'cheeseboard-server' must be a mapping")
    values: dict[str, object] = {}
    for key, value in section.items():
        name = str(key).replace("_", "-")
        if name in ("oidc", "ldap"):  # sections of their own, checked by resolve
            values[name] = value
            continue
        if name not in _BY_NAME and name != "datadir":
            known = ", ".join(sorted([*_BY_NAME, "datadir"]))
            raise SettingsError(f"config file {path}: unknown option {key!r} (known: {known})")
        values[name] = value
    return values


def _to_datadir(value: object) -> Path:
    # Path("") is ".": an empty CHEESEBOARD_DATADIR must not quietly serve the working directory.
    if value is None or not str(value).strip():
        raise ValueError("the data directory must not be empty")
    return Path(str(value))


def resolve(
    cli: Mapping[str, object | None],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources into Settings; ``cli`` holds only options given on the command line."""
    environ = os.environ if environ is None else environ
    file_values = _read_config_file(config_file) if config_file else {}
    resolved: dict[str, object] = {}
    sources: dict[str, str] = {}
    for name in ["datadir", *_BY_NAME]:
        env_name = ENV_PREFIX + name.upper().replace("-", "_")
        if cli.get(name) is not None:
            raw, source = cli[name], "command line"
        elif env_name in environ:
            raw, source = environ[env_name], f"environment {env_name}"
        elif name in file_values:
            raw, source = file_values[name], f"config file {config_file}"
        elif name == "datadir":
            raise SettingsError("no data directory: pass --datadir or set CHEESEBOARD_DATADIR")
        else:
            continue
        try:
            value = _to_datadir(raw) if name == "datadir" else _BY_NAME[name].convert(raw)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"--{name} from {source}: {exc}") from exc
        resolved[name.replace("-", "_")] = value
        sources[name] = source
    try:
        resolved["oidc"] = parse_oidc(file_values.get("oidc"))
    except OidcSettingsError as exc:
        raise SettingsError(f"config file {config_file}: {exc}") from exc
    try:
        resolved["ldap"] = parse_ldap(file_values.get("ldap"))
    except LdapSettingsError as exc:
        raise SettingsError(f"config file {config_file}: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in resolved.items() if k in known}, sources=sources)  # type: ignore[arg-type]
