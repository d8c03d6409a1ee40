"""Fuzzing server settings: any value of any option, from the command line, the environment or a
config file, gives Settings or a SettingsError naming the option; never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from cheeseboard.settings import OPTIONS, Settings, SettingsError, resolve
from tests.unit.fuzz.counting import counted
from tests.unit.fuzz.strategies import FUZZ, FUZZ_SLOW, hostile_text

NAMES = ["datadir", *(option.name for option in OPTIONS)]
option_text = st.one_of(
    hostile_text,
    st.sampled_from(
        ["0", "1", "-1", "65536", "nan", "inf", "-inf", "1e999", "true", "maybe", "1" * 5000]
    ),
)
# Environment values can't hold NUL (the OS refuses them); anything else goes.
env_text = option_text.map(lambda text: text.replace("\0", ""))
yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), option_text),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


def _check(settings: Settings) -> None:
    """What resolve returns is usable: it survives the trip to the workers."""
    assert Settings.from_json(settings.to_json()) == settings


def _assert_names_option(exc: SettingsError, names: set[str]) -> None:
    message = str(exc)
    assert any(f"--{name}" in message for name in names) or "data directory" in message


@FUZZ
@given(st.dictionaries(st.sampled_from(NAMES), option_text, min_size=1))
@counted("settings: command line values")
def test_cli_values(values: dict[str, str]) -> None:
    cli = {"datadir": "/data", **values}
    try:
        settings = resolve(cli, {})
    except SettingsError as exc:
        _assert_names_option(exc, set(cli))
        return
    _check(settings)


@FUZZ
@given(st.dictionaries(st.sampled_from(NAMES), env_text, min_size=1))
@counted("settings: environment values")
def test_environment_values(values: dict[str, str]) -> None:
    environ = {
        "CHEESEBOARD_" + name.upper().replace("-", "_"): text for name, text in values.items()
    }
    try:
        settings = resolve({"datadir": "/data"}, environ)
    except SettingsError as exc:
        _assert_names_option(exc, set(values) | {"datadir"})
        return
    _check(settings)


@FUZZ_SLOW
@given(
    st.dictionaries(
        st.sampled_from([*NAMES, *(name.replace("-", "_") for name in NAMES)])
        | st.text(max_size=8),
        yaml_values,
        min_size=1,
    ),
    st.booleans(),
)
@counted("settings: config file values")
def test_config_file_values(
    tmp_path_factory: pytest.TempPathFactory, values: dict[str, object], sectioned: bool
) -> None:
    """A YAML mapping of any keys to any YAML values (scalars, lists, mappings)."""
    document = {"cheeseboard-server": values} if sectioned else values
    path = tmp_path_factory.getbasetemp() / "fuzz-values.yaml"  # one file, rewritten each time
    path.write_text(yaml.safe_dump(document))
    try:
        settings = resolve({"datadir": "/data"}, {}, path)
    except SettingsError as exc:
        assert str(path) in str(exc) or "--" in str(exc)
        return
    _check(settings)


@FUZZ
@given(st.text(max_size=200))
@counted("settings: config file text")
def test_config_file_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """Whatever the config file holds, YAML or not."""
    path = tmp_path_factory.getbasetemp() / "fuzz-text.yaml"  # one file, rewritten each time
    path.write_text(text, errors="surrogatepass")
    try:
        settings = resolve({"datadir": "/data"}, {}, path)
    except SettingsError as exc:
        assert str(path) in str(exc) or "--" in str(exc)
        return
    _check(settings)


def test_deeply_nested_config_file(tmp_path: Path) -> None:
    path = tmp_path / "cheeseboard.yaml"
    path.write_text("port: " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(SettingsError):
        resolve({"datadir": "/data"}, {}, path)
