"""Server settings: precedence of sources, conversions, config files and serialization."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from cheeseboard.settings import OPTIONS, Settings, SettingsError, resolve


def config(tmp_path: Path, text: str) -> Path:
    """Write a YAML config file and return its path."""
    path = tmp_path / "cheeseboard.yaml"
    path.write_text(text)
    return path


def settle(
    cli: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """resolve() with a datadir on the command line unless given elsewhere."""
    given: dict[str, Any] = {"datadir": Path("/data")}
    given.update(cli or {})
    return resolve(given, env or {}, config_file)


def test_defaults() -> None:
    """With only a datadir every option has its default, and its source is left out."""
    settings = settle()
    assert settings == Settings(datadir=Path("/data"))
    assert settings.sources == {"datadir": "command line"}
    for option in OPTIONS:
        assert getattr(settings, option.name.replace("-", "_")) == option.default


def test_settings_defaults_match_options() -> None:
    """The dataclass defaults and the OPTIONS table agree."""
    plain = Settings(datadir=Path("/d"))
    for option in OPTIONS:
        assert getattr(plain, option.name.replace("-", "_")) == option.default, option.name


def test_precedence_cli_env_file_default(tmp_path: Path) -> None:
    """CLI beats CHEESEBOARD_X beats the YAML file beats the default, option by option."""
    path = config(tmp_path, "port: 1000\nworkers: 3\nhost: 0.0.0.0\nlog-level: debug\n")
    settings = settle(
        cli={"port": "3000", "offline": None},
        env={"CHEESEBOARD_PORT": "2000", "CHEESEBOARD_WORKERS": "4", "OTHER_PORT": "1"},
        config_file=path,
    )
    assert (settings.port, settings.workers, settings.host, settings.log_level) == (
        3000,
        4,
        "0.0.0.0",
        "debug",
    )
    assert settings.offline is False
    assert settings.sources == {
        "datadir": "command line",
        "port": "command line",
        "workers": "environment CHEESEBOARD_WORKERS",
        "host": f"config file {path}",
        "log-level": f"config file {path}",
    }


def test_env_names_use_underscores() -> None:
    """Dashed options map to CHEESEBOARD_UPPER_SNAKE variables."""
    settings = resolve(
        {},
        {
            "CHEESEBOARD_DATADIR": "/srv/cb",
            "CHEESEBOARD_MIRROR_CACHE_EXPIRY": "60",
            "CHEESEBOARD_OUTSIDE_URL": "https://pkgs.example/",
            "CHEESEBOARD_ACCESS_LOG": "off",
        },
    )
    assert settings.datadir == Path("/srv/cb")
    assert settings.mirror_cache_expiry == 60.0
    assert settings.outside_url == "https://pkgs.example/"
    assert settings.access_log is False


def test_uses_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, resolve() reads os.environ."""
    monkeypatch.setenv("CHEESEBOARD_DATADIR", "/from/env")
    monkeypatch.setenv("CHEESEBOARD_WORKERS", "2")
    settings = resolve({})
    assert (settings.datadir, settings.workers) == (Path("/from/env"), 2)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("1", True), ("TRUE", True), (" yes ", True), ("on", True), (True, True)],
        *[
            ("0", False),
            ("false", False),
            ("No", False),
            ("off", False),
            ("", False),
            (False, False),
        ],
    ],
)
def test_bool_values(raw: object, expected: bool) -> None:
    """Booleans accept the usual spellings from any source."""
    assert settle(cli={"offline": raw}).offline is expected


def test_optional_strings_and_db_url() -> None:
    """An empty database URL means the default SQLite file in the datadir."""
    assert settle(env={"CHEESEBOARD_DATABASE_URL": ""}).database_url is None
    assert settle().db_url == "sqlite:////data/cheeseboard.sqlite"
    custom = settle(cli={"database-url": "postgresql://db/cb"})
    assert custom.db_url == "postgresql://db/cb"
    for url in ("postgresql+asyncpg://db/cb", "mysql://db/cb", "cheeseboard.sqlite"):
        with pytest.raises(SettingsError, match="database-url"):
            settle(cli={"database-url": url})


def test_log_level_is_normalized() -> None:
    """Log levels are case-insensitive and stored in lower case."""
    assert settle(env={"CHEESEBOARD_LOG_LEVEL": " WARNING "}).log_level == "warning"


def test_a_zero_expiry_means_revalidate_every_time() -> None:
    """devpi's meaning of 0 (issue 22), server-wide as per index."""
    assert settle(env={"CHEESEBOARD_MIRROR_CACHE_EXPIRY": "0"}).mirror_cache_expiry == 0.0


@pytest.mark.parametrize(
    ("option", "raw"),
    [
        ("port", "http"),
        ("port", "70000"),
        ("port", "-1"),
        ("workers", "0"),
        ("workers", "65"),
        ("workers", "1.5"),
        ("mirror-cache-expiry", "-5"),
        ("mirror-cache-expiry", "nan"),
        ("mirror-cache-expiry", "inf"),
        ("request-timeout", "soon"),
        ("offline", "maybe"),
        ("page-max-age", "-1"),
        ("mirror-page-max-age", "ten"),
        ("log-level", "verbose"),
        ("host", " "),
    ],
)
def test_bad_values_name_option_and_source(option: str, raw: str) -> None:
    """A bad value is a SettingsError naming the option and where the value came from."""
    env_name = "CHEESEBOARD_" + option.upper().replace("-", "_")
    with pytest.raises(SettingsError) as info:
        settle(env={env_name: raw})
    assert str(info.value).startswith(f"--{option} from environment {env_name}: ")
    with pytest.raises(SettingsError, match=f"^--{option} from command line: "):
        settle(cli={option: raw})


def test_bad_value_from_config_file(tmp_path: Path) -> None:
    """Errors in YAML values name the file."""
    path = config(tmp_path, "workers: many\n")
    with pytest.raises(
        SettingsError, match=f"^--workers from config file {re.escape(str(path))}: "
    ):
        settle(config_file=path)


def test_yaml_types(tmp_path: Path) -> None:
    """YAML's own ints, floats and bools are accepted; keys may use '_' or '-'."""
    path = config(
        tmp_path,
        "port: 8080\nmirror_cache_expiry: 2.5\noffline: yes\naccess-log: false\n"
        "datadir: /yaml/dir\npage_max_age: 0\n",
    )
    settings = resolve({}, {}, path)
    assert settings.port == 8080
    assert settings.mirror_cache_expiry == 2.5
    assert settings.offline is True
    assert settings.access_log is False
    assert settings.datadir == Path("/yaml/dir")
    assert settings.page_max_age == 0


def test_yaml_under_cheeseboard_server_key(tmp_path: Path) -> None:
    """Options may sit under a 'cheeseboard-server:' mapping (a shared config file)."""
    path = config(tmp_path, "cheeseboard-server:\n  port: 4000\n  workers: 2\n")
    settings = settle(config_file=path)
    assert (settings.port, settings.workers) == (4000, 2)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "cheeseboard-server:\n"])
def test_empty_yaml(tmp_path: Path, text: str) -> None:
    """An empty file (or empty section) sets nothing."""
    assert settle(config_file=config(tmp_path, text)) == Settings(datadir=Path("/data"))


def test_unknown_yaml_key(tmp_path: Path) -> None:
    """An unknown option in the file is an error that lists the known ones."""
    path = config(tmp_path, "port: 1\nprot: 2\n")
    with pytest.raises(SettingsError) as info:
        settle(config_file=path)
    message = str(info.value)
    assert f"config file {path}: unknown option 'prot'" in message
    assert "port" in message and "datadir" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- port\n- 1\n", "must hold a mapping"),
        ("just a string\n", "must hold a mapping"),
        ("cheeseboard-server: [1, 2]\n", "'cheeseboard-server' must be a mapping"),
        ("port: [1\n", "is not valid YAML"),
    ],
)
def test_bad_yaml_files(tmp_path: Path, text: str, message: str) -> None:
    """Non-mapping documents and YAML syntax errors are SettingsErrors naming the file."""
    path = config(tmp_path, text)
    with pytest.raises(SettingsError, match=message) as info:
        settle(config_file=path)
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    """An unreadable config file is a SettingsError, not an OSError."""
    with pytest.raises(SettingsError, match="cannot read config file"):
        settle(config_file=tmp_path / "absent.yaml")


def test_missing_datadir() -> None:
    """Without a datadir from any source, resolve() says how to give one."""
    with pytest.raises(SettingsError, match="no data directory"):
        resolve({"datadir": None, "port": "1"}, {})


@pytest.mark.parametrize("raw", ["", "  "])
def test_empty_datadir(raw: str) -> None:
    """An empty CHEESEBOARD_DATADIR is an error, not the working directory."""
    with pytest.raises(SettingsError, match=r"^--datadir from environment CHEESEBOARD_DATADIR"):
        resolve({}, {"CHEESEBOARD_DATADIR": raw})


def test_json_round_trip(tmp_path: Path) -> None:
    """to_json/from_json give back equal settings, sources and a Path datadir."""
    path = config(tmp_path, "log-level: error\n")
    original = settle(
        cli={"port": "1", "outside-url": "https://x.example/", "datadir": tmp_path},
        env={"CHEESEBOARD_MIRROR_CACHE_EXPIRY": "12.5"},
        config_file=path,
    )
    copy = Settings.from_json(original.to_json())
    assert copy == original
    assert isinstance(copy.datadir, Path)
    assert dict(copy.sources) == dict(original.sources)
    assert math.isclose(copy.mirror_cache_expiry, 12.5)
    assert copy.database_url is None
